"""The steps the search benchmark times, each on its own: the in-process baseline (the mesh's
per-query work in one process) and, through the mesh, loading the index, a concurrency level,
the encoder alone, the hot-query cache and ingest. bench/search.py runs them in order, the
services started around them, and reports.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from bench.common import console, latency_summary
from bench.index import DIMENSION, SEGMENTS_PER_VIDEO, upsert_request
from clipmesh.demo.synthetic import encode_image, gradient_image
from clipmesh.encoder.images import ImageLimits, PixelTransform, decode_image
from clipmesh.encoder.model import load_model
from clipmesh.encoder.weights import WeightsSpec
from clipmesh.index.collection import AnnSettings, Collection
from clipmesh.index.records import SearchQuery, Segments, VideoMeta, VideoWrite
from clipmesh_api.encoder.v1 import encoder_pb2, encoder_pb2_grpc
from clipmesh_api.index.v1 import index_pb2, index_pb2_grpc
from clipmesh_client import AsyncClient, ClipmeshError, IngestProgress, IngestSummary
from clipmesh_client.wire import ChannelPolicy, open_aio_channel

WEIGHTS = "random:0"
COLLECTION = "default"  # the orchestrator's default collection: searches name none
INGEST_COLLECTION = "bench_ingest"  # kept apart from the synthetic vectors
TOP_K = 10
WARMUP_QUERIES = 10


def query_images(count: int) -> list[bytes]:
    """Distinct JPEGs, so no two queries share a cache key."""
    return [encode_image(gradient_image(256, 256, seed=1000 + i)) for i in range(count)]


def video_writes(vectors: np.ndarray) -> list[VideoWrite]:
    """The in-process twin of bench.index.upsert_request: video `v{n}`, 2 s segments."""
    starts = np.arange(SEGMENTS_PER_VIDEO, dtype=np.float64) * 2
    writes = []
    for v in range(len(vectors) // SEGMENTS_PER_VIDEO):
        block = vectors[v * SEGMENTS_PER_VIDEO : (v + 1) * SEGMENTS_PER_VIDEO]
        segments = Segments(starts, starts + 2, starts + 1, block, ("",) * SEGMENTS_PER_VIDEO)
        meta = VideoMeta(video_id=f"v{v}", duration_s=SEGMENTS_PER_VIDEO * 2.0)
        writes.append(VideoWrite(meta, segments))
    return writes


def inprocess_collection(vectors: np.ndarray) -> Collection:
    """The index service's own Collection, loaded and rebuilt until its plan fits the size."""
    collection = Collection(COLLECTION, DIMENSION, AnnSettings())
    writes = video_writes(vectors)
    for start in range(0, len(writes), 100):
        collection.apply_upsert(writes[start : start + 100])
    while (plan := collection.wanted_plan()) is not None:
        collection.rebuild(plan)
    return collection


class InProcessSearch:
    """The mesh's per-query work without the mesh: decode + preprocess, embed, search."""

    def __init__(self, args: argparse.Namespace, collection: Collection) -> None:
        self.collection = collection
        self.model = load_model(
            args.model,
            WeightsSpec.parse(WEIGHTS),
            device=args.device,
            precision=args.precision,
            threads=args.threads,
            int8_cache_dir=args.int8_cache_dir,
        )
        # The encoder service's own preprocessing: PIL + NumPy, falling back to open_clip's.
        self.to_pixels = PixelTransform.from_config(self.model.preprocess_config) or (
            lambda image: self.model.preprocess(image).numpy()
        )
        self.limits = ImageLimits(max_bytes=16 << 20, max_pixels=40_000_000)

    def __call__(self, data: bytes) -> tuple[float, float, float]:
        """Seconds spent decoding + preprocessing, embedding and searching one query image."""
        began = time.perf_counter()
        pixels = self.to_pixels(decode_image(data, 0, self.limits, self.model.info.image_size))
        decoded = time.perf_counter()
        vector = self.model.embed_images(torch.from_numpy(pixels[None]))[0]
        embedded = time.perf_counter()
        self.collection.search(SearchQuery(COLLECTION, vector, top_k=TOP_K, max_moments=3))
        return decoded - began, embedded - decoded, time.perf_counter() - embedded


def inprocess_baseline(
    args: argparse.Namespace, vectors: np.ndarray, images: list[bytes]
) -> dict[str, object]:
    """Sequential queries through `InProcessSearch`; the model is freed before returning."""
    started = time.perf_counter()
    collection = inprocess_collection(vectors)
    console.print(
        f"in-process collection: {collection.plan.kind} (nlist {collection.plan.nlist}) "
        f"built in {time.perf_counter() - started:.1f}s"
    )
    search = InProcessSearch(args, collection)
    # The first few calls are slow (oneDNN builds its kernels), so they are not measured.
    for data in images[:WARMUP_QUERIES]:
        search(data)
    stages = [search(images[i % len(images)]) for i in range(args.inprocess_queries)]
    info = search.model.info
    del search, collection
    gc.collect()
    return {
        "queries": len(stages),
        "device": info.device,
        "precision": info.precision,
        **latency_summary([sum(s) for s in stages]),
        "stage_p50_ms": {
            name: round(statistics.median(s[i] for s in stages) * 1000, 2)
            for i, name in enumerate(("decode_preprocess", "embed", "search"))
        },
    }


async def load_index(target: str, vectors: np.ndarray) -> dict[str, object]:
    """Upserts the vectors (two requests in flight) and waits until no rebuild is running."""
    options = ChannelPolicy(timeout_s=600, max_attempts=1, max_message_mb=256)
    async with open_aio_channel(target, options) as channel:
        stub = index_pb2_grpc.IndexServiceStub(channel)
        started = time.perf_counter()
        videos = len(vectors) // SEGMENTS_PER_VIDEO
        pending: set[asyncio.Task] = set()
        for first in range(0, videos, 100):
            request = upsert_request(vectors, first, min(100, videos - first))
            request.collection = COLLECTION
            pending.add(asyncio.ensure_future(stub.UpsertSegments(request)))
            if len(pending) >= 2:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
        await asyncio.gather(*pending)
        while True:
            stats = await stub.GetStats(index_pb2.GetStatsRequest(collection=COLLECTION))
            if not stats.collections[0].rebuilding:
                break
            await asyncio.sleep(0.5)
    return {
        "index_load_s": round(time.perf_counter() - started, 1),
        "index_type": stats.collections[0].index_type,
    }


async def search_level(
    client: AsyncClient, images: list[bytes], concurrency: int, count: int, budget_ms: int
) -> dict[str, object]:
    """`count` uncached image searches shared by `concurrency` callers, back to back."""
    latencies: list[float] = []
    stage_ms: dict[str, list[float]] = {}
    errors: Counter[str] = Counter()
    next_query = iter(range(count))

    async def caller() -> None:
        for n in next_query:
            began = time.perf_counter()
            try:
                result = await client.search(
                    image=images[n % len(images)], top_k=TOP_K, skip_cache=True, budget_ms=budget_ms
                )
            except ClipmeshError as error:
                errors[error.code.name] += 1
                continue
            latencies.append(time.perf_counter() - began)
            for stage, ms in result.timings_ms.items():
                stage_ms.setdefault(stage, []).append(ms)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        **(latency_summary(latencies) if latencies else {"p50_ms": None, "p99_ms": None}),
        "qps": round(len(latencies) / elapsed, 2),
        "queries": count,
        "errors": dict(errors),
        "stage_p50_ms": {k: round(statistics.median(v), 2) for k, v in stage_ms.items()},
    }


async def encoder_direct(target: str, images: list[bytes], count: int) -> dict[str, float]:
    """The encoder service alone, one image per call, sequentially: the mesh minus the
    orchestrator's hop and the index."""
    latencies = []
    async with open_aio_channel(target, ChannelPolicy(timeout_s=30, max_attempts=1)) as channel:
        stub = encoder_pb2_grpc.EncoderServiceStub(channel)
        for n in range(count):
            request = encoder_pb2.EmbedImagesRequest(
                images=[images[n % len(images)]], priority=encoder_pb2.PRIORITY_INTERACTIVE
            )
            began = time.perf_counter()
            await stub.EmbedImages(request)
            latencies.append(time.perf_counter() - began)
    return latency_summary(latencies)


async def cached_latency(client: AsyncClient, image: bytes, repeats: int) -> dict[str, object]:
    """One query repeated: the first call fills the cache, the rest should be answered by it."""
    await client.search(image=image, top_k=TOP_K)
    latencies, hits = [], 0
    for _ in range(repeats):
        began = time.perf_counter()
        result = await client.search(image=image, top_k=TOP_K)
        latencies.append(time.perf_counter() - began)
        hits += result.cache_hit
    return {**latency_summary(latencies), "repeats": repeats, "cache_hits": hits}


async def ingest_speed(client: AsyncClient, paths: list[Path]) -> dict[str, object]:
    """Ingests the demo library; seconds of video per wall-clock second, seen by the caller."""
    started = time.perf_counter()
    summary, failures = None, []
    async for event in client.ingest([str(p) for p in paths], collection=INGEST_COLLECTION):
        if isinstance(event, IngestProgress) and event.stage == "failed":
            failures.append(f"{Path(event.uri).name}: {event.error_reason} {event.error_message}")
        elif isinstance(event, IngestSummary):
            summary = event
    wall_s = time.perf_counter() - started
    if summary is None:
        raise RuntimeError("the ingest stream ended without a summary")
    return {
        "videos": len(paths),
        "ingested": summary.ingested,
        "failed": summary.failed,
        "failures": failures,
        "segments": summary.segments,
        "video_s": round(summary.video_seconds, 1),
        "wall_s": round(wall_s, 2),
        "server_wall_s": round(summary.wall_seconds, 2),
        "realtime_factor": round(summary.video_seconds / wall_s, 2),
    }
