"""The encoder benchmark's int8 phase: precision=int8 (OpenVINO) against the precision `auto`
picks on this CPU (bf16 where it is native), in one run, on the same images.

Throughput alternates the two precisions round by round at each batch size and keeps each
one's median, so a neighbour's load on a shared machine falls on both alike. Fidelity is the
mean cosine of int8 to fp32 embeddings of the demo library: the keyframes ingest takes (what
the index holds) and the stills of its labelled queries (what searches send).
"""

from __future__ import annotations

import gc
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from clipmesh.cli.evaluation import load_queries
from clipmesh.demo.library import DEMO_QUERIES, library_keyframes, make_library
from clipmesh.encoder.images import ImageLimits, decode_image
from clipmesh.encoder.model import EncoderModel, choose_precision, load_model
from clipmesh.encoder.weights import WeightsSpec

ROUNDS = 3
_TEXTS = ("a slow pan across a colourful landscape", "aerial shot of a coastline", "雨中咖啡馆")


def demo_pictures(directory: Path, side: int) -> list:
    """The demo library's keyframes and its frame queries' stills, as decoded pictures."""
    library = directory / "library"
    specs = make_library(library, count=8, seed=0)
    stills = [q.image for q in load_queries(DEMO_QUERIES, media_root=library) if q.image]
    limits = ImageLimits(max_bytes=10**8, max_pixels=10**9)
    return library_keyframes(specs) + [
        decode_image(still, index, limits, side) for index, still in enumerate(stills)
    ]


def _images_per_s(model: EncoderModel, pixels: torch.Tensor, seconds: float) -> float:
    model.embed_images(pixels)  # warm-up
    started, done = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        model.embed_images(pixels)
        done += len(pixels)
    return done / (time.perf_counter() - started)


def int8_phase(
    model_name: str, weights: str, seconds: float, batch_sizes: Sequence[int]
) -> dict[str, object]:
    """Throughput of int8 and the baseline by batch, int8's best batch, and fidelity."""
    spec = WeightsSpec.parse(weights)
    baseline_precision = choose_precision("auto", torch.device("cpu"))
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-int8-") as scratch:
        fp32 = load_model(model_name, spec, device="cpu", precision="fp32")
        pictures = demo_pictures(Path(scratch), fp32.info.image_size)
        demo_pixels = torch.stack([fp32.preprocess(picture) for picture in pictures])
        tokens = fp32.tokenizer(list(_TEXTS))
        reference = fp32.embed_images(demo_pixels), fp32.embed_tokens(tokens)
        del fp32
        gc.collect()
        started = time.perf_counter()
        int8 = load_model(
            model_name, spec, device="cpu", precision="int8", int8_cache_dir=Path(scratch)
        )
        first_start_s = time.perf_counter() - started  # convert, cache, check
    image_cosines = np.sum(int8.embed_images(demo_pixels) * reference[0], axis=1)
    text_cosines = np.sum(int8.embed_tokens(tokens) * reference[1], axis=1)
    baseline = load_model(model_name, spec, device="cpu", precision=baseline_precision)

    pixels = demo_pixels.repeat(1 + max(batch_sizes) // len(demo_pixels), 1, 1, 1)
    runs: dict[str, dict[int, list[float]]] = {"int8": {}, baseline_precision: {}}
    for batch in batch_sizes:
        for _ in range(ROUNDS):
            for name, model in (("int8", int8), (baseline_precision, baseline)):
                rate = _images_per_s(model, pixels[:batch], seconds / ROUNDS)
                runs[name].setdefault(batch, []).append(rate)
    medians = {
        name: {batch: round(statistics.median(rates), 1) for batch, rates in by_batch.items()}
        for name, by_batch in runs.items()
    }
    best = max(medians["int8"], key=medians["int8"].get)
    return {
        "runtime": int8.info.runtime,
        "images_per_s": medians["int8"][best],
        "best_batch": best,
        f"speedup_vs_{baseline_precision}": round(
            medians["int8"][best] / medians[baseline_precision][best], 3
        ),
        "baseline_precision": baseline_precision,
        f"{baseline_precision}_images_per_s_same_batch": medians[baseline_precision][best],
        f"{baseline_precision}_best_images_per_s": max(medians[baseline_precision].values()),
        "images_per_s_by_batch": medians["int8"],
        f"{baseline_precision}_images_per_s_by_batch": medians[baseline_precision],
        "mean_cosine_to_fp32": round(float(image_cosines.mean()), 5),
        "min_cosine_to_fp32": round(float(image_cosines.min()), 5),
        "fidelity_images": len(demo_pixels),
        "text_mean_cosine_to_fp32": round(float(text_cosines.mean()), 5),
        "first_start_s": round(first_start_s, 1),
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    }
