"""Several generator gateway replicas as real processes on one PostgreSQL job store, and SDK
callers that follow their jobs through whichever replica is up, as a client behind a
Kubernetes Service would.

Each replica has its own ports and scratch dir; all share the store (a database of the test
PostgreSQL server, its password in a file), the outputs dir and the DashScope fake's account.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import psycopg

from clipmesh.runtime.postgres import DatabaseTarget
from clipmesh_client import ClipmeshError
from clipmesh_client.generation import GenerationJob, GeneratorClient
from tests.fakes.dashscope_server import FakeDashScope
from tests.fault.support import ServiceProcess

LEASE_S = 2.0
# What a caller meets while a replica dies or the store is away; anything else is a bug.
RETRIED = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNKNOWN,
}


class GatewayReplicas:
    """`count` gateway replicas sharing `store`; index them as a list.

    Args:
        base_env: The mesh environment (the fault tests' `fault_env`).
        store: The shared job store; None for one replica on SQLite in its data dir.
        fake: The provider account every replica submits to.
        directory: Where scratch dirs, the outputs dir and logs go.
        count: How many replicas.
        free_port: Hands out free loopback ports.
        extra: More settings for every replica.
        lease_s: The replicas' lease (short: a killed replica's jobs are taken over soon).
    """

    def __init__(
        self,
        base_env: Mapping[str, str],
        store: DatabaseTarget | None,
        fake: FakeDashScope,
        directory: Path,
        *,
        count: int,
        free_port: Callable[[], int],
        extra: Mapping[str, str] | None = None,
        lease_s: float = LEASE_S,
    ) -> None:
        assert store is not None or count == 1, "replicas share a PostgreSQL store"
        self.store = store
        database = {}
        if store is not None:
            database = {
                "CLIPMESH_GENERATOR_STORE": store.dsn,
                "CLIPMESH_GENERATOR_STORE_PASSWORD_FILE": str(store.password_file),
            }
        shared = {
            **database,
            "CLIPMESH_GENERATOR_OUTPUTS_DIR": str(directory / "outputs"),
            "CLIPMESH_GENERATOR_LEASE_S": str(lease_s),
            "CLIPMESH_GENERATOR_DEFAULT_BACKEND": "dashscope",
            "CLIPMESH_GENERATOR_DASHSCOPE_BASE_URL": fake.base_url,
            "CLIPMESH_GENERATOR_DASHSCOPE_API_KEY": fake.api_key,
            "CLIPMESH_GENERATOR_DASHSCOPE_POLL_INITIAL_S": "0.05",
            "CLIPMESH_GENERATOR_DASHSCOPE_POLL_MAX_S": "0.2",
            "CLIPMESH_GENERATOR_DASHSCOPE_MAX_CONCURRENT": str(fake.max_concurrent_tasks),
            "CLIPMESH_GENERATOR_DASHSCOPE_SUBMISSIONS_PER_S": str(fake.max_submits_per_s),
            "CLIPMESH_GENERATOR_DASHSCOPE_ORPHANED_TASK_S": "3",
            "CLIPMESH_GENERATOR_GRACE_S": "10",
            **(extra or {}),
        }
        self.replicas = [
            ServiceProcess(
                "generator",
                {
                    **base_env,
                    **shared,
                    "CLIPMESH_GENERATOR_PORT": str(free_port()),
                    "CLIPMESH_GENERATOR_METRICS_PORT": str(free_port()),
                    "CLIPMESH_GENERATOR_DATA_DIR": str(directory / f"replica-{n}"),
                },
                directory / f"replica-{n}.log",
            )
            for n in range(count)
        ]

    def __getitem__(self, n: int) -> ServiceProcess:
        return self.replicas[n]

    def __len__(self) -> int:
        return len(self.replicas)

    def start(self) -> GatewayReplicas:
        for replica in self.replicas:
            replica.start()
        for replica in self.replicas:
            replica.wait_serving()
        return self

    def kill_all(self) -> None:
        for replica in self.replicas:
            replica.kill()

    def live_targets(self) -> list[str]:
        return [replica.target for replica in self.replicas if replica.running]

    def rows(self) -> list[tuple]:
        """(job_id, state code, owner) of every job, straight from the store."""
        with psycopg.connect(self.store.dsn, **self.store.connect_kwargs()) as db:
            return db.execute("SELECT job_id, state, owner FROM jobs ORDER BY seq").fetchall()


@dataclass
class FollowedJob:
    """What one caller saw of its job, across the replicas it had to move between."""

    prompt: str
    key: str
    job_id: str = ""
    states: list[str] = field(default_factory=list)
    replicas_used: set[str] = field(default_factory=set)
    reattached: int = 0
    final: GenerationJob | None = None
    errors: list[str] = field(default_factory=list)


def follow(replicas: GatewayReplicas, job: FollowedJob, start: int, timeout_s: float = 180):
    """Submits `job` (idempotency key: a retry finds the same job) and follows it to its end,
    moving to the next live replica whenever the one it talks to dies."""
    deadline = time.monotonic() + timeout_s
    for n in itertools.count(start):
        assert time.monotonic() < deadline, f"{job.key}: no end within {timeout_s} s: {job}"
        targets = replicas.live_targets()
        if not targets:
            time.sleep(0.2)
            continue
        target = targets[n % len(targets)]
        try:
            with GeneratorClient(target, max_attempts=1, timeout_s=5) as client:
                if job.job_id:
                    job.reattached += 1
                    events = client.watch(job.job_id, timeout_s=120)
                else:
                    events = client.generate(
                        job.prompt, backend="dashscope", idempotency_key=job.key, timeout_s=120
                    )
                for event in events:
                    job.job_id = event.job.job_id
                    job.replicas_used.add(target)
                    if not job.states or job.states[-1] != event.job.state:
                        job.states.append(event.job.state)
                    if event.job.finished:
                        job.final = event.job
                        return
        except ClipmeshError as exc:
            job.errors = [*job.errors[-9:], f"{target}: {exc.code.name} {exc.reason}: {exc}"]
            if exc.code not in RETRIED:
                raise
            time.sleep(0.1)


def follow_all(replicas: GatewayReplicas, jobs: list[FollowedJob]) -> list[threading.Thread]:
    """A thread per job, each starting on a different replica."""
    threads = [
        threading.Thread(target=follow, args=(replicas, job, n), daemon=True)
        for n, job in enumerate(jobs)
    ]
    for thread in threads:
        thread.start()
    return threads
