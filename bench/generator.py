"""Generator gateway under load: hundreds of concurrent jobs against DashScope's protocol.

The gateway runs as its own process (`clipmesh serve generator`) against the local DashScope
protocol server of the test suite, with task durations scaled down from minutes to seconds
(queued 0.2–1 s at the provider, then running 1–3 s) so 500 jobs finish in about a minute.
Every job is a real Generate stream held open to the end. A mix of outcomes is asked for
through the server's prompt markers: most succeed, some are rejected by content inspection,
some tasks are lost by the provider (UNKNOWN), some callers cancel while queued, and the first
submissions are throttled (429) to exercise retries.

Measured:
- every job ended in the state its prompt asked for (`all_ended_correctly`);
- the provider limits as the *protocol server* saw them: the most submissions in any one-second
  window and the most tasks at once, against the configured limits (and violations);
- per-event gateway overhead: when the gateway stamped an event until the client had it;
- the gateway's peak resident memory (VmHWM).

Two runs: the load run (500 jobs, limits 10 submissions/s and 20 concurrent tasks, as a
scaled account), and the default limits (2/s and 2 at once) with fewer jobs, to show the
gateway keeps to the published wan2.1 limits.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import grpc
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import print_table, service_process, write_results
from clipmesh_api.generator.v1 import generator_pb2, generator_pb2_grpc
from tests.fakes.dashscope_server import FakeDashScope

State = generator_pb2.JobState
EXPECTED = {
    "ok": State.JOB_STATE_SUCCEEDED,
    "rejected": State.JOB_STATE_FAILED,
    "lost": State.JOB_STATE_FAILED,
    "cancelled": State.JOB_STATE_CANCELLED,
}
MARKERS = {"ok": "", "rejected": "[fail:DataInspectionFailed] ", "lost": "[unknown] "}


def plan(jobs: int, seed: int) -> list[str]:
    """The outcome each job asks for: 88 % ok, 5 % rejected, 2 % lost, 5 % cancelled."""
    rng = random.Random(seed)
    kinds = rng.choices(["ok", "rejected", "lost", "cancelled"], [88, 5, 2, 5], k=jobs)
    kinds[0] = "ok"
    return kinds


async def one_job(stub, index: int, kind: str, overheads: list[float]) -> tuple[str, int, str]:
    prompt = f"{MARKERS.get(kind, '')}shot {index}: a slow dolly across a harbour at dawn"
    spec = generator_pb2.GenerationSpec(
        prompt=prompt, backend="dashscope", model="wanx2.1-t2v-turbo", width=832, height=480
    )
    call = stub.Generate(generator_pb2.GenerateRequest(spec=spec), timeout=900)
    last = None
    cancelled = False
    async for response in call:
        received = time.time()
        event = response.event
        overheads.append(received - event.event_time.ToNanoseconds() / 1e9)
        last = event.job
        if kind == "cancelled" and not cancelled and last.state == State.JOB_STATE_QUEUED:
            cancelled = True
            await stub.CancelJob(generator_pb2.CancelJobRequest(job_id=last.job_id), timeout=30)
    return kind, last.state, last.error.reason


async def load(target: str, jobs: int, seed: int) -> dict[str, object]:
    overheads: list[float] = []
    kinds = plan(jobs, seed)
    options = [("grpc.max_concurrent_streams", 1000)]
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        stub = generator_pb2_grpc.GeneratorServiceStub(channel)
        started = time.monotonic()
        outcomes = await asyncio.gather(
            *(one_job(stub, i, kind, overheads) for i, kind in enumerate(kinds)),
            return_exceptions=True,
        )
        wall_s = time.monotonic() - started
    errors = [repr(o) for o in outcomes if isinstance(o, BaseException)]
    ended = [o for o in outcomes if not isinstance(o, BaseException)]
    wrong = [o for o in ended if EXPECTED[o[0]] != o[1]]
    by_state: dict[str, int] = {}
    for _, state, _ in ended:
        name = State.Name(state).removeprefix("JOB_STATE_").lower()
        by_state[name] = by_state.get(name, 0) + 1
    values_ms = np.asarray(overheads) * 1000
    return {
        "jobs": jobs,
        "wall_s": round(wall_s, 1),
        "ended_by_state": by_state,
        "all_ended_correctly": not errors and not wrong and len(ended) == jobs,
        "wrong_outcomes": [list(map(str, w)) for w in wrong[:10]],
        "stream_errors": errors[:10],
        "events": len(overheads),
        "event_overhead_p50_ms": round(float(np.percentile(values_ms, 50)), 2),
        "event_overhead_p99_ms": round(float(np.percentile(values_ms, 99)), 2),
    }


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def run(jobs: int, *, per_second: float, concurrent: int, seed: int) -> dict[str, object]:
    with (
        TemporaryDirectory(prefix="clipmesh-bench-generator-") as scratch,
        FakeDashScope(
            api_key="sk-bench",
            task_duration_s=(1.0, 3.0),
            queue_s=(0.2, 1.0),
            max_concurrent_tasks=concurrent,
            max_submits_per_s=per_second,
            throttle_first_n_submits=3,
            seed=seed,
        ) as fake,
    ):
        env = {
            "CLIPMESH_GENERATOR_DATA_DIR": scratch,
            "CLIPMESH_GENERATOR_DASHSCOPE_BASE_URL": fake.base_url,
            "CLIPMESH_GENERATOR_DASHSCOPE_API_KEY": fake.api_key,
            "CLIPMESH_GENERATOR_DASHSCOPE_SUBMISSIONS_PER_S": str(per_second),
            "CLIPMESH_GENERATOR_DASHSCOPE_MAX_CONCURRENT": str(concurrent),
            "CLIPMESH_GENERATOR_DASHSCOPE_POLL_INITIAL_S": "0.5",
            "CLIPMESH_GENERATOR_DASHSCOPE_POLL_MAX_S": "2",
            "CLIPMESH_GENERATOR_DASHSCOPE_RETRY_BASE_S": "0.2",
            "CLIPMESH_GENERATOR_MAX_ACTIVE_JOBS_PER_CALLER": str(jobs + 1),
            "CLIPMESH_GENERATOR_LOG_LEVEL": "WARNING",
        }
        with service_process("generator", env) as gateway:
            result = asyncio.run(load(gateway.target, jobs, seed))
            result["rss_mb_peak"] = peak_rss_mb(gateway.pid)
        result |= {
            "limits": {"submissions_per_s": per_second, "concurrent_tasks": concurrent},
            "max_submissions_per_s": fake.max_submits_in_any_1s_window,
            "max_concurrent_tasks": fake.max_concurrent_observed,
            "provider_tasks_created": fake.tasks_created,
            "violations": len(fake.violations),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--default-limit-jobs", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    load_run = run(args.jobs, per_second=10, concurrent=20, seed=args.seed)
    default_run = run(args.default_limit_jobs, per_second=2, concurrent=2, seed=args.seed + 1)
    rows = []
    for name, r in (("load", load_run), ("default limits", default_run)):
        limits = r["limits"]
        rows.append(
            [
                name,
                r["jobs"],
                r["all_ended_correctly"],
                f"{r['max_submissions_per_s']} / {limits['submissions_per_s']:g}",
                f"{r['max_concurrent_tasks']} / {limits['concurrent_tasks']}",
                r["violations"],
                r["event_overhead_p50_ms"],
                r["event_overhead_p99_ms"],
                r["rss_mb_peak"],
                r["wall_s"],
            ]
        )
    print_table(
        "generator gateway vs DashScope protocol server",
        [
            "run",
            "jobs",
            "ended right",
            "max submits/s (limit)",
            "max tasks (limit)",
            "violations",
            "event p50 ms",
            "event p99 ms",
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
    summary["all_ended_correctly"] = (
        load_run["all_ended_correctly"] and default_run["all_ended_correctly"]
    )
    targets = {
        "all_ended_correctly": summary["all_ended_correctly"],
        "limits_never_exceeded": load_run["violations"] == 0 and default_run["violations"] == 0,
        "event_overhead_p99_le_20ms": load_run["event_overhead_p99_ms"] <= 20,
    }
    write_results(
        "generator",
        {
            **summary,
            "targets_met": targets,
            "load_run": load_run,
            "default_limits_run": default_run,
        },
    )


if __name__ == "__main__":
    main()
