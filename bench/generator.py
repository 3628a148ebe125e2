"""Generator gateway under load: hundreds of concurrent jobs against DashScope's protocol.

Three processes, as in production: the gateway (`clipmesh serve generator`), the local DashScope
protocol server of the test suite (bench/dashscope_process.py), and the client holding every
job's Generate stream (bench/generator_client.py), so no process's receipt of an event waits on
another's work in the same interpreter. Task durations are scaled down from minutes to seconds
(queued 0.2–1 s at the provider, then running 1–3 s) so 500 jobs finish in about a minute and a
half. Every job is a real Generate stream held open to the end. A mix of outcomes is asked for
through the server's prompt markers: most succeed, some are rejected by content inspection,
some tasks are lost by the provider (UNKNOWN), some callers cancel while queued, and the first
submissions are throttled (429) to exercise retries.

Measured:
- every job ended in the state its prompt asked for (`all_ended_correctly`);
- the provider limits as the *protocol server* saw them: the most submissions in any one-second
  window and the most tasks at once, against the configured limits (and violations);
- per-event overhead: from the gateway's stamp on an event (`event_time`, the wall clock) to
  the client process having it (the same clock: one machine), p50 and p99 — over all events,
  by kind (queue positions apart from the job's own changes), and once every stream is open;
- where that time can go: each process's CPU share over the run, the client's event-loop lag,
  the latency of a trivial call (health Check) made on the gateway every 20 ms from this
  benchmark's own process meanwhile (what anything waits for the gateway's event loop), and
  the cost of turning one event into bytes (gateway) and back (client);
- the gateway's peak resident memory (VmHWM).

Three runs: the load run (500 jobs, limits 10 submissions/s and 20 concurrent tasks, as a
scaled account), the same at 100 jobs, and the default limits (2/s and 2 at once) with fewer
jobs, to show the gateway keeps to the published wan2.1 limits.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    cpu_seconds,
    latency_summary,
    print_table,
    service_process,
    write_results,
)
from bench.dashscope_process import dashscope_process
from clipmesh.generator.convert import event_to_proto
from clipmesh.generator.jobs import GenerationSpec, Job, JobEvent, JobState
from clipmesh_api.generator.v1 import generator_pb2

ROOT = Path(__file__).resolve().parent.parent
PROBE_INTERVAL_S = 0.02


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def serialization_us(events: int = 5000) -> dict[str, float]:
    """Microseconds per event to turn a running job's event into bytes (the gateway's side:
    domain → proto → wire) and back into a message (the client's side)."""
    spec = GenerationSpec(prompt="shot 1: a slow dolly across a harbour at dawn " * 3)
    job = Job(
        job_id="0" * 32,
        spec=spec,
        backend="dashscope",
        state=JobState.RUNNING,
        progress=0.42,
        eta_s=1.5,
        provider_task_id="task-" + "0" * 32,
        create_time_s=time.time(),
        start_time_s=time.time(),
    )
    event = JobEvent(job, "rendering", time.time())
    started = time.perf_counter()
    for _ in range(events):
        data = generator_pb2.GenerateResponse(event=event_to_proto(event)).SerializeToString()
    encode_s = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(events):
        generator_pb2.GenerateResponse.FromString(data)
    decode_s = time.perf_counter() - started
    return {
        "gateway_encode_us": round(encode_s / events * 1e6, 1),
        "client_decode_us": round(decode_s / events * 1e6, 1),
        "event_bytes": len(data),
    }


def percentiles(values_ms: np.ndarray) -> dict[str, object]:
    if len(values_ms) == 0:
        return {"events": 0}
    return {
        "events": len(values_ms),
        "p50_ms": round(float(np.percentile(values_ms, 50)), 2),
        "p99_ms": round(float(np.percentile(values_ms, 99)), 2),
    }


def overhead_breakdown(
    overheads_ms: np.ndarray, received_s: np.ndarray, kinds: np.ndarray, streams_open_s: float
) -> dict[str, object]:
    """The overhead by kind of event (a queue position, or the job's state), and apart for the
    events that came once every stream was open (after the burst of submissions)."""
    return {
        "event_overhead_by_kind": {
            kind: percentiles(overheads_ms[kinds == kind]) for kind in sorted(set(kinds))
        },
        "event_overhead_without_positions": percentiles(overheads_ms[kinds != "position"]),
        "event_overhead_after_submissions": {
            "from_s": streams_open_s,
            **percentiles(overheads_ms[received_s > streams_open_s]),
        },
    }


class GatewayProbe:
    """A trivial call (health Check) on the gateway every PROBE_INTERVAL_S from this process,
    on a thread, while the client runs: its latency is about what any work — an event's
    write included — waits for the gateway's event loop, beside the transport's own cost."""

    def __init__(self, target: str) -> None:
        self._channel = grpc.insecure_channel(target)
        self._stub = health_pb2_grpc.HealthStub(self._channel)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.latencies_s: list[float] = []

    def __enter__(self) -> GatewayProbe:
        self._stub.Check(health_pb2.HealthCheckRequest(), timeout=5)  # connected first
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._channel.close()

    def _run(self) -> None:
        while not self._stop.wait(PROBE_INTERVAL_S):
            started = time.perf_counter()
            self._stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
            self.latencies_s.append(time.perf_counter() - started)


def run_client(target: str, jobs: int, seed: int, scratch: str) -> dict[str, object]:
    """The client process's run (bench/generator_client.py), read back from its JSON."""
    out = Path(scratch) / f"client-{jobs}.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.generator_client",
            f"--target={target}",
            f"--jobs={jobs}",
            f"--seed={seed}",
            f"--out={out}",
        ],
        cwd=ROOT,
        check=True,
    )
    return json.loads(out.read_text())


def run(jobs: int, *, per_second: float, concurrent: int, seed: int) -> dict[str, object]:
    load_before = os.getloadavg()[0]
    with (
        TemporaryDirectory(prefix="clipmesh-bench-generator-") as scratch,
        dashscope_process(
            api_key="sk-bench",
            task_duration_s=(1.0, 3.0),
            queue_s=(0.2, 1.0),
            max_concurrent_tasks=concurrent,
            max_submits_per_s=per_second,
            throttle_first_n_submits=3,
            seed=seed,
        ) as provider,
    ):
        env = {
            "CLIPMESH_GENERATOR_DATA_DIR": scratch,
            "CLIPMESH_GENERATOR_DASHSCOPE_BASE_URL": provider.base_url,
            "CLIPMESH_GENERATOR_DASHSCOPE_API_KEY": provider.api_key,
            "CLIPMESH_GENERATOR_DASHSCOPE_SUBMISSIONS_PER_S": str(per_second),
            "CLIPMESH_GENERATOR_DASHSCOPE_MAX_CONCURRENT": str(concurrent),
            "CLIPMESH_GENERATOR_DASHSCOPE_POLL_INITIAL_S": "0.5",
            "CLIPMESH_GENERATOR_DASHSCOPE_POLL_MAX_S": "2",
            "CLIPMESH_GENERATOR_DASHSCOPE_RETRY_BASE_S": "0.2",
            "CLIPMESH_GENERATOR_MAX_ACTIVE_JOBS_PER_CALLER": str(jobs + 1),
            "CLIPMESH_GENERATOR_LOG_LEVEL": "WARNING",
        }
        with service_process("generator", env) as gateway:
            gateway_cpu, provider_cpu = cpu_seconds(gateway.pid), cpu_seconds(provider.pid)
            with GatewayProbe(gateway.target) as probe:
                client = run_client(gateway.target, jobs, seed, scratch)
            gateway_cpu = cpu_seconds(gateway.pid) - gateway_cpu
            provider_cpu = cpu_seconds(provider.pid) - provider_cpu
            rss_mb_peak = peak_rss_mb(gateway.pid)
    overheads_ms = np.asarray(client.pop("overheads_ms"))
    breakdown = overhead_breakdown(
        overheads_ms,
        np.asarray(client.pop("received_at_s")),
        np.asarray(client.pop("kinds")),
        client["all_streams_open_at_s"],
    )
    probe_ms = latency_summary(probe.latencies_s)
    records = provider.records
    wall_s = client["wall_s"]
    return {
        **client,
        "events": len(overheads_ms),
        "event_overhead_p50_ms": round(float(np.percentile(overheads_ms, 50)), 2),
        "event_overhead_p99_ms": round(float(np.percentile(overheads_ms, 99)), 2),
        "events_per_s": round(len(overheads_ms) / wall_s, 1),
        **breakdown,
        "gateway_probe_p50_ms": probe_ms["p50_ms"],
        "gateway_probe_p99_ms": probe_ms["p99_ms"],
        "gateway_cpu_share": round(gateway_cpu / wall_s, 3),
        "provider_cpu_share": round(provider_cpu / wall_s, 3),
        "rss_mb_peak": rss_mb_peak,
        "load_average_1m_before": round(load_before, 2),
        "limits": {"submissions_per_s": per_second, "concurrent_tasks": concurrent},
        "max_submissions_per_s": records["max_submissions_per_s"],
        "max_concurrent_tasks": records["max_concurrent_tasks"],
        "provider_tasks_created": records["provider_tasks_created"],
        "violations": len(records["violations"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--light-jobs", type=int, default=100)
    parser.add_argument("--default-limit-jobs", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    load_run = run(args.jobs, per_second=10, concurrent=20, seed=args.seed)
    light_run = run(args.light_jobs, per_second=10, concurrent=20, seed=args.seed)
    default_run = run(args.default_limit_jobs, per_second=2, concurrent=2, seed=args.seed + 1)
    runs = (("load", load_run), ("light", light_run), ("default limits", default_run))
    rows = []
    for name, r in runs:
        limits = r["limits"]
        rows.append(
            [
                name,
                r["jobs"],
                r["all_ended_correctly"],
                f"{r['max_submissions_per_s']} / {limits['submissions_per_s']:g}",
                f"{r['max_concurrent_tasks']} / {limits['concurrent_tasks']}",
                r["violations"],
                r["events_per_s"],
                r["event_overhead_p50_ms"],
                r["event_overhead_p99_ms"],
                f"{r['gateway_cpu_share']:.0%} / {r['client_cpu_share']:.0%}"
                f" / {r['provider_cpu_share']:.0%}",
                r["gateway_probe_p99_ms"],
                r["client_loop_lag_p99_ms"],
                r["rss_mb_peak"],
                r["wall_s"],
            ]
        )
    print_table(
        "generator gateway vs DashScope protocol server (client in its own process)",
        [
            "run",
            "jobs",
            "ended right",
            "max submits/s (limit)",
            "max tasks (limit)",
            "violations",
            "events/s",
            "event p50 ms",
            "event p99 ms",
            "CPU gateway / client / provider",
            "gateway probe p99 ms",
            "client loop lag p99 ms",
            "RSS peak MB",
            "wall s",
        ],
        rows,
    )
    summary = {
        key: load_run[key]
        for key in (
            "jobs",
            "all_ended_correctly",
            "max_submissions_per_s",
            "max_concurrent_tasks",
            "event_overhead_p99_ms",
            "rss_mb_peak",
        )
    }
    summary["all_ended_correctly"] = all(r["all_ended_correctly"] for _, r in runs)
    targets = {
        "all_ended_correctly": summary["all_ended_correctly"],
        "limits_never_exceeded": all(r["violations"] == 0 for _, r in runs),
        "event_overhead_p99_le_20ms": load_run["event_overhead_p99_ms"] <= 20,
    }
    event_overhead = {
        "jobs": load_run["jobs"],
        "p50_ms": load_run["event_overhead_p50_ms"],
        "p99_ms": load_run["event_overhead_p99_ms"],
        "client_process": True,
        "provider_process": True,
        "clock": "time.time() (CLOCK_REALTIME) in the gateway and in the client, one machine",
        "by_jobs": {
            str(r["jobs"]): {
                "p50_ms": r["event_overhead_p50_ms"],
                "p99_ms": r["event_overhead_p99_ms"],
            }
            for _, r in runs[:2]
        },
        "serialization": serialization_us(),
    }
    write_results(
        "generator",
        {
            **summary,
            "targets_met": targets,
            "event_overhead": event_overhead,
            "load_run": load_run,
            "light_run": light_run,
            "default_limits_run": default_run,
        },
    )


if __name__ == "__main__":
    main()
