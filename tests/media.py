"""Test media made on the fly: images in every accepted format, and broken ones."""

from __future__ import annotations

import struct
import zlib

from clipmesh.demo.synthetic import encode_image as encode
from clipmesh.demo.synthetic import gradient_image

__all__ = [
    "encode",
    "free_box",
    "gradient_image",
    "mp4_boxes",
    "mp4_relaid",
    "png_declaring",
    "webp_declaring",
]


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


def mp4_boxes(data: bytes) -> dict[bytes, bytes]:
    """An MP4's top-level boxes (ISO/IEC 14496-12), whole, by type; a repeated type keeps the
    last. Handles 32-bit sizes only: what the test videos have."""
    boxes, at = {}, 0
    while at < len(data):
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        boxes[kind] = data[at : at + size]
        at += size
    return boxes


def free_box(payload_bytes: int, *, kind: bytes = b"free", large: bool = False) -> bytes:
    """A `free` (or `skip`) box of `payload_bytes` zeros; `large` writes the 64-bit size form."""
    if large:
        return struct.pack(">I4sQ", 1, kind, 16 + payload_bytes) + bytes(payload_bytes)
    return struct.pack(">I4s", 8 + payload_bytes, kind) + bytes(payload_bytes)


def mp4_relaid(data: bytes, layout: list[bytes]) -> bytes:
    """The MP4 `data` with its top-level boxes in another order: `layout` lists box types
    (b"ftyp", b"moov", b"mdat") and whole extra boxes (anything longer than 4 bytes, such as
    `free_box(…)`). The sample table's chunk offsets (`stco`) are moved with the media data,
    so the result is as valid as the original."""
    boxes = mp4_boxes(data)
    old_mdat = data.index(boxes[b"mdat"])
    parts = [boxes[item] if len(item) == 4 else item for item in layout]
    new_mdat = sum(len(part) for part in parts[: layout.index(b"mdat")])
    moov = bytearray(boxes[b"moov"])
    at = moov.find(b"stco")
    while at != -1:  # size, "stco", version and flags, entry count, then the offsets
        (count,) = struct.unpack(">I", moov[at + 8 : at + 12])
        for entry in range(at + 12, at + 12 + 4 * count, 4):
            (offset,) = struct.unpack(">I", moov[entry : entry + 4])
            moov[entry : entry + 4] = struct.pack(">I", offset + new_mdat - old_mdat)
        at = moov.find(b"stco", at + 4)
    return b"".join(bytes(moov) if part is boxes[b"moov"] else part for part in parts)
