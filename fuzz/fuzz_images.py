"""Fuzzes image intake: the encoder's decode and preprocessing, and previs reference images.

Each input goes through both paths untrusted image bytes take: `decode_image` then the
model's `PixelTransform` (EmbedImages, and SearchVideos' query images, which the orchestrator
forwards to the encoder unchanged), and `CompliancePolicy.check_reference_image` (previs
reference images). Both must return or raise `InvalidArgument`; a decoded image must be RGB
within the pixel cap, and the model input must be finite and of the model's shape.

Run it through `fuzz/run.py`, or directly with libFuzzer flags and a scratch corpus first:
`python -m fuzz.fuzz_images -runs=1000 build/fuzz/images/corpus fuzz/corpus/images`.
"""

from __future__ import annotations

import atheris

from fuzz.common import INSTRUMENTED, expect, fuzz

with atheris.instrument_imports(include=INSTRUMENTED):
    import numpy as np
    from PIL import Image

    from clipmesh.encoder.images import ImageLimits, PixelTransform, decode_image
    from clipmesh.previs.compliance import CompliancePolicy
    from clipmesh.runtime.errors import InvalidArgument

# The encoder's defaults (16 MiB, 40 megapixels) and ViT-B-32's preprocessing.
LIMITS = ImageLimits(max_bytes=16 << 20, max_pixels=40_000_000)
TRANSFORM = PixelTransform(
    side=224,
    mean=(0.48145466, 0.4578275, 0.40821073),
    std=(0.26862954, 0.26130258, 0.27577711),
    resample=Image.Resampling.BICUBIC,
)
POLICY = CompliancePolicy({})


def check(data: bytes) -> None:
    """Both image paths on `data`; raises on anything but `InvalidArgument`."""
    try:
        image = decode_image(data, 0, LIMITS, TRANSFORM.side)
    except InvalidArgument:
        pass
    else:
        width, height = image.size
        expect(image.mode == "RGB", f"decoded to mode {image.mode}")
        expect(0 < width * height <= LIMITS.max_pixels, f"decoded {width}x{height}")
        pixels = TRANSFORM(image)
        expect(pixels.shape == (3, 224, 224), f"model input of shape {pixels.shape}")
        expect(bool(np.isfinite(pixels).all()), "model input is not finite")
    POLICY.check_reference_image(data, field="references[0].image")


if __name__ == "__main__":
    fuzz(check, domain_errors=(InvalidArgument,))
