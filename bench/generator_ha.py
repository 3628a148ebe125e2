"""Generator gateway replicas on one PostgreSQL store under load, with replicas SIGKILLed
mid-load, against the DashScope protocol server — and one SQLite replica in the same run.

Each replica is its own `clipmesh serve generator` process; PostgreSQL is a throwaway local
server (tests/postgres.py); the client is this process, holding one Generate stream open per
job, each on a replica chosen in turn. When a caller's replica dies its stream breaks and it
re-attaches (WatchJob) through another live replica, as a client behind a Kubernetes Service
would. Task durations are scaled down (queued 0.2–1 s at the provider, running 1–3 s).

Measured, per run:
- every job ended in the state its prompt asked for (`all_ended_correctly`): SUCCEEDED, or
  FAILED for the content-rejected ones, or CANCELLED for the ones their caller cancelled
  (through whichever replica it was on) — SUCCEEDED too when the cancel came once the job
  was already running and was answered REQUESTED; a job whose replica died with its submission in
  flight may end FAILED SUBMISSION_INTERRUPTED (counted as `interrupted_by_kills`, never
  resubmitted);
- `lost_jobs`: jobs that never ended; `provider_tasks_created_twice`: prompts the provider saw
  twice (every job has its own prompt);
- the provider's limits as the *protocol server* saw them (most submissions in any one-second
  window, most tasks at once) against the limits, and its violations;
- per-event overhead: from the event's stamp on a replica to this client having it
  (p50, p99), across re-attachments.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import free_port, print_table, write_results
from clipmesh_api.generator.v1 import generator_pb2, generator_pb2_grpc
from tests.fakes.dashscope_server import FakeDashScope
from tests.fault.replicas import GatewayReplicas
from tests.mesh import mesh_environ
from tests.postgres import start_local_server

State = generator_pb2.JobState
EXPECTED = {
    "ok": State.JOB_STATE_SUCCEEDED,
    "rejected": State.JOB_STATE_FAILED,
    "cancelled": State.JOB_STATE_CANCELLED,
}
MARKERS = {"ok": "", "rejected": "[fail:DataInspectionFailed] ", "cancelled": ""}
ENDED = {State.JOB_STATE_SUCCEEDED, State.JOB_STATE_FAILED, State.JOB_STATE_CANCELLED}
CANCELLED = generator_pb2.CancelOutcome.CANCEL_OUTCOME_CANCELLED
RETRIED = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN}
SETTINGS = {
    "CLIPMESH_GENERATOR_DASHSCOPE_POLL_INITIAL_S": "0.5",
    "CLIPMESH_GENERATOR_DASHSCOPE_POLL_MAX_S": "2",
    "CLIPMESH_GENERATOR_DASHSCOPE_RETRY_BASE_S": "0.2",
    "CLIPMESH_GENERATOR_MAX_ACTIVE_JOBS_PER_CALLER": "100000",
    "CLIPMESH_GENERATOR_LOG_LEVEL": "WARNING",
}


def plan(jobs: int, seed: int) -> list[str]:
    """The outcome each job asks for: 90 % ok, 5 % rejected, 5 % cancelled."""
    kinds = random.Random(seed).choices(["ok", "rejected", "cancelled"], [90, 5, 5], k=jobs)
    kinds[0] = "ok"
    return kinds


class Caller:
    """One job's caller: submits it on one replica, re-attaches elsewhere when that dies."""

    def __init__(self, index: int, kind: str, tag: str) -> None:
        self.index, self.kind = index, kind
        self.prompt = f"{MARKERS[kind]}{tag} shot {index}: a slow dolly across a harbour"
        self.key = f"{tag}-{index}"
        self.job_id = ""
        self.final: generator_pb2.Job | None = None
        self.reattached = 0
        self.cancelled = False
        # What CancelJob answered: CANCELLED, or REQUESTED (it was running already: it may
        # still succeed), or NOT_CANCELLABLE (it had ended).
        self.cancel_outcome = 0

    async def run(self, channels: dict[str, grpc.aio.Channel], live, overheads: list[float]):
        for attempt in range(10_000):
            targets = live()
            target = targets[(self.index + attempt) % len(targets)] if targets else None
            if target is None:
                await asyncio.sleep(0.2)
                continue
            stub = generator_pb2_grpc.GeneratorServiceStub(channels[target])
            try:
                if self.job_id:
                    self.reattached += 1
                    request = generator_pb2.WatchJobRequest(job_id=self.job_id)
                    call = stub.WatchJob(request, timeout=900)
                else:
                    spec = generator_pb2.GenerationSpec(
                        prompt=self.prompt,
                        backend="dashscope",
                        model="wanx2.1-t2v-turbo",
                        width=832,
                        height=480,
                    )
                    request = generator_pb2.GenerateRequest(spec=spec, idempotency_key=self.key)
                    call = stub.Generate(request, timeout=900)
                async for response in call:
                    event = response.event
                    overheads.append(time.time() - event.event_time.ToNanoseconds() / 1e9)
                    self.job_id = event.job.job_id
                    if event.job.state in ENDED:
                        self.final = event.job
                        return
                    if self.kind == "cancelled" and not self.cancelled:
                        cancel = generator_pb2.CancelJobRequest(job_id=self.job_id)
                        answer = await stub.CancelJob(cancel, timeout=30)
                        self.cancelled, self.cancel_outcome = True, answer.outcome
            except grpc.aio.AioRpcError as error:
                if error.code() not in RETRIED:
                    raise
                await asyncio.sleep(0.1)


async def load(replicas: GatewayReplicas, jobs: int, seed: int, kills: int, tag: str):
    callers = [Caller(i, kind, tag) for i, kind in enumerate(plan(jobs, seed))]
    overheads: list[float] = []
    options = [("grpc.max_concurrent_streams", 1000)]
    channels = {
        r.target: grpc.aio.insecure_channel(r.target, options=options) for r in replicas.replicas
    }
    rng = random.Random(seed)
    kill_log: list[tuple[int, float]] = []

    async def killer(started: float) -> None:
        for _ in range(kills):
            await asyncio.sleep(rng.uniform(4.0, 12.0))
            victim = rng.randrange(len(replicas))
            replicas[victim].kill()
            kill_log.append((victim, round(time.monotonic() - started, 1)))
            await asyncio.sleep(rng.uniform(0.5, 2.0))
            replicas[victim].start()
            await asyncio.to_thread(replicas[victim].wait_serving)

    started = time.monotonic()
    try:
        results = await asyncio.gather(
            *(c.run(channels, replicas.live_targets, overheads) for c in callers),
            killer(started),
            return_exceptions=True,
        )
    finally:
        for channel in channels.values():
            await channel.close()
    wall_s = time.monotonic() - started
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    values_ms = np.asarray(overheads) * 1000
    outcomes = collections.Counter()
    wrong, interrupted = [], 0
    for caller in callers:
        if caller.final is None:
            continue
        final = caller.final
        expected = {EXPECTED[caller.kind]}
        if caller.kind == "cancelled" and caller.cancel_outcome != CANCELLED:
            expected.add(State.JOB_STATE_SUCCEEDED)  # it had started: the provider finished it
        if final.error.reason == "SUBMISSION_INTERRUPTED":
            interrupted += 1
        elif final.state not in expected:
            wrong.append((caller.key, caller.kind, State.Name(final.state), final.error.reason))
        outcomes[State.Name(final.state).removeprefix("JOB_STATE_").lower()] += 1
    lost = sum(caller.final is None for caller in callers)
    return {
        "jobs": jobs,
        "wall_s": round(wall_s, 1),
        "ended_by_state": dict(outcomes),
        "all_ended_correctly": not errors and not wrong and lost == 0,
        "wrong_outcomes": wrong[:10],
        "stream_errors": errors[:10],
        "lost_jobs": lost,
        "interrupted_by_kills": interrupted,
        "kill_runs": len(kill_log),
        "kills_at_s": kill_log,
        "reattachments": sum(c.reattached for c in callers),
        "events": len(overheads),
        "event_overhead_p50_ms": round(float(np.percentile(values_ms, 50)), 2),
        "event_overhead_p99_ms": round(float(np.percentile(values_ms, 99)), 2),
    }


def run(
    *, replicas: int, jobs: int, kills: int, postgres: bool, seed: int, per_s: int, concurrent: int
) -> dict[str, object]:
    scratch = Path(tempfile.mkdtemp(prefix="clipmesh-bench-ha-"))
    server = None
    try:
        with FakeDashScope(
            api_key="sk-bench",
            task_duration_s=(1.0, 3.0),
            queue_s=(0.2, 1.0),
            max_concurrent_tasks=concurrent,
            max_submits_per_s=per_s,
            seed=seed,
        ) as fake:
            base = mesh_environ(scratch / "mesh", free_port)
            store = None
            if postgres:
                cluster = Path(tempfile.mkdtemp(prefix="clipmesh-pg-"))
                server = start_local_server(cluster, free_port())
                store = server.create_database(scratch)
            # 5 s: a killed replica's jobs are adopted within seconds, and a replica starved of
            # CPU by everything else on this 2-core machine still renews in time.
            group = GatewayReplicas(
                base,
                store,
                fake,
                scratch,
                count=replicas,
                free_port=free_port,
                extra=SETTINGS,
                lease_s=5.0,
            )
            group.start()
            try:
                tag = "pg" if postgres else "sqlite"
                result = asyncio.run(load(group, jobs, seed, kills, tag))
            finally:
                group.kill_all()
            made = collections.Counter(fake.task_prompts)
            result |= {
                "store": "postgresql" if postgres else "sqlite",
                "replicas": replicas,
                "provider_tasks_created": fake.tasks_created,
                "provider_tasks_created_twice": sum(1 for n in made.values() if n > 1),
                "max_submissions_per_s": fake.max_submits_in_any_1s_window,
                "max_concurrent_tasks": fake.max_concurrent_observed,
                "limit_submissions_per_s": per_s,
                "limit_concurrent_tasks": concurrent,
                "violations": len(fake.violations),
            }
            return result
    finally:
        if server is not None:
            server.stop()
            shutil.rmtree(server.cluster, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--seed", type=int, default=int(os.environ.get("BENCH_SEED", "0")))
    args = parser.parse_args()
    limits = {"per_s": 10, "concurrent": 20}
    ha = run(
        replicas=args.replicas,
        jobs=args.jobs,
        kills=args.kills,
        postgres=True,
        seed=args.seed,
        **limits,
    )
    # The same replicas without kills: what the kills (and restarts, on these 2 cores) cost.
    steady = run(
        replicas=args.replicas, jobs=args.jobs, kills=0, postgres=True, seed=args.seed, **limits
    )
    single = run(replicas=1, jobs=args.jobs, kills=0, postgres=False, seed=args.seed, **limits)
    # A light load (the machine far from saturated): the event path's own latency.
    light = run(replicas=args.replicas, jobs=60, kills=0, postgres=True, seed=args.seed, **limits)
    rows = [
        [
            f"{r['replicas']} × {r['store']}",
            r["jobs"],
            r["kill_runs"],
            r["all_ended_correctly"],
            r["lost_jobs"],
            r["interrupted_by_kills"],
            r["provider_tasks_created_twice"],
            f"{r['max_submissions_per_s']} / {r['limit_submissions_per_s']}",
            f"{r['max_concurrent_tasks']} / {r['limit_concurrent_tasks']}",
            r["violations"],
            r["event_overhead_p50_ms"],
            r["event_overhead_p99_ms"],
            r["reattachments"],
            r["wall_s"],
        ]
        for r in (ha, steady, single, light)
    ]
    print_table(
        "generator replicas on one store vs the DashScope protocol server",
        [
            "replicas",
            "jobs",
            "kills",
            "ended right",
            "lost",
            "interrupted",
            "tasks twice",
            "max submits/s (limit)",
            "max tasks (limit)",
            "violations",
            "event p50 ms",
            "event p99 ms",
            "re-attached",
            "wall s",
        ],
        rows,
    )
    keys = (
        "replicas",
        "jobs",
        "all_ended_correctly",
        "provider_tasks_created_twice",
        "max_submissions_per_s",
        "max_concurrent_tasks",
        "limit_submissions_per_s",
        "limit_concurrent_tasks",
        "kill_runs",
        "lost_jobs",
        "event_overhead_p99_ms",
    )
    targets = {
        "jobs_500_on_3_replicas": ha["jobs"] >= 500 and ha["replicas"] >= 3,
        "lost_0": ha["lost_jobs"] == 0,
        "created_twice_0": ha["provider_tasks_created_twice"] == 0,
        "limits_never_exceeded": ha["violations"] == 0
        and ha["max_submissions_per_s"] <= ha["limit_submissions_per_s"]
        and ha["max_concurrent_tasks"] <= ha["limit_concurrent_tasks"],
        "event_overhead_p99_le_20ms": ha["event_overhead_p99_ms"] <= 20,
    }
    write_results(
        "generator_ha",
        {
            **{key: ha[key] for key in keys},
            "sqlite_single_replica": {key: single[key] for key in keys},
            "postgresql_without_kills": {key: steady[key] for key in keys},
            "postgresql_light_load": {key: light[key] for key in keys},
            "targets_met": targets,
            "postgresql_run": ha,
            "postgresql_steady_run": steady,
            "sqlite_run": single,
            "postgresql_light_run": light,
        },
    )


if __name__ == "__main__":
    main()
