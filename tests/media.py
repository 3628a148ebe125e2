"""Test media made on the fly: images in every accepted format, and broken ones."""

from __future__ import annotations

import struct
import zlib

from clipmesh.demo.synthetic import encode_image as encode
from clipmesh.demo.synthetic import gradient_image

__all__ = ["encode", "gradient_image", "png_declaring", "webp_declaring"]


def png_declaring(width: int, height: int) -> bytes:
    """A small PNG whose header claims `width`×`height` (a decompression bomb's shape)."""
    data = bytearray(encode(gradient_image(8, 8), "PNG"))
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


def webp_declaring(width: int, height: int) -> bytes:
    """A small lossless WebP whose header claims `width`×`height` (at most 16384 a side).

    The VP8L chunk packs width - 1 and height - 1 in 14 bits each after its 0x2F signature.
    """
    data = bytearray(encode(gradient_image(8, 8), "WEBP", lossless=True))
    assert data[12:16] == b"VP8L" and data[20] == 0x2F, "Pillow wrote a simple lossless WebP"
    bits = int.from_bytes(data[21:25], "little") & ~((1 << 28) - 1)
    bits |= (width - 1) | (height - 1) << 14
    data[21:25] = bits.to_bytes(4, "little")
    return bytes(data)
