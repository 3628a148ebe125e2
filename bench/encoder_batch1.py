"""One image at a time, served against bare: what the encoder service adds to the model's own time.

The bare side is the model in a process of its own (spawned, so nothing of the benchmark's
client shares its threads), doing the service's work for one query image: decode and
preprocess the JPEG (`ImagePreprocessor`, the service's own code) and embed it at batch 1. The
served side is one caller sending the same JPEGs to the encoder service through gRPC, back to
back. The two take turns in rounds, so a change in the machine's load falls on both; the ratio
is the median over rounds of served p50 / bare p50 (each round's pair measured a few seconds
apart). The service's own stage histograms, scraped around the served turns, say where the
served time went (bench/encoder_breakdown.py).
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from multiprocessing.connection import Connection

from bench.common import console
from bench.encoder_breakdown import breakdown, scrape
from bench.encoder_load import request_images
from clipmesh_api.encoder.v1 import encoder_pb2, encoder_pb2_grpc
from clipmesh_client.wire import ChannelPolicy, open_channel

PAIRS = 200
WARMUP_CALLS = 10


def _bare_model(conn: Connection, model_name: str, weights: str, device: str) -> None:
    """The spawned process: loads the model, then answers ("run", n) with n calls' timings."""
    import numpy as np
    import torch

    from clipmesh.encoder.encoding import ImagePreprocessor
    from clipmesh.encoder.images import ImageLimits
    from clipmesh.encoder.model import load_model
    from clipmesh.encoder.weights import WeightsSpec

    model = load_model(model_name, WeightsSpec.parse(weights), device=device)
    preprocess = ImagePreprocessor(model, ImageLimits(max_bytes=10**8, max_pixels=10**9))
    images = request_images()
    sent = 0

    def one_call() -> tuple[float, float]:
        nonlocal sent
        started = time.perf_counter()
        pixels = preprocess([images[sent % len(images)]])
        decoded = time.perf_counter()
        model.embed_images(torch.from_numpy(np.stack(pixels)))
        sent += 1
        return decoded - started, time.perf_counter() - decoded

    for _ in range(5):  # oneDNN builds its kernels on the first calls
        one_call()
    conn.send("ready")
    while conn.recv() is not None:
        conn.send(one_call())


class BareModel:
    """The model in a spawned process of its own, timed call by call on request."""

    def __init__(self, model_name: str, weights: str, device: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_bare_model, args=(child, model_name, weights, device), daemon=True
        )
        self._process.start()

    def wait_ready(self, timeout_s: float = 300) -> None:
        if not self._conn.poll(timeout_s) or self._conn.recv() != "ready":
            raise RuntimeError("the bare model process did not start")

    def call(self) -> tuple[float, float]:
        """One call's (decode and preprocess seconds, model seconds), timed in its process."""
        self._conn.send("call")
        return self._conn.recv()

    def close(self) -> None:
        self._conn.send(None)
        self._process.join(timeout=30)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def batch1_comparison(
    bare: BareModel, target: str, metrics_url: str, pairs: int = PAIRS
) -> dict[str, object]:
    """Served (one caller, through gRPC) against bare (the model alone), call by call."""
    bare.wait_ready()
    images = request_images()
    bare_calls: list[tuple[float, float]] = []
    served: list[float] = []
    with open_channel(target, ChannelPolicy(timeout_s=30, max_attempts=1)) as channel:
        stub = encoder_pb2_grpc.EncoderServiceStub(channel)

        def served_call(number: int) -> float:
            request = encoder_pb2.EmbedImagesRequest(images=[images[number % len(images)]])
            started = time.perf_counter()
            stub.EmbedImages(request)
            return time.perf_counter() - started

        for number in range(WARMUP_CALLS):
            served_call(number)
        before = scrape(metrics_url)
        for number in range(pairs):
            bare_calls.append(bare.call())
            served.append(served_call(number))
        after = scrape(metrics_url)
    bare_totals = [decode + model for decode, model in bare_calls]
    ratio = statistics.median(served) / statistics.median(bare_totals)
    result = {
        "served_vs_bare_batch1": round(ratio, 3),
        "pairs": pairs,
        "bare_p50_ms": _ms(statistics.median(bare_totals)),
        "bare_decode_preprocess_p50_ms": _ms(statistics.median(d for d, _ in bare_calls)),
        "bare_model_p50_ms": _ms(statistics.median(m for _, m in bare_calls)),
        "served_p50_ms": _ms(statistics.median(served)),
        "median_pair_ratio": round(
            statistics.median(s / b for s, b in zip(served, bare_totals, strict=True)), 3
        ),
        "served_faster_in_pairs": sum(s < b for s, b in zip(served, bare_totals, strict=True)),
        "served_stage_means": breakdown(before, after, pairs, statistics.mean(served) * 1000),
    }
    console.print(f"batch 1, served against bare: {result}")
    return result
