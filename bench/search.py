"""Search benchmark: SearchVideos end to end through the orchestrator at concurrency 1, 4 and 16
over 100k indexed segments, against the same encoder + index work in one process; then the
hot-query cache and ingest speed.

    python bench/search.py [--segments 100000] [--model ViT-B-32] [--precision int8] [--quick]

The model runs at the fastest precision that passes the encoder's quality guard: int8 on a
CPU (its start-up check holds it to a mean cosine of 0.99 to fp32), fp16 on a GPU. Another
`--precision` writes `search-<precision>.json` beside the headline `search.json`.

The phases run one after another so they never share the cores: the in-process baseline first
(the model and a FAISS collection in this process), then the mesh (encoder, index and
orchestrator as processes, called through the SDK's AsyncClient, as users call it). Queries
are 40 distinct 256×256 JPEGs sent with `skip_cache`, so every search is embedded and searched;
the cache is measured on its own. The index holds the clustered vectors of bench/index.py,
loaded straight through UpsertSegments; random weights are fine: speed does not depend on them.
This module runs the phases and reports; each timed step is in bench/search_steps.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import console, cpu_seconds, print_table, service_process, write_results
from bench.index import DIMENSION, clustered_vectors
from bench.search_load import admission_at, budget_bounded
from bench.search_steps import (
    TOP_K,
    WARMUP_QUERIES,
    WEIGHTS,
    cached_latency,
    encoder_direct,
    ingest_speed,
    inprocess_baseline,
    load_index,
    query_images,
    search_level,
)
from clipmesh.demo.library import make_library
from clipmesh.encoder.model import choose_device
from clipmesh_client import AsyncClient

QUERY_IMAGES = 40
# Queries per concurrency level: enough for a p99 that is not just the maximum, few enough
# that the whole benchmark stays within minutes on a 2-core CPU.
QUERIES_AT = {1: 120, 4: 240, 16: 480}
USER_BUDGET_MS = 500  # what users search with: the product's latency budget
TARGETS = {
    "budget_bounded_qps_at_least": 45,
    "admitted_deadline_exceeded_at_most": 0,
    "refusal_p99_ms_at_most": 10,
    "c4_p99_ms_at_most": 300,
    "mesh_overhead_ratio_at_most": 1.2,
    "cached_p50_ms_at_most": 10,
    "ingest_realtime_factor_at_least": 10,
}


def cpu_now(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each service process, and by this one (the client)."""
    return {**{name: cpu_seconds(pid) for name, pid in pids.items()}, "client": time.process_time()}


def cpu_per_answer(
    pids: dict[str, int], before: dict[str, float], answered: int
) -> dict[str, object]:
    """CPU milliseconds each process spent per answered query since `before`, and the rate
    the machine's cores could answer at if they did nothing else."""
    after = cpu_now(pids)
    per_answer = {
        name: round((after[name] - before[name]) * 1000 / max(1, answered), 2) for name in after
    }
    total = sum(per_answer.values())
    return {
        "cpu_ms_per_answer": per_answer,
        "cpu_ms_per_answer_total": round(total, 2),
        "cores": os.cpu_count(),
        "cpu_bound_qps": round((os.cpu_count() or 1) * 1000 / total, 1) if total else None,
    }


async def measure_mesh(
    args: argparse.Namespace,
    targets: dict[str, str],
    pids: dict[str, int],
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
        # Under the users' budget: the highest open-loop rate held, and admission at c=32.
        # The CPU each process spends per answer over the open-loop steps: what bounds the
        # rate on a machine all of them share.
        cpu_before = cpu_now(pids)
        bounded = await budget_bounded(
            client,
            images,
            budget_ms=USER_BUDGET_MS,
            start=args.rate_start,
            step=args.rate_step,
            seconds=args.rate_seconds / args.scale,
        )
        answered = sum(
            step["outcomes"].get("OK", 0) + step["outcomes"].get("OK_LATE", 0)
            for step in bounded["steps"]
        )
        bounded.update(cpu_per_answer(pids, cpu_before, answered))
        admission = await admission_at(
            client, images, 32, max(64, 480 // args.scale), USER_BUDGET_MS
        )
        console.print(f"admission at concurrency 32: {admission}")
        impolite = await admission_at(
            client, images, 32, max(64, 480 // args.scale), USER_BUDGET_MS, polite=False
        )
        console.print(f"admission at concurrency 32, retry delays ignored: {impolite}")
        admission["impolite"] = impolite
        encoder = await encoder_direct(
            targets["encoder"], images, max(1, QUERIES_AT[1] // args.scale)
        )
        console.print(f"encoder alone, sequential: {encoder}")
        cached = await cached_latency(client, images[0], args.cached_repeats)
        console.print(f"cached: {cached}")
        ingest = await ingest_speed(client, library)
        console.print(f"ingest: {ingest}")
    return {
        "concurrency": levels,
        "budget_bounded": bounded,
        "admission_c32": admission,
        "encoder_direct": encoder,
        "cached": cached,
        "ingest": ingest,
    }


def service_log_problems(service: str) -> list[str]:
    """WARNING and ERROR lines a service logged so far (its log is removed when it stops)."""
    log = Path(__file__).parent / "results" / f"{service}.bench.log.tmp"
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    return [line[:300] for line in lines if '"WARNING"' in line or '"ERROR"' in line]


def fastest_precision(device: str) -> str:
    """int8 on a CPU (OpenVINO, checked against fp32 at start-up), fp16 on a GPU."""
    return "fp16" if choose_device(device).type == "cuda" else "int8"


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
                    "CLIPMESH_ENCODER_PRECISION": args.precision,
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
        pids = {"encoder": encoder.pid, "index": index.pid, "orchestrator": orchestrator.pid}
        result = asyncio.run(measure_mesh(args, targets, pids, images, library))
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
    bounded, admission = mesh["budget_bounded"], mesh["admission_c32"]
    print_table(
        f"under a {USER_BUDGET_MS} ms budget",
        ["measure", "value"],
        [
            [
                "highest open-loop rate held (99% within budget), queries/s",
                bounded["budget_bounded_qps"],
            ],
            [
                "CPU ms per answer, all processes (cores / that = the CPU's bound, queries/s)",
                f"{bounded['cpu_ms_per_answer_total']} ({bounded['cpu_bound_qps']})",
            ],
            ["c=32: admitted, then DEADLINE_EXCEEDED", admission["admitted_deadline_exceeded"]],
            ["c=32: refused at once (RESOURCE_EXHAUSTED)", admission["refusals"]],
            ["c=32: refusal p99 ms", admission["refusal_p99_ms"]],
            [
                "c=32: completed queries/s, p99 ms",
                f"{admission['completed_per_s']}, {admission['p99_ms']}",
            ],
        ],
    )
    met = {
        "budget_bounded_qps_at_least": bounded["budget_bounded_qps"]
        >= TARGETS["budget_bounded_qps_at_least"],
        "admitted_deadline_exceeded_at_most": admission["admitted_deadline_exceeded"]
        <= TARGETS["admitted_deadline_exceeded_at_most"],
        "refusal_p99_ms_at_most": (admission["refusal_p99_ms"] or 0)
        <= TARGETS["refusal_p99_ms_at_most"],
        "c4_p99_ms_at_most": (levels["4"]["p99_ms"] or 1e9) <= TARGETS["c4_p99_ms_at_most"],
        "mesh_overhead_ratio_at_most": ratio <= TARGETS["mesh_overhead_ratio_at_most"],
        "cached_p50_ms_at_most": cached["p50_ms"] <= TARGETS["cached_p50_ms_at_most"],
        "ingest_realtime_factor_at_least": ingest["realtime_factor"]
        >= TARGETS["ingest_realtime_factor_at_least"],
    }
    headline = args.precision == fastest_precision(args.device)
    write_results(
        "search" if headline else f"search-{args.precision}",
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
            "budget_bounded_qps": bounded["budget_bounded_qps"],
            "budget_bounded": bounded,
            "admitted_deadline_exceeded": admission["admitted_deadline_exceeded"],
            "refusal_p99_ms": admission["refusal_p99_ms"],
            "admission_c32": admission,
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
    parser.add_argument(
        "--precision",
        default=None,
        help="the encoder's precision, here and in the service (default: the fastest that "
        "passes the quality guard, int8 on a CPU, fp16 on a GPU)",
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
    parser.add_argument("--rate-start", type=float, default=10, help="first open-loop rate")
    parser.add_argument("--rate-step", type=float, default=5, help="open-loop rate step")
    parser.add_argument("--rate-seconds", type=float, default=12, help="seconds per rate")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 10k segments, a quarter of the queries"
    )
    args = parser.parse_args()
    args.precision = args.precision or fastest_precision(args.device)
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
        args.int8_cache_dir = Path(scratch) / "int8"  # the in-process model's conversion
        baseline = inprocess_baseline(args, vectors, images)
        console.print(f"in-process: {baseline}")
        mesh = mesh_phase(args, vectors, images, library_dir)
    report(args, baseline, mesh)


if __name__ == "__main__":
    main()
