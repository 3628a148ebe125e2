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
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import statistics
import sys
import tempfile
import time
from collections import Counter, deque
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    RESULTS_DIR,
    ServiceProcess,
    console,
    latency_summary,
    print_table,
    service_process,
    write_results,
)
from clipmesh.demo.library import make_library
from clipmesh.demo.synthetic import encode_image, gradient_image
from clipmesh_client import AsyncClient, ClipmeshError, IngestProgress
from clipmesh_client.generation import GeneratorClient

WEIGHTS = "random:0"
COLLECTION = "soak"
SERVICES = ("encoder", "index", "generator", "orchestrator")
RSS_GROWTH_AT_MOST_PCT = 10.0
TAIL_FRACTION = 0.1  # the RSS windows compared: 10 % of the run each
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
# Outcomes that are the system working as designed, per operation: (code, reason or "*").
EXPECTED = {
    "search": {("RESOURCE_EXHAUSTED", "*"), ("DEADLINE_EXCEEDED", "BUDGET_EXCEEDED")},
    "ingest": {("RESOURCE_EXHAUSTED", "*"), ("DUPLICATE", "*")},
    "delete": {("RESOURCE_EXHAUSTED", "*")},
    "generation": {("RESOURCE_EXHAUSTED", "*")},
}


def outcome_label(code: str, reason: str = "") -> str:
    """How an outcome is named in the report: `CODE/REASON`, or `CODE` alone."""
    return f"{code}/{reason}" if reason and reason != code else code


def is_expected(operation: str, code: str, reason: str = "") -> bool:
    """True when `code` (with its ErrorInfo `reason`) is a designed refusal of `operation`."""
    allowed = EXPECTED.get(operation, set())
    return (code, "*") in allowed or (code, reason) in allowed


def rss_growth(
    samples: list[tuple[float, float]],
    run_s: float,
    *,
    warmup_fraction: float,
    tail_fraction: float = TAIL_FRACTION,
) -> dict[str, float | None]:
    """Start, after-warm-up and end figures of one service's (seconds, RSS) samples, and the
    growth between the last two in percent.

    After warm-up is the median of the samples in the `tail_fraction` of the run that follows
    the warm-up; the end is the median of the last `tail_fraction`. A window with no sample
    falls back to the nearest one (the first after the warm-up, the last of the run).
    """
    if not samples:
        return {"start": None, "after_warmup": None, "end": None, "growth_pct": None}
    warmup_s, window_s = run_s * warmup_fraction, run_s * tail_fraction
    after = [v for t, v in samples if warmup_s <= t < warmup_s + window_s] or [
        next((v for t, v in samples if t >= warmup_s), samples[-1][1])
    ]
    last = [v for t, v in samples if t >= run_s - window_s] or [samples[-1][1]]
    baseline, end = round(statistics.median(after), 1), round(statistics.median(last), 1)
    return {
        "start": samples[0][1],
        "after_warmup": baseline,
        "end": end,
        "growth_pct": round((end - baseline) / baseline * 100, 2) if baseline else None,
    }


@dataclass
class OperationStats:
    """What one operation's clients saw: outcomes by kind, latencies of accepted requests."""

    operation: str
    ok: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)
    examples: dict[str, str] = field(default_factory=dict)

    def accepted(self, latency_s: float) -> None:
        self.ok += 1
        self.latencies_s.append(latency_s)

    def failed(self, code: str, reason: str = "", message: str = "") -> None:
        label = outcome_label(code, reason)
        if is_expected(self.operation, code, reason):
            self.refused[label] += 1
        else:
            self.errors[label] += 1
        if message:
            self.examples.setdefault(label, message[:300])

    def failed_with(self, error: ClipmeshError) -> None:
        self.failed(error.code.name, error.reason, error.message)

    @property
    def requests(self) -> int:
        return self.ok + self.refused.total() + self.errors.total()

    def summary(self) -> dict[str, object]:
        latency = latency_summary(self.latencies_s) if self.latencies_s else {}
        return {
            "requests": self.requests,
            "ok": self.ok,
            "expected_refusals": dict(self.refused),
            "unexpected_errors": dict(self.errors),
            "p50_ms": latency.get("p50_ms"),
            "p99_ms": latency.get("p99_ms"),
            "examples": self.examples,
        }


@dataclass
class Soak:
    """The shared state of one run: its clock, the operations' stats, the RSS samples."""

    args: argparse.Namespace
    services: dict[str, ServiceProcess]
    library: list[Path]
    started: float = field(default_factory=time.monotonic)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    stats: dict[str, OperationStats] = field(
        default_factory=lambda: {op: OperationStats(op) for op in EXPECTED}
    )
    rss_samples: list[dict[str, object]] = field(default_factory=list)
    # (seconds into the run, latency in seconds or None when refused or failed) per search
    search_timeline: list[tuple[float, float | None]] = field(default_factory=list)
    degraded_searches: int = 0
    service_exits: list[str] = field(default_factory=list)

    def elapsed_s(self) -> float:
        return time.monotonic() - self.started


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


def log_problems(service: str, limit: int = 10) -> dict[str, object]:
    """WARNING and ERROR lines a service logged, counted by level, logger and message."""
    log = RESULTS_DIR / f"{service}.bench.log.tmp"
    counts: Counter[tuple[str, str]] = Counter()
    for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("level") in ("WARNING", "ERROR", "CRITICAL"):
            counts[
                (entry["level"], f"{entry.get('logger')}: {entry.get('message', '')[:200]}")
            ] += 1
    return {
        "errors": sum(n for (level, _), n in counts.items() if level != "WARNING"),
        "warnings": sum(n for (level, _), n in counts.items() if level == "WARNING"),
        "top": [
            {"level": lv, "message": m, "count": n} for (lv, m), n in counts.most_common(limit)
        ],
    }


def search_windows(soak: Soak) -> list[dict[str, object]]:
    """Searches per window of the run: accepted, not accepted, and p50/p99 of the accepted,
    to show drift over time."""
    window_s = int(max(10, soak.args.seconds // 10))
    windows = []
    for start in range(0, int(soak.args.seconds), window_s):
        outcomes = [lat for t, lat in soak.search_timeline if start <= t < start + window_s]
        latencies = [lat for lat in outcomes if lat is not None]
        windows.append(
            {
                "start_s": start,
                "ok": len(latencies),
                "not_ok": len(outcomes) - len(latencies),
                **(latency_summary(latencies) if latencies else {}),
            }
        )
    return windows


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


def report(args: argparse.Namespace, soak: Soak, logs: dict[str, dict]) -> None:
    """Prints the tables and writes bench/results/soak.json."""
    operations = {name: stats.summary() for name, stats in soak.stats.items()}
    print_table(
        f"soak {args.seconds:.0f}s: {args.model}, search {args.search_rate}/s "
        f"at a {args.budget_ms} ms budget",
        [
            "operation",
            "requests",
            "ok",
            "expected refusals",
            "unexpected errors",
            "p50 ms",
            "p99 ms",
        ],
        [
            [
                name,
                s["requests"],
                s["ok"],
                _counts(s["expected_refusals"]),
                _counts(s["unexpected_errors"]),
                s["p50_ms"],
                s["p99_ms"],
            ]
            for name, s in operations.items()
        ],
    )
    rss = {
        name: rss_growth(
            [(s["t_s"], s["rss_mb"][name]) for s in soak.rss_samples if name in s["rss_mb"]],
            args.seconds,
            warmup_fraction=args.warmup_fraction,
        )
        for name in SERVICES
    }
    print_table(
        f"RSS MB (warm-up {args.warmup_fraction:.0%}, every {args.rss_interval_s:.0f}s)",
        ["service", "start", "after warm-up", "end", "growth %"],
        [
            [name, r["start"], r["after_warmup"], r["end"], r["growth_pct"]]
            for name, r in rss.items()
        ],
    )
    unexpected = sum(sum(s["unexpected_errors"].values()) for s in operations.values())
    log_errors = sum(log["errors"] for log in logs.values())
    search = operations["search"]
    met = {
        "no_unexpected_errors": unexpected == 0 and not soak.service_exits and log_errors == 0,
        "search_p99_within_budget": search["p99_ms"] is not None
        and search["p99_ms"] <= args.budget_ms,
        "rss_growth_at_most_10_pct": all(
            r["growth_pct"] is not None and r["growth_pct"] <= RSS_GROWTH_AT_MOST_PCT
            for r in rss.values()
        ),
    }
    refused = sum(search["expected_refusals"].values())
    console.print(
        f"unexpected errors: {unexpected} from clients, {log_errors} ERROR lines in service logs, "
        f"services exited: {soak.service_exits or 'none'}; search refusals "
        f"{refused}/{search['requests']}, degraded {soak.degraded_searches}"
    )
    for name, s in operations.items():
        for label, example in s["examples"].items():
            console.print(f"  {name} {label}: {example}")
    console.print(
        "targets: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in met.items())
    )
    write_results(
        "soak",
        {
            "seconds": args.seconds,
            "model": args.model,
            "weights": WEIGHTS,
            "conditions": args.note,
            "load": {
                "search_rate_per_s": args.search_rate,
                "budget_ms": args.budget_ms,
                "cached_share": args.cached_share,
                "ingest_videos": args.ingest_videos,
                "ingest_pause_s": args.ingest_pause_s,
                "generation_clients": args.generation_clients,
                "generation": "animatic 256x144, 1-2 s, 12 fps, a new seed per job",
                "generation_pause_s": args.generation_pause_s,
            },
            "warmup_fraction": args.warmup_fraction,
            "operations": operations,
            "search_degraded": soak.degraded_searches,
            "search_windows": search_windows(soak),
            "rss_mb": rss,
            "rss_samples": soak.rss_samples,
            "service_exits": soak.service_exits,
            "service_logs": logs,
            "targets": {
                "unexpected_errors": 0,
                "search_p99_ms_at_most": args.budget_ms,
                "rss_growth_pct_at_most": RSS_GROWTH_AT_MOST_PCT,
            },
            "targets_met": met,
        },
    )


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{label} {n}" for label, n in sorted(counts.items())) or "-"


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
    report(args, result["soak"], result["logs"])


if __name__ == "__main__":
    main()
