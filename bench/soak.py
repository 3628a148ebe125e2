"""Soak: search, ingest and generation at a mixed load for a set time, on loopback.

    python bench/soak.py --seconds 600 [--search-rate 4] [--model ViT-B-32] ...

The four services run as processes on free loopback ports (bench.common.service_process);
the generator renders with its offline `animatic` backend. Three kinds of client run at once:

- search: an open-loop stream at `--search-rate` queries/s, image and text queries in turn,
  each with a `--budget-ms` budget. Most skip the hot-query cache; `--cached-share` of them are
  drawn from a few hot queries and may be answered from it.
- ingest: one client cycling over a small generated library (clipmesh.demo.library): ingest
  it, ingest it again (every video a duplicate), delete it. A base library ingested before the
  clock starts keeps the collection searchable throughout.
- generation: one client submitting small animatic jobs (256×144, 1–2 s, 12 fps, a new seed
  each) to the gateway, following each to its end, then deleting its output.

Expected refusals (load shedding's RESOURCE_EXHAUSTED, a search's budget running out, a
duplicate video) are counted apart from unexpected errors. Each service's RSS is sampled from
/proc every `--rss-interval-s`; its growth compares the median of the last 10 % of the run with
the median of the 10 % right after the warm-up (`--warmup-fraction`, 20 %).

Targets: no unexpected errors (client-visible, service exits, or ERROR lines in a service log),
search p99 of accepted queries within the budget, RSS growth ≤ 10 % after the warm-up.

This module is the mesh and its load clients; the record of a run, its verdict and its tables
are bench/soak_report.py.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import sys
import tempfile
import time
from collections import deque
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ServiceProcess, console, service_process
from bench.soak_report import Soak, log_problems, report
from clipmesh.demo.library import make_library
from clipmesh.demo.synthetic import encode_image, gradient_image
from clipmesh_client import AsyncClient, ClipmeshError, IngestProgress
from clipmesh_client.generation import GeneratorClient

WEIGHTS = "random:0"
COLLECTION = "soak"
SERVICES = ("encoder", "index", "generator", "orchestrator")
HOT_QUERIES = 4
TEXTS = [
    "a red car on a coastal road",
    "two people talking in a kitchen",
    "a drone shot over a forest at dawn",
    "a crowded street market at night",
    "waves breaking on a rocky shore",
    "a close-up of hands typing",
    "a dog running across a field",
    "city lights seen from a rooftop",
]
PROMPTS = [
    "a slow push in on a lighthouse at dusk",
    "wide shot, a cyclist crosses a bridge in the rain",
    "crane up over a village square, warm morning light",
    "close-up, a kettle steams on a stove, cool blue tones",
]


async def search_load(soak: Soak, client: AsyncClient) -> None:
    """Open-loop searches at the set rate: a slow answer never delays the next query."""
    args, stats = soak.args, soak.stats["search"]
    rng = random.Random(args.seed)
    images = [encode_image(gradient_image(256, 256, seed=2000 + i)) for i in range(40)]

    async def one(n: int) -> None:
        hot = rng.random() < args.cached_share
        pool = images if n % 2 == 0 else TEXTS
        query = pool[rng.randrange(HOT_QUERIES)] if hot else pool[n // 2 % len(pool)]
        kind = {"image": query} if n % 2 == 0 else {"text": query}
        began = time.monotonic()
        try:
            result = await client.search(
                **kind,
                collection=COLLECTION,
                budget_ms=args.budget_ms,
                skip_cache=not hot,
                timeout_s=args.search_timeout_s,
            )
        except ClipmeshError as error:
            stats.failed_with(error)
            soak.search_timeline.append((began - soak.started, None))
            return
        latency_s = time.monotonic() - began
        stats.accepted(latency_s)
        soak.search_timeline.append((began - soak.started, latency_s))
        soak.degraded_searches += result.degraded

    in_flight: set[asyncio.Task] = set()
    interval_s, n = 1 / args.search_rate, 0
    while not soak.stop.is_set():
        task = asyncio.create_task(one(n))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        n += 1
        delay_s = soak.started + n * interval_s - time.monotonic()
        if delay_s > 0:
            await asyncio.sleep(delay_s)
    await asyncio.gather(*in_flight)


async def ingest_once(soak: Soak, client: AsyncClient) -> set[str]:
    """Ingests the library; every video's outcome counts. Returns the ids now indexed."""
    stats, ids, pending = soak.stats["ingest"], set(), {str(p) for p in soak.library}
    began = time.monotonic()
    try:
        async for event in client.ingest(sorted(pending), collection=COLLECTION):
            if not isinstance(event, IngestProgress) or not event.finished:
                continue
            pending.discard(event.uri)
            if event.stage == "done":
                stats.accepted(time.monotonic() - began)
                ids.add(event.video_id)
            elif event.stage == "duplicate":
                stats.failed("DUPLICATE")
                ids.add(event.video_id)
            else:
                stats.failed("VIDEO_FAILED", event.error_reason, event.error_message)
    except ClipmeshError as error:
        for _ in pending:
            stats.failed_with(error)
        pending.clear()
    for _ in pending:
        stats.failed("NO_FINAL_EVENT", message="the ingest stream ended without this video")
    return ids


async def ingest_load(soak: Soak, client: AsyncClient) -> None:
    """Ingest, ingest again (duplicates), delete; a pause between steps; until stopped."""
    stats = soak.stats["delete"]
    while not soak.stop.is_set():
        ids = await ingest_once(soak, client)
        await asyncio.sleep(soak.args.ingest_pause_s)
        ids |= await ingest_once(soak, client)
        await asyncio.sleep(soak.args.ingest_pause_s)
        if not ids:
            continue
        began = time.monotonic()
        try:
            result = await client.delete_videos(sorted(ids), collection=COLLECTION)
        except ClipmeshError as error:
            stats.failed_with(error)
        else:
            if result.not_found_ids:
                stats.failed("NOT_FOUND", message=f"not found: {result.not_found_ids}")
            else:
                stats.accepted(time.monotonic() - began)
        await asyncio.sleep(soak.args.ingest_pause_s)


def generate_once(gateway: GeneratorClient, seed: int) -> tuple[str, str, str]:
    """One animatic job to its end (blocking); its output is deleted once it succeeded.

    Returns the final state, the error reason and the error message.
    """
    events = gateway.generate(
        PROMPTS[seed % len(PROMPTS)],
        backend="animatic",
        size=(256, 144),
        duration_s=1.0 + seed % 2,
        fps=12,
        seed=seed,  # a new seed each job: every job renders, none is a cache hit
    )
    final = deque(events, maxlen=1)  # follows the job to its end; the last event tells
    if not final:
        return "no_events", "", "the stream ended without an event"
    job = final[0].job
    if job.state == "succeeded":
        gateway.delete_output(job.job_id)
    return job.state, job.error_reason, job.error_message


async def generation_load(soak: Soak, client_index: int) -> None:
    """Sequential animatic jobs, each followed to its end, until stopped."""
    stats, clients = soak.stats["generation"], soak.args.generation_clients
    target = soak.services["generator"].target
    with GeneratorClient(target, caller="soak", stream_timeout_s=300) as gateway:
        for seed in itertools.count(client_index, clients):
            if soak.stop.is_set():
                return
            began = time.monotonic()
            try:
                state, reason, message = await asyncio.to_thread(generate_once, gateway, seed)
            except ClipmeshError as error:
                stats.failed_with(error)
            else:
                if state == "succeeded":
                    stats.accepted(time.monotonic() - began)
                else:
                    stats.failed(f"JOB_{state.upper()}", reason, message)
            await asyncio.sleep(soak.args.generation_pause_s)


async def sample_rss(soak: Soak) -> None:
    """Every service's VmRSS in MB every interval; a service gone is recorded once."""
    while True:
        sample: dict[str, float] = {}
        for name, service in soak.services.items():
            try:
                rss_bytes = service.rss_bytes()  # 0 once the process is a zombie
            except OSError:
                rss_bytes = 0
            if rss_bytes:
                sample[name] = round(rss_bytes / 2**20, 1)
            elif name not in soak.service_exits:
                soak.service_exits.append(name)
        soak.rss_samples.append({"t_s": round(soak.elapsed_s(), 1), "rss_mb": sample})
        try:
            await asyncio.wait_for(soak.stop.wait(), soak.args.rss_interval_s)
            return
        except TimeoutError:
            pass


async def run_load(soak: Soak) -> None:
    """Sets up the base library, runs the three loads for the set time, then drains them."""
    target = soak.services["orchestrator"].target
    async with AsyncClient(target, timeout_s=60, max_attempts=1) as client:
        await client.wait_until_ready(timeout_s=60)
        async for _ in client.ingest(
            [str(p) for p in soak.args.base_library], collection=COLLECTION
        ):
            pass
        soak.started = time.monotonic()
        sampler = asyncio.create_task(sample_rss(soak))
        loads = {asyncio.create_task(search_load(soak, client)): "search"}
        loads[asyncio.create_task(ingest_load(soak, client))] = "ingest"
        for n in range(soak.args.generation_clients):
            loads[asyncio.create_task(generation_load(soak, n))] = "generation"
        while soak.elapsed_s() < soak.args.seconds and not any(t.done() for t in loads):
            await asyncio.sleep(1)
        soak.stop.set()
        await sampler
        # Each client finishes the step it is in (and counts it); a stuck one is cancelled.
        done, stuck = await asyncio.wait(loads, timeout=soak.args.drain_s)
        for task in stuck:
            task.cancel()
            message = f"still running {soak.args.drain_s:.0f}s after the end"
            soak.stats[loads[task]].failed("STUCK", message=message)
        for task in done:
            task.result()  # a bug in the soak itself surfaces here, not as a silent gap


def run(args: argparse.Namespace) -> dict[str, object]:
    """Starts the mesh, runs the load and collects what the services logged."""
    with tempfile.TemporaryDirectory(prefix="clipmesh-soak-") as scratch, ExitStack() as stack:
        data = Path(scratch)
        make_library(data / "library" / "base", count=2, seed=args.seed + 100)
        args.base_library = sorted((data / "library" / "base").glob("*.mp4"))
        make_library(data / "library" / "cycle", count=args.ingest_videos, seed=args.seed)
        library = sorted((data / "library" / "cycle").glob("*.mp4"))

        def start(name: str, env: dict[str, str]) -> ServiceProcess:
            env = {f"CLIPMESH_{name.upper()}_DATA_DIR": str(data / name), **env}
            return stack.enter_context(service_process(name, env))

        services = {
            "encoder": start(
                "encoder",
                {"CLIPMESH_ENCODER_MODEL": args.model, "CLIPMESH_ENCODER_WEIGHTS": WEIGHTS},
            ),
            "index": start("index", {}),
            "generator": start("generator", {"CLIPMESH_GENERATOR_DEFAULT_BACKEND": "animatic"}),
        }
        services["orchestrator"] = start(
            "orchestrator",
            {
                "CLIPMESH_ORCHESTRATOR_ENCODER_TARGET": services["encoder"].target,
                "CLIPMESH_ORCHESTRATOR_INDEX_TARGET": services["index"].target,
                "CLIPMESH_ORCHESTRATOR_ALLOWED_ROOTS": str((data / "library").resolve()),
            },
        )
        console.print(f"mesh up; soaking for {args.seconds:.0f}s")
        soak = Soak(args, services, library)
        asyncio.run(run_load(soak))
        logs = {name: log_problems(name) for name in SERVICES}
    return {"soak": soak, "logs": logs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600, help="how long the load runs")
    parser.add_argument(
        "--model",
        default="ViT-B-32",
        help="encoder model, random weights (as bench/search.py); clipmesh-tiny for a light run",
    )
    parser.add_argument("--search-rate", type=float, default=4, help="searches per second")
    parser.add_argument("--budget-ms", type=int, default=500, help="each search's budget")
    parser.add_argument("--search-timeout-s", type=float, default=5)
    parser.add_argument(
        "--cached-share", type=float, default=0.2, help="share of searches from hot queries"
    )
    parser.add_argument("--ingest-videos", type=int, default=4, help="videos in each ingest")
    parser.add_argument("--ingest-pause-s", type=float, default=2)
    parser.add_argument("--generation-clients", type=int, default=1)
    parser.add_argument("--generation-pause-s", type=float, default=1)
    parser.add_argument("--rss-interval-s", type=float, default=5)
    parser.add_argument("--warmup-fraction", type=float, default=0.2)
    parser.add_argument(
        "--drain-s", type=float, default=120, help="wait for the clients' last step at the end"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", default="", help="machine conditions to record with the figures")
    args = parser.parse_args()
    result = run(args)
    report(args, result["soak"], result["logs"], weights=WEIGHTS)


if __name__ == "__main__":
    main()
