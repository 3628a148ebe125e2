"""The soak's record and verdict: what one run saw and how it is reported.

Outcomes are sorted into designed refusals and unexpected errors, latencies and RSS samples kept,
the services' logs searched for problems; then the tables and bench/results/soak.json. Apart from
the load clients (bench/soak.py) so the verdict's rules are tested without a mesh
(tests/unit/test_soak_report.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import (
    RESULTS_DIR,
    ServiceProcess,
    console,
    latency_summary,
    print_table,
    write_results,
)
from clipmesh_client import ClipmeshError

RSS_GROWTH_AT_MOST_PCT = 10.0
TAIL_FRACTION = 0.1  # the RSS windows compared: 10 % of the run each
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


def report(args: argparse.Namespace, soak: Soak, logs: dict[str, dict], *, weights: str) -> None:
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
        for name in soak.services
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
            "weights": weights,
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
