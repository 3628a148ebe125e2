"""Bulk ingest benchmark: one procedural library ingested three ways in one run — IngestVideos
through the orchestrator (the single-process path), `clipmesh bulk-ingest` on a local Ray
cluster with 1 worker, and with 2 workers — then the three compared segment by segment.

    python bench/bulk_ingest.py [--videos 200] [--model ViT-B-32] [--size 320x180]

Each Ray run is the real command in its own process group, pinned with `taskset` to as many
cores as it has workers (Ray's CPU count is logical; the pin makes "1 worker" mean one core,
driver and Ray's own processes included). The mesh (encoder, index, orchestrator) runs as
service processes throughout; during the Ray runs only the index works, writing what the
driver sends. What one worker's stages cost and how fast the index takes writes are measured
by bench/bulk_ingest_stages.py; the projection in docs/benchmarks.md rests on them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bulk_ingest_stages import encoder_environ, index_write_rate, stage_profile
from bench.common import console, print_table, service_process, write_results
from clipmesh.demo.library import make_library
from clipmesh_api.common.v1 import common_pb2
from clipmesh_api.index.v1 import index_pb2, index_pb2_grpc
from clipmesh_client import AsyncClient, IngestSummary
from clipmesh_client.wire import ChannelPolicy, open_aio_channel

TARGETS = {"scaling_2_vs_1_at_least": 1.6, "ray_2_workers_vs_single_process_at_least": 1.0}
RUN_TIMEOUT_S = 3600
STARTUP_PROBE_VIDEOS = 4
STEADY_MIN_VIDEOS = 20


async def single_process(
    orchestrator: str, library: list[Path], collection: str
) -> dict[str, float]:
    """IngestVideos of the whole library, as a caller sees it."""
    started = time.perf_counter()
    summary = None
    async with AsyncClient(orchestrator, timeout_s=RUN_TIMEOUT_S) as client:
        async for event in client.ingest([str(p) for p in library], collection=collection):
            if isinstance(event, IngestSummary):
                summary = event
    wall_s = time.perf_counter() - started
    assert summary is not None and summary.failed == 0, summary
    return {
        "wall_s": round(wall_s, 2),
        "video_seconds": round(summary.video_seconds, 1),
        "segments": summary.segments,
        "realtime_factor": round(summary.video_seconds / wall_s, 2),
    }


def median_run(runs: list[dict]) -> dict:
    """The run whose real-time factor is the median (the lower middle of an even count)."""
    ordered = sorted(runs, key=lambda run: run["realtime_factor"])
    return ordered[(len(ordered) - 1) // 2]


def startup_probe(args, library_dir: Path, index: str, scratch: Path) -> dict:
    """What a run costs before its first video: the command on a few videos with 2 workers
    (its pipeline time is nearly all the actors' start: imports and the model's load)."""
    probe_dir = scratch / "probe"
    probe_dir.mkdir()
    for path in sorted(library_dir.glob("*.mp4"))[:STARTUP_PROBE_VIDEOS]:
        shutil.copyfile(path, probe_dir / path.name)
    return ray_run(args, probe_dir, index, 2, scratch, collection="probe")


def ray_run(
    args, library_dir: Path, index: str, workers: int, scratch: Path, *, collection: str = ""
) -> dict:
    """`clipmesh bulk-ingest` on a local Ray cluster of `workers` CPUs, pinned to as many
    cores; its summary, with the whole command's wall time (Ray's start included)."""
    collection = collection or f"ray{workers}"
    environ = {
        **os.environ,
        **encoder_environ(args),
        "CLIPMESH_BULK_INGEST_INDEX_TARGET": index,
        "CLIPMESH_BULK_INGEST_COLLECTION": collection,
        "CLIPMESH_BULK_INGEST_THUMBNAILS_DIR": str(scratch / collection / "thumbnails"),
        # Small index writes, so the report's timeline shows videos as they finish.
        "CLIPMESH_BULK_INGEST_WRITE_BATCH_VIDEOS": "4",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "disabled",
    }
    cores = ",".join(str(core) for core in range(workers))
    command = ["taskset", "-c", cores, sys.executable, "-m", "clipmesh", "bulk-ingest"]
    command += [str(library_dir), "--ray-address", "local", "--local-cpus", str(workers)]
    command += ["--cpu-workers", str(workers), "--json"]
    command += ["--report", str(scratch / f"{collection}.jsonl")]
    started = time.perf_counter()
    done = subprocess.run(
        command,
        env=environ,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        start_new_session=True,
        check=False,
    )
    command_wall_s = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"bulk-ingest with {workers} worker(s) failed:\n{done.stderr[-3000:]}")
    totals = json.loads(done.stdout[done.stdout.index("{") :])
    steady = steady_realtime_factor(scratch / f"{collection}.jsonl")
    return {
        "workers": workers,
        "done": totals["done"],
        "failed": totals["failed"],
        "segments": totals["segments"],
        "video_seconds": round(totals["video_seconds"], 1),
        "pipeline_wall_s": round(totals["wall_s"], 2),
        "command_wall_s": round(command_wall_s, 2),
        "startup_s": round(command_wall_s - totals["wall_s"], 2),
        "realtime_factor": round(totals["video_seconds"] / totals["wall_s"], 2),
        "steady_realtime_factor": steady,
        "driver_peak_rss_mb": totals["driver_peak_rss_mb"],
    }


def steady_realtime_factor(report: Path) -> float | None:
    """Seconds of video per second once the workers run: from the report's timeline, the
    videos after the first write, over the time from that write to the last (None for a run
    too short to tell, like the start-up probe's)."""
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    first = min(line["at_s"] for line in lines)
    later = [line for line in lines if line["at_s"] > first]
    if len(later) < STEADY_MIN_VIDEOS:
        return None
    span = max(line["at_s"] for line in later) - first
    return round(sum(line["video_seconds"] for line in later) / span, 2)


async def collection_segments(channel, collection: str) -> dict[str, tuple]:
    """Every video of `collection`: content hash → (segment times, unit vectors)."""
    index = index_pb2_grpc.IndexServiceStub(channel)
    page = common_pb2.PageRequest(page_size=1000)
    listing = await index.ListVideos(index_pb2.ListVideosRequest(collection=collection, page=page))
    held = {}
    for video in listing.videos:
        got = await index.GetSegments(
            index_pb2.GetSegmentsRequest(collection=collection, video_id=video.video_id)
        )
        times = np.array([(s.start_s, s.end_s, s.keyframe_s) for s in got.segments])
        vectors = np.array([s.vector for s in got.segments], dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        held[video.content_sha256] = (video.video_id, times, vectors)
    return held


async def compare(index: str, collections: list[str]) -> dict[str, object]:
    """Whether every collection holds the first one's videos, segments and vectors."""
    channel = open_aio_channel(index, ChannelPolicy(timeout_s=60, max_attempts=1))
    try:
        reference = await collection_segments(channel, collections[0])
        result: dict[str, object] = {"videos": len(reference)}
        for other in collections[1:]:
            held = await collection_segments(channel, other)
            same_ids = held.keys() == reference.keys() and all(
                held[sha][0] == reference[sha][0] for sha in reference
            )
            same_times = same_ids and all(
                np.array_equal(held[sha][1], reference[sha][1]) for sha in reference
            )
            cosines = [
                float(np.min(np.sum(held[sha][2] * reference[sha][2], axis=1)))
                for sha in reference
                if same_times
            ]
            result[other] = {
                "same_videos": same_ids,
                "same_segments": same_times,
                "min_cosine": round(min(cosines), 6) if cosines else None,
            }
        return result
    finally:
        await channel.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # The workers' start-up (imports and the model's load, 10-18 s here, measured by the probe)
    # is part of each run's figure; 200 videos are about a minute of work on 2 cores.
    parser.add_argument("--videos", type=int, default=200)
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--size", default="320x180", help="frame size of the library")
    parser.add_argument("--profile-videos", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each path (median kept)")
    args = parser.parse_args()
    if shutil.which("taskset") is None:
        sys.exit("taskset (util-linux) is needed to pin the Ray runs to their cores")
    width, height = (int(side) for side in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="clipmesh-bench-bulk-") as directory:
        scratch = Path(directory)
        library_dir = scratch / "library"
        started = time.perf_counter()
        make_library(library_dir, count=args.videos, seed=7, size=(width, height))
        library = sorted(library_dir.glob("*.mp4"))
        console.print(f"library: {len(library)} videos in {time.perf_counter() - started:.0f} s")
        results = run(args, library_dir, library, scratch)
    report(args, results)


def run(args, library_dir: Path, library: list[Path], scratch: Path) -> dict:
    encoder_env = encoder_environ(args)
    index_env = {"CLIPMESH_INDEX_DATA_DIR": str(scratch / "index")}
    with (
        service_process(
            "encoder", {**encoder_env, "CLIPMESH_ENCODER_DATA_DIR": str(scratch)}
        ) as enc,
        service_process("index", index_env) as index,
    ):
        orchestrator_env = {
            "CLIPMESH_ORCHESTRATOR_ENCODER_TARGET": enc.target,
            "CLIPMESH_ORCHESTRATOR_INDEX_TARGET": index.target,
            "CLIPMESH_ORCHESTRATOR_ALLOWED_ROOTS": str(scratch),
            "CLIPMESH_ORCHESTRATOR_DATA_DIR": str(scratch / "orchestrator"),
        }
        probe = startup_probe(args, library_dir, index.target, scratch)
        console.print(f"start-up probe (2 workers, {STARTUP_PROBE_VIDEOS} videos): {probe}")
        # Repeats, the three paths in turn, so a noisy minute on this shared machine hurts one
        # run of one path, and the median of each is reported.
        runs: dict[object, list[dict]] = {"single": [], 1: [], 2: []}
        with service_process("orchestrator", orchestrator_env) as orchestrator:
            for repeat in range(args.repeats):
                suffix = f"_r{repeat}" if repeat else ""
                single = asyncio.run(
                    single_process(orchestrator.target, library, f"single{suffix}")
                )
                runs["single"].append(single)
                console.print(f"IngestVideos: {single}")
                for workers in (1, 2):
                    run_ = ray_run(
                        args,
                        library_dir,
                        index.target,
                        workers,
                        scratch,
                        collection=f"ray{workers}{suffix}",
                    )
                    runs[workers].append(run_)
                    console.print(f"Ray, {workers} worker(s): {run_}")
        single = median_run(runs["single"])
        ray = {workers: median_run(runs[workers]) for workers in (1, 2)}
        same = asyncio.run(compare(index.target, ["single", "ray1", "ray2"]))
        writes = asyncio.run(index_write_rate(index.target, 512))
    profile = stage_profile(args, library, scratch)
    return {
        "single": single,
        "ray": ray,
        "all_runs": {
            str(path): [r["realtime_factor"] for r in done] for path, done in runs.items()
        },
        "same": same,
        "writes": writes,
        "profile": profile,
        "startup_probe": probe,
    }


def report(args, results: dict) -> None:
    single, ray, same = results["single"], results["ray"], results["same"]
    scaling = round(ray[2]["realtime_factor"] / ray[1]["realtime_factor"], 2)
    same_segments = all(
        same[c]["same_videos"] and same[c]["same_segments"] and same[c]["min_cosine"] > 0.9999
        for c in ("ray1", "ray2")
    )
    print_table(
        f"bulk ingest of {same['videos']} videos ({single['video_seconds']} s of video)",
        ["path", "wall s", "start-up s", "× real time", "segments"],
        [
            [
                "IngestVideos (mesh, 2 cores)",
                single["wall_s"],
                "-",
                single["realtime_factor"],
                single["segments"],
            ],
            *[
                [
                    f"Ray, {w} worker(s) on {w} core(s)",
                    r["pipeline_wall_s"],
                    r["startup_s"],
                    r["realtime_factor"],
                    r["segments"],
                ]
                for w, r in ray.items()
            ],
        ],
    )
    profile, writes, probe = results["profile"], results["writes"], results["startup_probe"]
    # The pipeline's own start (actors importing and loading the model), from the probe: its
    # few videos are worth well under a second of work.
    steady = {w: r["steady_realtime_factor"] for w, r in ray.items()}
    console.print(f"once the workers run (the report's timeline): {steady}× real time")
    console.print(f"one worker's stages (1 thread): {profile}")
    console.print(f"index writes: {writes}")
    console.print(f"same as IngestVideos: {same}")
    checks = {
        "scaling_2_vs_1_at_least": scaling >= TARGETS["scaling_2_vs_1_at_least"],
        "ray_2_workers_vs_single_process_at_least": ray[2]["realtime_factor"]
        >= single["realtime_factor"] * TARGETS["ray_2_workers_vs_single_process_at_least"],
    }
    write_results(
        "bulk_ingest",
        {
            "settings": vars(args),
            "videos": same["videos"],
            "video_seconds": single["video_seconds"],
            "single_process_realtime_factor": single["realtime_factor"],
            "ray_1_worker_realtime_factor": ray[1]["realtime_factor"],
            "ray_2_workers_realtime_factor": ray[2]["realtime_factor"],
            "scaling_2_vs_1": scaling,
            "same_segments_as_ingest": same_segments,
            "driver_rss_mb_peak": max(r["driver_peak_rss_mb"] for r in ray.values()),
            "single_process": single,
            "ray_runs": {f"{w}_workers": r for w, r in ray.items()},
            "comparison": same,
            "realtime_factor_of_every_run": results["all_runs"],
            "stage_profile_one_thread": profile,
            "startup_probe": probe,
            "steady_realtime_factor": {f"{w}_workers": v for w, v in steady.items()},
            "steady_scaling_2_vs_1": round(steady[2] / steady[1], 2)
            if steady[1] and steady[2]
            else None,  # a library too small to tell
            "index_writes": writes,
            "targets": TARGETS,
            "targets_met": checks,
        },
    )


if __name__ == "__main__":
    main()
