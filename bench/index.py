"""Index benchmark: build time, bytes per vector, recall@10 and latency through gRPC, at 100k
and 1M segments of clustered 512-d vectors, in the default and the compact mode.

    python bench/index.py [--sizes 100000,1000000] [--modes auto,compact] [--queries 400]

Data: a Gaussian mixture (one unit centre per 10 videos — 200 at 100k segments, 2,000 at 1M —
noise chosen so a member's cosine to its centre is about 0.75), L2-normalised; a video is 50
consecutive segments drawn from 3 of the clusters, so every cluster is shared by ~30 videos.
Queries are noisy copies of random stored segments. Ground truth is exact, at the level the
API answers: the 10 videos whose best segment scores highest.

Beside the caller's latency it records where a search's time goes: the index's own stage
timings from each answer (`ann`, `fetch`, `rank`, …), and the latency of a trivial RPC
(GetStats) through the same channel, server and interceptors — what any call costs before the
index does any work.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import console, latency_summary, print_table, service_process, write_results
from clipmesh_api.index.v1 import index_pb2, index_pb2_grpc
from clipmesh_client.wire import ChannelPolicy, open_aio_channel

DIMENSION = 512
SEGMENTS_PER_VIDEO = 50
VIDEOS_PER_CLUSTER = 10
VIDEOS_PER_REQUEST = 100
TOP_K = 10
FLOOR_CALLS = 400


def clustered_vectors(count: int, dimension: int, seed: int = 0) -> np.ndarray:
    """`count` unit vectors from a Gaussian mixture; videos draw from 3 clusters each."""
    rng = np.random.default_rng(seed)
    videos = count // SEGMENTS_PER_VIDEO
    clusters = max(1, videos // VIDEOS_PER_CLUSTER)
    centres = rng.normal(size=(clusters, dimension)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    own = rng.integers(0, clusters, size=(videos, 3))
    pick = own[
        np.repeat(np.arange(videos), SEGMENTS_PER_VIDEO),
        rng.integers(0, 3, size=videos * SEGMENTS_PER_VIDEO),
    ]
    vectors = np.empty((count, dimension), np.float32)
    for start in range(0, count, 100_000):
        rows = slice(start, min(start + 100_000, count))
        noise = rng.normal(scale=0.9 / np.sqrt(dimension), size=(rows.stop - rows.start, dimension))
        block = centres[pick[rows]] + noise.astype(np.float32)
        vectors[rows] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return vectors


def queries_from(vectors: np.ndarray, count: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picked = vectors[rng.integers(0, len(vectors), size=count)]
    noisy = picked + rng.normal(scale=0.5 / np.sqrt(vectors.shape[1]), size=picked.shape)
    return (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)


def exact_top_videos(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """(queries, k) video numbers ranked by their best segment's exact score."""
    videos = len(vectors) // SEGMENTS_PER_VIDEO
    best = np.full((len(queries), videos), -np.inf, np.float32)
    for start in range(0, len(vectors), 200_000):
        scores = queries @ vectors[start : start + 200_000].T
        first = start // SEGMENTS_PER_VIDEO
        per_video = scores.reshape(len(queries), -1, SEGMENTS_PER_VIDEO).max(axis=2)
        best[:, first : first + per_video.shape[1]] = per_video
    return np.argsort(-best, axis=1)[:, :k]


def upsert_request(
    vectors: np.ndarray, first_video: int, videos: int
) -> index_pb2.UpsertSegmentsRequest:
    request = index_pb2.UpsertSegmentsRequest(collection="bench")
    for v in range(first_video, first_video + videos):
        entry = request.videos.add()
        entry.video.video_id = f"v{v}"
        entry.video.duration_s = SEGMENTS_PER_VIDEO * 2.0
        block = vectors[v * SEGMENTS_PER_VIDEO : (v + 1) * SEGMENTS_PER_VIDEO]
        for j, row in enumerate(block):
            entry.segments.add(
                start_s=2 * j, end_s=2 * j + 2, keyframe_s=2 * j + 1, vector=row.tolist()
            )
    return request


async def load_and_measure(
    target: str, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray
) -> dict[str, object]:
    options = ChannelPolicy(timeout_s=600, max_attempts=1, max_message_mb=256)
    async with open_aio_channel(target, options) as channel:
        stub = index_pb2_grpc.IndexServiceStub(channel)
        started = time.perf_counter()
        videos = len(vectors) // SEGMENTS_PER_VIDEO
        pending: set[asyncio.Task] = set()
        for first in range(0, videos, VIDEOS_PER_REQUEST):
            request = upsert_request(vectors, first, min(VIDEOS_PER_REQUEST, videos - first))
            pending.add(asyncio.ensure_future(stub.UpsertSegments(request)))
            if len(pending) >= 2:  # keep the server busy while the next request is built
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
        await asyncio.gather(*pending)
        loaded_s = time.perf_counter() - started
        while True:
            stats = (
                await stub.GetStats(index_pb2.GetStatsRequest(collection="bench"))
            ).collections[0]
            if not stats.rebuilding:
                break
            await asyncio.sleep(0.5)
        build_s = time.perf_counter() - started
        console.print(
            f"loaded {len(vectors)} segments in {loaded_s:.1f}s; index ready after "
            f"{build_s:.1f}s ({stats.index_type})"
        )
        latencies, found, top1 = [], 0, 0
        stages: defaultdict[str, list[float]] = defaultdict(list)
        in_index: list[float] = []
        for warm in queries[:20]:
            await stub.Search(
                index_pb2.SearchRequest(
                    collection="bench",
                    top_k=TOP_K,
                    queries=[index_pb2.WeightedVector(vector=warm.tolist(), weight=1)],
                )
            )
        for query, expected in zip(queries, truth, strict=True):
            request = index_pb2.SearchRequest(
                collection="bench",
                top_k=TOP_K,
                queries=[index_pb2.WeightedVector(vector=query.tolist(), weight=1)],
            )
            began = time.perf_counter()
            response = await stub.Search(request)
            latencies.append(time.perf_counter() - began)
            for timing in response.timings:
                stages[timing.stage].append(timing.duration_ms)
            in_index.append(sum(t.duration_ms for t in response.timings))
            got = {int(hit.video.video_id[1:]) for hit in response.hits}
            found += len(got & set(expected.tolist()))
            top1 += int(expected[0]) in got
        floor = []
        for _ in range(FLOOR_CALLS):
            began = time.perf_counter()
            await stub.GetStats(index_pb2.GetStatsRequest(collection="bench"))
            floor.append(time.perf_counter() - began)
        return {
            "index_type": stats.index_type,
            "build_s": round(build_s, 1),
            "load_s": round(loaded_s, 1),
            "bytes_per_vector": round(stats.memory_bytes / stats.segments, 1),
            "recall_at_10": round(found / (TOP_K * len(queries)), 4),
            "true_nn_in_top_10": round(top1 / len(queries), 4),
            **latency_summary(latencies),
            "index_stages_p50_ms": round(float(np.median(in_index)), 3),
            "stage_p50_ms": {name: round(float(np.median(ms)), 3) for name, ms in stages.items()},
            "rpc_floor_p50_ms": latency_summary(floor)["p50_ms"],
        }


def directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run(size: int, mode: str, queries_count: int) -> dict[str, object]:
    vectors = clustered_vectors(size, DIMENSION)
    queries = queries_from(vectors, queries_count)
    truth = exact_top_videos(vectors, queries, TOP_K)
    with TemporaryDirectory(prefix="clipmesh-bench-index-") as data_dir:
        env = {
            "CLIPMESH_INDEX_DATA_DIR": data_dir,
            "CLIPMESH_INDEX_INDEX_MODE": mode,
            "CLIPMESH_INDEX_MAX_MESSAGE_MB": "256",
        }
        with service_process("index", env) as service:
            result = asyncio.run(load_and_measure(service.target, vectors, queries, truth))
            # Other work on the machine shows in the tail: the 1-minute load as the queries end.
            result["load_average_1m"] = round(os.getloadavg()[0], 2)
            result["rss_bytes_per_vector"] = round(service.rss_bytes() / size, 1)
        result["disk_bytes_per_vector"] = round(directory_bytes(Path(data_dir)) / size, 1)
    return {"mode": mode, "segments": size, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--modes", default="auto,compact", help="index modes to run")
    parser.add_argument("--queries", type=int, default=400)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[str, dict[str, object]] = {}
    for size in sizes:
        for mode in args.modes.split(","):
            key = f"{size}" if mode == "auto" else f"{size}_compact"
            results[key] = run(size, mode, args.queries)
            console.print(key, results[key])
    columns = [
        "run",
        "index",
        "build s",
        "B/vec mem",
        "B/vec disk",
        "recall@10",
        "NN in top10",
        "p50 ms",
        "p99 ms",
        "in index p50",
        "floor p50",
    ]
    rows = [
        [
            k,
            r["index_type"],
            r["build_s"],
            r["bytes_per_vector"],
            r["disk_bytes_per_vector"],
            r["recall_at_10"],
            r["true_nn_in_top_10"],
            r["p50_ms"],
            r["p99_ms"],
            r["index_stages_p50_ms"],
            r["rpc_floor_p50_ms"],
        ]
        for k, r in results.items()
    ]
    print_table("index: clustered 512-d vectors, top-10 videos through gRPC", columns, rows)
    largest = results.get(str(max(sizes)), {})
    compact = results.get(f"{max(sizes)}_compact", {})
    targets = {
        "default_recall_at_10_at_least_0_99": largest.get("recall_at_10", 0) >= 0.99,
        "default_p99_ms_at_most_5": largest.get("p99_ms", 1e9) <= 5,
        "default_bytes_per_vector_at_most_600": largest.get("bytes_per_vector", 1e9) <= 600,
        "compact_bytes_per_vector_at_most_100": compact.get("bytes_per_vector", 1e9) <= 100,
        "compact_true_nn_in_top_10_at_least_0_9": compact.get("true_nn_in_top_10", 0) >= 0.9,
    }
    write_results(
        "index",
        {
            "dimension": DIMENSION,
            "segments_per_video": SEGMENTS_PER_VIDEO,
            "queries": args.queries,
            "sizes": results,
            "targets_met": targets,
        },
    )


if __name__ == "__main__":
    main()
