"""Safe image intake: format, byte and pixel checks before a full decode, then preprocessing.

Only JPEG, PNG and WebP are accepted, identified by their magic bytes (never by a client's
claim). The byte cap is checked before parsing and the pixel cap from the header before
decoding, so a decompression bomb is refused without allocating its pixels. JPEGs decode at a
reduced DCT scale when far larger than the model's input, which cuts decode time several-fold.
`PixelTransform` then turns the picture into the model's input without touching torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from clipmesh.media.images import open_checked
from clipmesh.runtime.errors import InvalidArgument

_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
)
_KNOWN_OTHERS = (
    (b"GIF8", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"<svg", "SVG"),
    (b"<?xml", "XML/SVG"),
)


@dataclass(frozen=True)
class ImageLimits:
    """Caps on one image."""

    max_bytes: int
    max_pixels: int


def sniff_format(data: bytes) -> str | None:
    """JPEG, PNG or WEBP from the magic bytes; None for anything else."""
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _describe_unsupported(data: bytes) -> str:
    for magic, name in _KNOWN_OTHERS:
        if data.startswith(magic):
            return name
    return "unrecognised data"


def _bad(index: int, reason: str, message: str) -> InvalidArgument:
    return InvalidArgument(f"images[{index}]: {message}", field=f"images[{index}]", reason=reason)


def decode_image(data: bytes, index: int, limits: ImageLimits, min_side: int) -> Image.Image:
    """Decodes one untrusted image to RGB, or raises InvalidArgument naming `images[index]`.

    Args:
        data: The encoded image.
        index: Its position in the request, for the error message.
        limits: Byte and pixel caps.
        min_side: The model's input side; JPEGs may decode at a reduced scale but never below.
    """
    if not data:
        raise _bad(index, "EMPTY_IMAGE", "is empty")
    if len(data) > limits.max_bytes:
        raise _bad(
            index, "IMAGE_TOO_LARGE", f"is {len(data)} bytes; the limit is {limits.max_bytes}"
        )
    image_format = sniff_format(data)
    if image_format is None:
        raise _bad(
            index,
            "UNSUPPORTED_IMAGE_FORMAT",
            f"is {_describe_unsupported(data)}; only JPEG, PNG and WebP are accepted",
        )
    field = f"images[{index}]"
    try:
        image = open_checked(data, [image_format], max_pixels=limits.max_pixels, field=field)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _bad(index, "CORRUPT_IMAGE", f"is not a readable {image_format}: {exc}") from exc
    if image_format == "JPEG":
        image.draft("RGB", (min_side, min_side))
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _bad(
            index, "CORRUPT_IMAGE", f"is truncated or corrupt ({image_format}): {exc}"
        ) from exc
    return image.convert("RGB")


_RESAMPLING = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


@dataclass(frozen=True)
class PixelTransform:
    """The model's evaluation preprocessing (resize, centre crop, normalise) in PIL and NumPy.

    open_clip's torchvision pipeline gives the same pixels, but its tensor ops start torch's
    intra-op thread pool on the preprocessing thread, where it fights the inference threads
    for the same cores; this keeps preprocessing to one core and off torch entirely.
    """

    side: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resample: Image.Resampling

    @classmethod
    def from_config(cls, config: dict) -> PixelTransform | None:
        """Builds the transform from `model.visual.preprocess_cfg`, or None if it is one this
        class does not reproduce exactly (then the model's own pipeline must be used)."""
        size = config.get("size")
        side = size if isinstance(size, int) else (size[0] if size and size[0] == size[1] else None)
        if (
            side is None
            or config.get("resize_mode", "shortest") != "shortest"
            or config.get("interpolation", "bicubic") not in _RESAMPLING
        ):
            return None
        return cls(
            int(side),
            tuple(config["mean"]),
            tuple(config["std"]),
            _RESAMPLING[config.get("interpolation", "bicubic")],
        )

    def __call__(self, image: Image.Image) -> np.ndarray:
        """RGB image → normalised float32 array of shape (3, side, side)."""
        width, height = image.size
        if width <= height:
            size = (self.side, int(self.side * height / width))
        else:
            size = (int(self.side * width / height), self.side)
        if size != image.size:
            image = image.resize(size, self.resample)
        left = round((size[0] - self.side) / 2.0)
        top = round((size[1] - self.side) / 2.0)
        image = image.crop((left, top, left + self.side, top + self.side))
        pixels = np.asarray(image, dtype=np.float32) * (1 / 255)
        pixels = (pixels - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(pixels.transpose(2, 0, 1))
