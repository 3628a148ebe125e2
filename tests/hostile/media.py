"""Hostile files made on the fly: decompression bombs, damaged images and videos, playlists
dressed as videos, and paths that try to leave the allowed roots.

Everything is small on disk and quick to make; the bombs are only large once decoded.
"""

from __future__ import annotations

import os
import random
import struct
import zlib
from fractions import Fraction
from pathlib import Path

import av

from clipmesh.demo.library import make_video
from tests.media import encode, gradient_image, png_declaring

__all__ = [
    "broken_jpeg",
    "broken_png",
    "broken_webp",
    "flat_png",
    "png_declaring",
    "write_hostile_library",
    "write_png_video",
]


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def flat_png(width: int, height: int) -> bytes:
    """A valid PNG of one flat colour, compressed row by row: about width × height / 350 bytes
    on disk, width × height × 3 once decoded, and never whole in memory while it is made."""
    packer = zlib.compressobj(9)
    row = bytes(1 + 3 * width)  # filter byte 0, then black RGB pixels
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", idat)
        + _chunk(b"IEND", b"")
    )


def broken_jpeg() -> bytes:
    """A JPEG cut off inside its entropy-coded data."""
    return encode(gradient_image(320, 240), "JPEG")[:700]


def broken_png() -> bytes:
    """A PNG whose pixel data is overwritten with garbage (its chunk CRCs no longer match)."""
    data = bytearray(encode(gradient_image(320, 240), "PNG"))
    idat = data.find(b"IDAT") + 4
    data[idat : idat + 200] = random.Random(0).randbytes(200)
    return bytes(data)


def broken_webp() -> bytes:
    """A WebP whose RIFF header is intact and whose VP8 bitstream is garbage."""
    data = bytearray(encode(gradient_image(320, 240), "WEBP"))
    data[30:] = random.Random(1).randbytes(len(data) - 30)
    return bytes(data)


def write_png_video(
    path: Path, picture: bytes, *, declared_size: tuple[int, int], frames: int, fps: int = 1
) -> Path:
    """Writes a MOV of `frames` copies of the PNG `picture` under a header that says its frames
    are `declared_size` (true or not); nothing is decoded or encoded on the way."""
    with av.open(str(path), "w", format="mov") as container:
        stream = container.add_stream("png", rate=fps)
        stream.width, stream.height = declared_size
        stream.pix_fmt = "rgb24"
        for index in range(frames):
            packet = av.Packet(picture)
            packet.stream, packet.pts, packet.dts = stream, index, index
            packet.time_base, packet.is_keyframe = Fraction(1, fps), True
            container.mux(packet)
    return path


def _box(data: bytes | bytearray, kind: bytes) -> tuple[int, int]:
    """(offset, size) of the first MP4 box of type `kind`."""
    start = data.find(kind) - 4
    return start, struct.unpack(">I", data[start : start + 4])[0]


def _with_box_overwritten(good: bytes, kind: bytes, fill: bytes | None, skip: int = 8) -> bytes:
    """`good` with the body of its `kind` box (after `skip` bytes) replaced by `fill` repeated,
    or by random bytes when `fill` is None."""
    data = bytearray(good)
    start, size = _box(data, kind)
    length = size - skip
    data[start + skip : start + size] = (
        random.Random(2).randbytes(length) if fill is None else (fill * length)[:length]
    )
    return bytes(data)


def write_hostile_library(directory: Path, outside: Path) -> dict[str, Path]:
    """Writes every hostile file into `directory` (inside an allowed root) and its escape
    targets into `outside`; returns the paths by name."""
    directory.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    good = make_video(directory / "good.mp4", seed=11, duration_s=2.0, size=(64, 48), shots=1)
    good_bytes = good.path.read_bytes()
    secret = outside / "secret.mp4"
    secret.write_bytes(good_bytes)
    files = {
        "empty.mp4": b"",
        "truncated.mp4": good_bytes[: len(good_bytes) // 2],
        "garbage-frames.mp4": _with_box_overwritten(good_bytes, b"mdat", None),
        "index-past-the-end.mp4": _with_box_overwritten(good_bytes, b"stco", b"\xff", skip=16),
        "playlist.mp4": f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile://{secret}\n",
        "remote-playlist.m3u8": "#EXTM3U\n#EXTINF:10,\nhttp://127.0.0.1:9/segment.ts\n",
        "concat-script.mp4": f"ffconcat version 1.0\nfile '{secret}'\nfile '/etc/passwd'\n",
        "image-bomb.mp4": png_declaring(50_000, 50_000),
        "shopping-list.mp4": "milk\nfilm stock\n" * 50,
        # A file name is the caller's text too: an escape sequence, a newline, an RTL override.
        "cut\x1b[2J\n\u202e4pm.mp4": good_bytes[: len(good_bytes) // 2],
    }
    paths = {}
    for name, content in files.items():
        paths[name] = directory / name
        if isinstance(content, str):
            paths[name].write_text(content)
        else:
            paths[name].write_bytes(content)
    bomb = flat_png(7000, 7000)  # 49 million pixels, 147 MB decoded, 420 kB on disk
    for name, declared_size in (("pixel-bomb.mov", (7000, 7000)), ("lying-bomb.mov", (64, 64))):
        paths[name] = write_png_video(directory / name, bomb, declared_size=declared_size, frames=3)
    links = {
        "escape.mp4": secret,
        "passwd.mp4": Path("/etc/passwd"),
        "zeros.mp4": Path("/dev/zero"),
        "loop.mp4": directory / "loop.mp4",
    }
    for name, target in links.items():
        paths[name] = directory / name
        paths[name].symlink_to(target)
    paths["huge.mp4"] = directory / "huge.mp4"
    with open(paths["huge.mp4"], "wb") as file:
        file.truncate(21 << 30)  # 21 GiB, sparse: nothing is written
    paths["fifo.mp4"] = directory / "fifo.mp4"
    os.mkfifo(paths["fifo.mp4"])
    paths["folder.mp4"] = directory / "folder.mp4"
    paths["folder.mp4"].mkdir()
    paths["good.mp4"], paths["secret.mp4"] = good.path, secret
    return paths
