"""Several generator gateway replicas on one PostgreSQL store, as an SRE runs them: replicas
SIGKILLed at random moments, every replica restarted in turn while jobs run, the database
restarted under load. Against the DashScope protocol server, which counts every task created
and every submission over the account's limits.

What must hold every time: each job ends in its right state (SUCCEEDED; FAILED with
SUBMISSION_INTERRUPTED only when a replica died with the job's submission in flight), no
provider task is created twice for a job, the account's limits (2 tasks at once, 2 submissions
a second) are never exceeded as the provider sees them, and a caller whose replica died
re-attaches through another and sees the job's end. The random moments are printed with their
seed, so a failure can be replayed.
"""

from __future__ import annotations

import collections
import os
import random
import time
from pathlib import Path

import grpc
import pytest

from clipmesh_client import ClipmeshError
from clipmesh_client.generation import GeneratorClient
from tests.fakes.dashscope_server import FakeDashScope
from tests.fault.replicas import FollowedJob, GatewayReplicas, follow_all
from tests.support import skip_unless_ci

pytestmark = pytest.mark.timeout(420)

ENDED = {"succeeded", "failed", "cancelled"}


def _jobs(count: int, tag: str) -> list[FollowedJob]:
    return [
        FollowedJob(f"{tag} shot {n}: a crane shot over a harbour", f"{tag}-{n}")
        for n in range(count)
    ]


def _check_outcomes(jobs: list[FollowedJob], fake: FakeDashScope, replicas: GatewayReplicas):
    """The invariants every test here holds; returns (succeeded, interrupted)."""
    assert all(job.final is not None for job in jobs), [j for j in jobs if j.final is None]
    outcomes = collections.Counter((job.final.state, job.final.error_reason) for job in jobs)
    assert set(outcomes) <= {("succeeded", ""), ("failed", "SUBMISSION_INTERRUPTED")}, outcomes
    made = collections.Counter(fake.task_prompts)
    twice = {prompt: n for prompt, n in made.items() if n > 1}
    assert twice == {}, f"provider tasks created twice: {twice}"
    for job in jobs:
        if job.final.state == "succeeded":
            assert made[job.prompt] == 1 and job.final.provider_task_id
    assert fake.violations == [], fake.violations
    assert fake.max_concurrent_observed <= fake.max_concurrent_tasks
    assert fake.max_submits_in_any_1s_window <= fake.max_submits_per_s
    rows = replicas.rows()
    assert len(rows) == len(jobs), "one job per idempotency key, whatever the retries"
    assert all(owner is None for _, _, owner in rows), "an ended job has no owner"
    return outcomes[("succeeded", "")], outcomes[("failed", "SUBMISSION_INTERRUPTED")]


@pytest.fixture
def replica_group(fault_env, postgres_database, tmp_path: Path, free_ports):
    groups: list[GatewayReplicas] = []

    def start(fake: FakeDashScope, count: int, **extra: str) -> GatewayReplicas:
        group = GatewayReplicas(
            fault_env,
            postgres_database,
            fake,
            tmp_path,
            count=count,
            free_port=free_ports,
            extra=extra,
        )
        groups.append(group)
        return group.start()

    yield start
    for group in groups:
        group.kill_all()


def test_replicas_killed_at_random_moments_lose_and_duplicate_nothing(replica_group) -> None:
    seed = int(os.environ.get("CLIPMESH_FAULT_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    with FakeDashScope(api_key="sk-ha", task_duration_s=(0.3, 1.0), seed=seed) as fake:
        replicas = replica_group(fake, 3)
        jobs = _jobs(30, "kill")
        threads = follow_all(replicas, jobs)
        kills = []
        for _ in range(3):
            time.sleep(rng.uniform(1.0, 4.0))
            victim = rng.randrange(len(replicas))
            replicas[victim].kill()
            kills.append((victim, round(time.monotonic(), 1)))
            time.sleep(rng.uniform(0.2, 1.5))
            replicas[victim].start()
            replicas[victim].wait_serving()
        for thread in threads:
            thread.join(timeout=240)
        succeeded, interrupted = _check_outcomes(jobs, fake, replicas)
        reattached = sum(job.reattached for job in jobs)
        moved = sum(len(job.replicas_used) > 1 for job in jobs)
        print(
            f"\nseed {seed}: 3 replicas, kills {kills}; 30 jobs: {succeeded} succeeded, "
            f"{interrupted} SUBMISSION_INTERRUPTED; provider tasks {fake.tasks_created}, "
            f"created twice 0, max concurrent {fake.max_concurrent_observed}/"
            f"{fake.max_concurrent_tasks}, max submissions in 1 s "
            f"{fake.max_submits_in_any_1s_window}/{fake.max_submits_per_s}; "
            f"watchers re-attached {reattached} times, {moved} jobs seen on >1 replica"
        )
        assert fake.tasks_created == succeeded + interrupted or fake.tasks_created >= succeeded
        assert all(job.states[-1] in ENDED for job in jobs)


def test_a_rolling_restart_of_every_replica_loses_and_duplicates_nothing(
    replica_group,
) -> None:
    with FakeDashScope(
        api_key="sk-ha",
        task_duration_s=(0.2, 0.6),
        max_concurrent_tasks=8,
        max_submits_per_s=10,
    ) as fake:
        replicas = replica_group(fake, 3, CLIPMESH_GENERATOR_GRACE_S="3")
        jobs = _jobs(100, "roll")
        threads = follow_all(replicas, jobs)
        time.sleep(2.0)
        restarts = []
        for n in range(len(replicas)):
            started = time.monotonic()
            assert replicas[n].terminate() == 0, replicas[n].log_tail()
            replicas[n].start()
            replicas[n].wait_serving()
            restarts.append(round(time.monotonic() - started, 1))
        for thread in threads:
            thread.join(timeout=240)
        succeeded, interrupted = _check_outcomes(jobs, fake, replicas)
        print(
            f"\nrolling restart of 3 replicas (took {restarts} s each) under 100 jobs: "
            f"{succeeded} succeeded, {interrupted} interrupted, lost "
            f"{100 - succeeded - interrupted}; provider tasks {fake.tasks_created}; "
            f"re-attached {sum(job.reattached for job in jobs)} times"
        )
        # A clean stop lets every submission in flight land: nothing is cut off.
        assert (succeeded, interrupted) == (100, 0)
        assert fake.tasks_created == 100


def test_a_database_restart_under_load_fails_calls_clearly_then_work_resumes(
    replica_group, postgres_server
) -> None:
    if not postgres_server.local:
        skip_unless_ci("restarting the database needs the local test server")
    with FakeDashScope(api_key="sk-ha", task_duration_s=(0.5, 1.5)) as fake:
        replicas = replica_group(fake, 2)
        jobs = _jobs(16, "db")
        threads = follow_all(replicas, jobs)
        time.sleep(3.0)
        postgres_server.stop()
        refusals: list[tuple[str, str]] = []
        try:
            for replica in replicas.replicas:
                with GeneratorClient(replica.target, max_attempts=1, timeout_s=15) as client:
                    try:
                        list(client.list_jobs())
                    except ClipmeshError as exc:
                        refusals.append((exc.code, exc.reason))
            time.sleep(2.0)
        finally:
            postgres_server.start()
        for thread in threads:
            thread.join(timeout=240)
        succeeded, interrupted = _check_outcomes(jobs, fake, replicas)
        print(
            f"\ndatabase stopped ~4 s under 16 jobs on 2 replicas: calls meanwhile answered "
            f"{refusals}; then {succeeded} succeeded, {interrupted} interrupted"
        )
        assert refusals == [(grpc.StatusCode.UNAVAILABLE, "STORE_UNAVAILABLE")] * 2
        assert succeeded + interrupted == 16
