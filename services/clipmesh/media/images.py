"""The rules every intake of an untrusted still image applies (the encoder's query and keyframe
images, previs's reference images): its header is read without Pillow's own pixel cap, and the
configured pixel cap and the shape rule are checked before a single pixel is decoded.

Why not `Image.open`: it refuses images over twice `Image.MAX_IMAGE_PIXELS` (178,956,970
pixels) with Pillow's own message and limit, so a caller would meet two different limits and
two messages depending on how large the bomb was. Opening with the format's plugin reads only
the header, so the one configured limit, in one message, holds at any size.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image, UnidentifiedImageError

from clipmesh.runtime.errors import InvalidArgument

MAX_ASPECT_RATIO = 100
"""Longest side over shortest; preprocessing scales the shortest side to the model's input."""


def too_elongated(width: int, height: int) -> bool:
    """True when the longest side is over `MAX_ASPECT_RATIO` times the shortest: a strip that
    scaling to the model's (or a detector's) side would blow up."""
    return max(width, height) > MAX_ASPECT_RATIO * min(width, height)


def open_checked(
    data: bytes, formats: Sequence[str], *, max_pixels: int, field: str
) -> Image.Image:
    """`data` opened as the first of `formats` (Pillow's names) that accepts it, with only its
    header read, and its size checked against `max_pixels` and the shape rule.

    Raises:
        InvalidArgument: CORRUPT_IMAGE (an empty size), IMAGE_TOO_MANY_PIXELS or
            IMAGE_ASPECT_RATIO_TOO_LARGE, naming `field`.
        UnidentifiedImageError: None of `formats` accepts the bytes.
        OSError, SyntaxError, ValueError, EOFError: A damaged header.
    """
    Image.init()  # registers every plugin in Image.OPEN, as Image.open does
    for image_format in formats:
        factory, accept = Image.OPEN[image_format]
        if accept is not None and accept(data[:16]) is not True:
            continue
        # WebP's decoder allocates the whole canvas as the file is opened: check its declared
        # size first.
        if image_format == "WEBP" and (declared := webp_canvas_size(data[:30])) is not None:
            check_image_size(*declared, max_pixels=max_pixels, field=field)
        try:
            image = factory(io.BytesIO(data))
        except Image.DecompressionBombError as exc:  # a size Pillow found where we did not
            raise InvalidArgument(
                f"{field}: declares more pixels than Pillow will open; the limit is "
                f"{max_pixels} (refused before decoding)",
                field=field,
                reason="IMAGE_TOO_MANY_PIXELS",
            ) from exc
        check_image_size(*image.size, max_pixels=max_pixels, field=field)
        return image
    raise UnidentifiedImageError(f"not a {', '.join(formats)} image")


def webp_canvas_size(header: bytes) -> tuple[int, int] | None:
    """A WebP file's canvas size from its first 30 bytes (RFC 9649), or None if not declared.

    The first chunk says it: `VP8X` (extended) holds the canvas size minus one in 24 bits each;
    `VP8L` (lossless) packs width and height minus one in 14 bits each after its signature
    byte; `VP8 ` (lossy) holds 14-bit sizes after the key frame's start code.
    """
    chunk = header[12:16]
    if chunk == b"VP8X" and len(header) >= 30:
        return int.from_bytes(header[24:27], "little") + 1, int.from_bytes(
            header[27:30], "little"
        ) + 1
    if chunk == b"VP8L" and len(header) >= 25 and header[20] == 0x2F:
        bits = int.from_bytes(header[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and len(header) >= 30 and header[23:26] == b"\x9d\x01\x2a":
        width = int.from_bytes(header[26:28], "little") & 0x3FFF
        return width, int.from_bytes(header[28:30], "little") & 0x3FFF
    return None


def check_image_size(width: int, height: int, *, max_pixels: int, field: str) -> None:
    """Refuses an empty image, one larger than `max_pixels` or one too elongated, before decoding.

    Raises:
        InvalidArgument: CORRUPT_IMAGE, IMAGE_TOO_MANY_PIXELS or IMAGE_ASPECT_RATIO_TOO_LARGE
            naming `field`.
    """
    if width <= 0 or height <= 0:
        raise InvalidArgument(
            f"{field}: declares an empty size {width}x{height}", field=field, reason="CORRUPT_IMAGE"
        )
    if width * height > max_pixels:
        raise InvalidArgument(
            f"{field}: is {width}x{height} = {width * height} pixels; the limit is {max_pixels} "
            "(refused before decoding)",
            field=field,
            reason="IMAGE_TOO_MANY_PIXELS",
        )
    if too_elongated(width, height):
        # Preprocessing scales the short side to the model's: a 1x4000 strip would become
        # 224x896000 pixels, gigabytes from a 100-byte PNG.
        raise InvalidArgument(
            f"{field}: is {width}x{height}; the longest side may be at most {MAX_ASPECT_RATIO} "
            "times the shortest (refused before decoding)",
            field=field,
            reason="IMAGE_ASPECT_RATIO_TOO_LARGE",
        )
