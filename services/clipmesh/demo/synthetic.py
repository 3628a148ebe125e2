"""Procedural media: deterministic pictures that compress like real frames (unlike noise)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def gradient_image(width: int = 96, height: int = 64, seed: int = 0) -> Image.Image:
    """A smooth RGB picture whose pattern and colours depend on `seed`."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = rng.uniform(0, 6.28, size=3)
    freq = rng.uniform(0.02, 0.15, size=3)
    channels = [
        127 + 120 * np.sin(freq[c] * xs + phase[c]) * np.cos(freq[c] * ys) for c in range(3)
    ]
    return Image.fromarray(np.stack(channels, axis=-1).astype(np.uint8), "RGB")


def encode_image(image: Image.Image, image_format: str = "JPEG", **options: object) -> bytes:
    """The image encoded as JPEG, PNG or WEBP bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()
