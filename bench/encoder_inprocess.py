"""The encoder model alone, in this process, at each batch size: the ceiling the service should
approach (bench/encoder.py on the CPU, bench/gpu.py on CUDA).

It imports no more than the encoder service itself does (no PyAV, no OpenVINO), so the GPU
benchmark runs where only the encoder's packages are (tests/unit/test_bench_imports.py).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence

import torch

from bench.common import console
from clipmesh.demo.synthetic import encode_image, gradient_image
from clipmesh.encoder.images import ImageLimits, decode_image
from clipmesh.encoder.model import load_model
from clipmesh.encoder.weights import WeightsSpec

BATCH_SIZES = (1, 8, 16, 32, 64)
WEIGHTS = "random:0"


def matmul_peak_gflops(dtype: torch.dtype, seconds: float = 2.0) -> float:
    """Measured dense matmul throughput at a ViT-B MLP's shape: the roofline for this model."""
    a, b = torch.randn(1600, 768, dtype=dtype), torch.randn(768, 3072, dtype=dtype)
    a @ b
    started, runs = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        a @ b
        runs += 1
    return 2 * 1600 * 768 * 3072 * runs / (time.perf_counter() - started) / 1e9


def in_process(
    model_name: str, device: str, seconds: float, batch_sizes: Sequence[int] = BATCH_SIZES
) -> dict[str, object]:
    """The model alone, on preprocessed images, at each batch size."""
    model = load_model(model_name, WeightsSpec.parse(WEIGHTS), device=device)
    limits = ImageLimits(max_bytes=10**8, max_pixels=10**9)
    images = [
        decode_image(encode_image(gradient_image(256, 256, seed=i)), i, limits, 224)
        for i in range(max(batch_sizes))
    ]
    pixels = torch.stack([model.preprocess(image) for image in images])
    by_batch = {}
    for batch in batch_sizes:
        model.embed_images(pixels[:batch])  # warm-up
        started, done = time.perf_counter(), 0
        while time.perf_counter() - started < seconds:
            model.embed_images(pixels[:batch])
            done += batch
        by_batch[batch] = round(done / (time.perf_counter() - started), 1)
        console.print(f"in-process batch {batch}: {by_batch[batch]} images/s")
    info = model.info
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(info.precision, torch.float32)
    peak = matmul_peak_gflops(dtype) if info.device == "cpu" else None
    del model
    gc.collect()
    best = max(by_batch, key=by_batch.get)
    return {
        "model": model_name,
        "device": info.device,
        "precision": info.precision,
        "by_batch": by_batch,
        "best_batch": best,
        "best": by_batch[best],
        "matmul_peak_gflops": round(peak, 1) if peak else None,
    }
