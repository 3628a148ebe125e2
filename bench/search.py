"""Search benchmark: SearchVideos end to end through the orchestrator at concurrency 1, 4 and 16
over 100k indexed segments, against the same encoder + index work in one process; then the
hot-query cache and ingest speed.

    python bench/search.py [--segments 100000] [--model ViT-B-32] [--quick]

The phases run one after another so they never share the cores: the in-process baseline first
(the model and a FAISS collection in this process), then the mesh (encoder, index and
orchestrator as processes, called through the SDK's AsyncClient, as users call it). Queries
are 40 distinct 256×256 JPEGs sent with `skip_cache`, so every search is embedded and searched;
the cache is measured on its own. The index holds the clustered vectors of bench/index.py,
loaded straight through UpsertSegments; random weights are fine: speed does not depend on them.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import console, latency_summary, print_table, service_process, write_results
from bench.index import DIMENSION, SEGMENTS_PER_VIDEO, clustered_vectors, upsert_request
from clipmesh.demo.library import make_library
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
QUERY_IMAGES = 40
TOP_K = 10
WARMUP_QUERIES = 10
# Queries per concurrency level: enough for a p99 that is not just the maximum, few enough
# that the whole benchmark stays within minutes on a 2-core CPU.
QUERIES_AT = {1: 120, 4: 240, 16: 480}
TARGETS = {
    "c4_p99_ms_at_most": 300,
    "mesh_overhead_ratio_at_most": 1.2,
    "cached_p50_ms_at_most": 10,
    "ingest_realtime_factor_at_least": 10,
}


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
            args.model, WeightsSpec.parse(WEIGHTS), device=args.device, threads=args.threads
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


async def measure_mesh(
    args: argparse.Namespace,
    targets: dict[str, str],
    images: list[bytes],
    library: list[Path],
) -> dict[str, object]:
    """Warm-up, the concurrency levels, the encoder alone, the cache, then ingest."""
    async with AsyncClient(targets["orchestrator"], timeout_s=120, max_attempts=1) as client:
        await client.wait_until_ready(timeout_s=60)
        # Warm-up at every level: the first calls pay for channel set-up and thread pools, and
        # the encoder's first batch of each new size for oneDNN building its kernels.
        for concurrency in QUERIES_AT:
            await search_level(client, images, concurrency, WARMUP_QUERIES, args.budget_ms)
        levels = {}
        for concurrency, queries in QUERIES_AT.items():
            count = max(concurrency, queries // args.scale)
            levels[str(concurrency)] = await search_level(
                client, images, concurrency, count, args.budget_ms
            )
            console.print(f"mesh concurrency {concurrency}: {levels[str(concurrency)]}")
        encoder = await encoder_direct(
            targets["encoder"], images, max(1, QUERIES_AT[1] // args.scale)
        )
        console.print(f"encoder alone, sequential: {encoder}")
        cached = await cached_latency(client, images[0], args.cached_repeats)
        console.print(f"cached: {cached}")
        ingest = await ingest_speed(client, library)
        console.print(f"ingest: {ingest}")
    return {"concurrency": levels, "encoder_direct": encoder, "cached": cached, "ingest": ingest}


def service_log_problems(service: str) -> list[str]:
    """WARNING and ERROR lines a service logged so far (its log is removed when it stops)."""
    log = Path(__file__).parent / "results" / f"{service}.bench.log.tmp"
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    return [line[:300] for line in lines if '"WARNING"' in line or '"ERROR"' in line]


def mesh_phase(
    args: argparse.Namespace, vectors: np.ndarray, images: list[bytes], library_dir: Path
) -> dict[str, object]:
    """Starts encoder, index and orchestrator, loads the index, and measures through them."""
    with (
        tempfile.TemporaryDirectory(prefix="clipmesh-bench-search-") as data_dir,
        ExitStack() as stack,
    ):
        encoder = stack.enter_context(
            service_process(
                "encoder",
                {
                    "CLIPMESH_ENCODER_MODEL": args.model,
                    "CLIPMESH_ENCODER_WEIGHTS": WEIGHTS,
                    "CLIPMESH_ENCODER_DEVICE": args.device,
                    "CLIPMESH_ENCODER_INFERENCE_THREADS": str(args.threads),
                    "CLIPMESH_ENCODER_DATA_DIR": f"{data_dir}/encoder",
                },
            )
        )
        index = stack.enter_context(
            service_process(
                "index",
                {
                    "CLIPMESH_INDEX_DATA_DIR": f"{data_dir}/index",
                    "CLIPMESH_INDEX_MAX_MESSAGE_MB": "256",
                },
            )
        )
        orchestrator = stack.enter_context(
            service_process(
                "orchestrator",
                {
                    "CLIPMESH_ORCHESTRATOR_DATA_DIR": f"{data_dir}/orchestrator",
                    "CLIPMESH_ORCHESTRATOR_ENCODER_TARGET": encoder.target,
                    "CLIPMESH_ORCHESTRATOR_INDEX_TARGET": index.target,
                    "CLIPMESH_ORCHESTRATOR_ALLOWED_ROOTS": str(library_dir.resolve()),
                },
            )
        )
        loaded = asyncio.run(load_index(index.target, vectors))
        console.print(f"index loaded: {loaded}")
        library = sorted(library_dir.glob("*.mp4"))
        targets = {"orchestrator": orchestrator.target, "encoder": encoder.target}
        result = asyncio.run(measure_mesh(args, targets, images, library))
        result["service_log_problems"] = {
            name: service_log_problems(name) for name in ("encoder", "index", "orchestrator")
        }
    return {**loaded, **result}


def report(args: argparse.Namespace, baseline: dict, mesh: dict) -> None:
    """Prints the tables and writes bench/results/search.json."""
    levels, cached, ingest = mesh["concurrency"], mesh["cached"], mesh["ingest"]
    ratio = round(levels["1"]["p50_ms"] / baseline["p50_ms"], 3)
    rows = [
        ["in-process, sequential", baseline["queries"], "", baseline["p50_ms"], baseline["p99_ms"]]
    ]
    rows += [
        [f"mesh, concurrency {c}", r["queries"], r["qps"], r["p50_ms"], r["p99_ms"]]
        for c, r in levels.items()
    ]
    rows.append(
        ["mesh, cached, sequential", cached["repeats"], "", cached["p50_ms"], cached["p99_ms"]]
    )
    print_table(
        f"SearchVideos, {args.model} on {baseline['device']} ({baseline['precision']}), "
        f"{args.segments:,} segments ({mesh['index_type']})",
        ["mode", "queries", "queries/s", "p50 ms", "p99 ms"],
        rows,
    )
    stages = levels["1"]["stage_p50_ms"]
    print_table(
        "where a query's time goes at concurrency 1 (medians, ms)",
        ["stage", "mesh", "in-process"],
        [
            ["encode / embed", stages.get("encode"), baseline["stage_p50_ms"]["embed"]],
            ["index / search", stages.get("index"), baseline["stage_p50_ms"]["search"]],
            ["encoder service alone (caller-side)", mesh["encoder_direct"]["p50_ms"], ""],
            ["orchestrator total", stages.get("total"), ""],
            ["caller-side p50", levels["1"]["p50_ms"], baseline["p50_ms"]],
        ],
    )
    console.print(
        f"mesh/in-process p50 at c=1: {ratio}; ingest: {ingest['video_s']} s of video in "
        f"{ingest['wall_s']} s = {ingest['realtime_factor']}× real time"
    )
    met = {
        "c4_p99_ms_at_most": (levels["4"]["p99_ms"] or 1e9) <= TARGETS["c4_p99_ms_at_most"],
        "mesh_overhead_ratio_at_most": ratio <= TARGETS["mesh_overhead_ratio_at_most"],
        "cached_p50_ms_at_most": cached["p50_ms"] <= TARGETS["cached_p50_ms_at_most"],
        "ingest_realtime_factor_at_least": ingest["realtime_factor"]
        >= TARGETS["ingest_realtime_factor_at_least"],
    }
    write_results(
        "search",
        {
            "model": args.model,
            "weights": WEIGHTS,
            "device": baseline["device"],
            "precision": baseline["precision"],
            "inference_threads": args.threads,
            "segments": args.segments,
            "index_type": mesh["index_type"],
            "index_load_s": mesh["index_load_s"],
            "query_images": QUERY_IMAGES,
            "top_k": TOP_K,
            "budget_ms": args.budget_ms,
            "concurrency": levels,
            "stage_p50_ms_at_c1": stages,
            "inprocess": baseline,
            "inprocess_p50_ms": baseline["p50_ms"],
            "mesh_overhead_ratio": ratio,
            "encoder_direct_c1": mesh["encoder_direct"],
            "cached": cached,
            "cached_p50_ms": cached["p50_ms"],
            "cached_p99_ms": cached["p99_ms"],
            "ingest": ingest,
            "ingest_realtime_factor": ingest["realtime_factor"],
            "service_log_problems": mesh["service_log_problems"],
            "targets": TARGETS,
            "targets_met": met,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=100_000)
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch intra-op threads, here and in the encoder "
        "service (0: torch's default, all cores)",
    )
    parser.add_argument("--inprocess-queries", type=int, default=100)
    parser.add_argument("--cached-repeats", type=int, default=200)
    parser.add_argument("--ingest-videos", type=int, default=8, help="demo library size")
    parser.add_argument(
        "--budget-ms",
        type=int,
        default=10_000,
        help="search budget: generous, so queueing at "
        "high concurrency shows as latency instead of DEADLINE_EXCEEDED",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 10k segments, a quarter of the queries"
    )
    args = parser.parse_args()
    args.scale = 4 if args.quick else 1
    if args.quick:
        args.segments = min(args.segments, 10_000)
        args.inprocess_queries, args.cached_repeats = 20, 50
        args.ingest_videos = min(args.ingest_videos, 2)

    vectors = clustered_vectors(args.segments, DIMENSION)
    images = query_images(QUERY_IMAGES)
    with tempfile.TemporaryDirectory(prefix="clipmesh-bench-library-") as scratch:
        library_dir = Path(scratch) / "library"
        make_library(library_dir, count=args.ingest_videos, seed=0)
        baseline = inprocess_baseline(args, vectors, images)
        console.print(f"in-process: {baseline}")
        mesh = mesh_phase(args, vectors, images, library_dir)
    report(args, baseline, mesh)


if __name__ == "__main__":
    main()
