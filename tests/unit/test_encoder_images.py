"""Image intake refuses every bad class with INVALID_ARGUMENT naming the item and the reason."""

from __future__ import annotations

import re

import pytest
from PIL import Image

from clipmesh.encoder.images import ImageLimits, decode_image, sniff_format
from clipmesh.runtime.errors import InvalidArgument
from tests.media import encode, gradient_image, png_declaring, webp_declaring

LIMITS = ImageLimits(max_bytes=2_000_000, max_pixels=4_000_000)


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP"])
def test_accepted_formats_decode_to_rgb(image_format: str) -> None:
    data = encode(gradient_image(120, 80), image_format)
    assert sniff_format(data) == image_format
    image = decode_image(data, 0, LIMITS, min_side=32)
    assert image.mode == "RGB"
    assert image.size[0] >= 32 and image.size[1] >= 32


def test_transparent_and_palette_images_become_rgb() -> None:
    rgba = gradient_image(40, 40).convert("RGBA")
    palette = gradient_image(40, 40).convert("P")
    assert decode_image(encode(rgba, "PNG"), 0, LIMITS, 32).mode == "RGB"
    assert decode_image(encode(palette, "PNG"), 0, LIMITS, 32).mode == "RGB"


def test_large_jpegs_decode_at_reduced_scale_but_never_below_the_model_side() -> None:
    data = encode(gradient_image(1600, 1200), "JPEG")
    image = decode_image(data, 0, LIMITS, min_side=224)
    assert min(image.size) >= 224
    assert image.size[0] < 1600  # DCT scaling did its work


def _refusal(data: bytes, index: int = 3, limits: ImageLimits = LIMITS) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as caught:
        decode_image(data, index, limits, min_side=32)
    error = caught.value
    assert error.field == f"images[{index}]"
    assert error.message.startswith(f"images[{index}]")
    return error


def test_empty_bytes() -> None:
    assert _refusal(b"").reason == "EMPTY_IMAGE"


def test_too_many_bytes_is_refused_before_parsing() -> None:
    data = encode(gradient_image(64, 64), "PNG")
    error = _refusal(data, limits=ImageLimits(max_bytes=100, max_pixels=10**9))
    assert error.reason == "IMAGE_TOO_LARGE"


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (encode(gradient_image(16, 16), "GIF"), "GIF"),
        (encode(gradient_image(16, 16), "BMP"), "BMP"),
        (encode(gradient_image(16, 16), "TIFF"), "TIFF"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "SVG"),
        (b"just some text, not an image", "unrecognised"),
    ],
)
def test_unsupported_formats_are_named(data: bytes, named: str) -> None:
    error = _refusal(data)
    assert error.reason == "UNSUPPORTED_IMAGE_FORMAT"
    assert named in error.message and "JPEG, PNG and WebP" in error.message


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP"])
def test_truncated_images_are_refused(image_format: str) -> None:
    data = encode(gradient_image(200, 150), image_format)
    error = _refusal(data[: len(data) // 2])
    assert error.reason == "CORRUPT_IMAGE"


def test_a_valid_header_followed_by_garbage_is_corrupt() -> None:
    data = encode(gradient_image(64, 64), "JPEG")
    error = _refusal(data[:20] + bytes(range(256)) * 8)
    assert error.reason == "CORRUPT_IMAGE"


@pytest.mark.parametrize(("width", "height"), [(50_000, 50_000), (10_000, 5_000)])
def test_a_decompression_bomb_is_refused_before_decoding(width: int, height: int) -> None:
    bomb = png_declaring(width, height)  # gigapixels declared in a few hundred bytes
    assert len(bomb) < 1000
    error = _refusal(bomb)
    assert error.reason == "IMAGE_TOO_MANY_PIXELS"
    assert "refused before decoding" in error.message


@pytest.mark.parametrize(
    "bomb",
    [
        png_declaring(50_000, 50_000),  # above Pillow's own cap (178,956,970 pixels)
        png_declaring(5_000, 1_000),  # under it, over ours
        webp_declaring(16_384, 16_384),  # WebP's decoder would allocate the canvas on open
        webp_declaring(5_000, 1_000),
    ],
    ids=["png-over-pillow-cap", "png-under-pillow-cap", "webp-over-pillow-cap", "webp"],
)
def test_every_bomb_quotes_the_configured_limit_in_one_message(bomb: bytes) -> None:
    """Whatever its size or format, a bomb meets one limit and one message: the configured."""
    error = _refusal(bomb)
    assert error.reason == "IMAGE_TOO_MANY_PIXELS"
    assert re.fullmatch(
        r"images\[3\]: is \d+x\d+ = \d+ pixels; the limit is 4000000 \(refused before decoding\)",
        error.message,
    ), error.message
    assert "178956970" not in error.message and "decompression bomb DOS" not in error.message


def test_a_webp_within_the_limits_still_decodes() -> None:
    image = decode_image(encode(gradient_image(64, 48), "WEBP", lossless=True), 0, LIMITS, 32)
    assert image.size == (64, 48)


def test_a_zero_sized_image_is_refused() -> None:
    error = _refusal(png_declaring(0, 10))
    assert error.reason == "CORRUPT_IMAGE"


def test_pillow_is_not_trusted_with_the_content_type() -> None:
    # A PNG renamed JPEG is still read as what its bytes say.
    image = Image.new("RGB", (40, 40), "red")
    assert sniff_format(encode(image, "PNG")) == "PNG"
