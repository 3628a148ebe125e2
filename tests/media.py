"""Test media made on the fly: images in every accepted format, and broken ones."""

from __future__ import annotations

import struct
import zlib

from clipmesh.demo.synthetic import encode_image as encode
from clipmesh.demo.synthetic import gradient_image

__all__ = ["encode", "gradient_image", "png_declaring"]


def png_declaring(width: int, height: int) -> bytes:
    """A small PNG whose header claims `width`×`height` (a decompression bomb's shape)."""
    data = bytearray(encode(gradient_image(8, 8), "PNG"))
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)
