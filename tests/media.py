"""Test media made on the fly: images in every accepted format, and broken ones."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def gradient_image(width: int = 96, height: int = 64, seed: int = 0) -> Image.Image:
    """A smooth, seed-dependent RGB picture (compresses like a real frame, unlike noise)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = rng.uniform(0, 6.28, size=3)
    freq = rng.uniform(0.02, 0.15, size=3)
    channels = [
        127 + 120 * np.sin(freq[c] * xs + phase[c]) * np.cos(freq[c] * ys) for c in range(3)
    ]
    return Image.fromarray(np.stack(channels, axis=-1).astype(np.uint8), "RGB")


def encode(image: Image.Image, image_format: str = "JPEG", **options) -> bytes:
    """The image encoded as JPEG, PNG or WEBP bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A small PNG whose header claims `width`×`height` (a decompression bomb's shape)."""
    data = bytearray(encode(gradient_image(8, 8), "PNG"))
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)
