"""Two gateway replicas in this process on one PostgreSQL job store, as callers see them
through either: a job submitted on one is listed, watched to its end and cancelled on the
other; a cancel requested on the replica that does not run the job reaches the one that does;
one caller's concurrent-jobs limit holds across both; an idempotency key retried on the other
replica finds the same job. Renders are small animatic clips (the local backend: each replica
runs one at a time).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from clipmesh.generator.config import GeneratorConfig
from clipmesh.generator.server import create_app
from clipmesh.runtime.config import load_config
from clipmesh.runtime.postgres import DatabaseTarget
from clipmesh_api.generator.v1 import generator_pb2, generator_pb2_grpc
from clipmesh_client.wire import ChannelPolicy, open_aio_channel
from tests.support import serve_in_process

pytestmark = pytest.mark.timeout(120)

State = generator_pb2.JobState
CALLER = (("x-clipmesh-caller", "team-a"),)


@contextlib.asynccontextmanager
async def replica(
    tmp_path: Path, store: DatabaseTarget, n: int, **settings: str
) -> AsyncIterator[generator_pb2_grpc.GeneratorServiceStub]:
    config = load_config(
        GeneratorConfig,
        environ={
            "CLIPMESH_GENERATOR_DATA_DIR": str(tmp_path / f"replica-{n}"),
            "CLIPMESH_GENERATOR_OUTPUTS_DIR": str(tmp_path / "outputs"),
            "CLIPMESH_GENERATOR_STORE": store.dsn,
            "CLIPMESH_GENERATOR_STORE_PASSWORD_FILE": str(store.password_file),
            "CLIPMESH_GENERATOR_LEASE_S": "3",
            **settings,
        },
    )
    async with serve_in_process(config, create_app(config)) as running:
        channel = open_aio_channel(running.target, ChannelPolicy(timeout_s=60, max_attempts=1))
        try:
            yield generator_pb2_grpc.GeneratorServiceStub(channel)
        finally:
            await channel.close()


@contextlib.asynccontextmanager
async def two_replicas(tmp_path: Path, store: DatabaseTarget, **settings: str):
    """Replicas 0 and 1 on `store`."""
    async with (
        replica(tmp_path, store, 0, **settings) as a,
        replica(tmp_path, store, 1, **settings) as b,
    ):
        yield a, b


def _request(prompt: str, *, key: str = "", seconds: float = 1.0) -> generator_pb2.GenerateRequest:
    spec = generator_pb2.GenerationSpec(
        prompt=prompt, backend="animatic", width=128, height=128, duration_s=seconds, fps=12.0
    )
    return generator_pb2.GenerateRequest(spec=spec, idempotency_key=key)


async def _first_event(stub, request) -> generator_pb2.Job:
    call = stub.Generate(request, metadata=CALLER)
    job = (await call.read()).event.job
    call.cancel()  # leaving the stream never stops the job
    return job


async def _watch(stub, job_id: str) -> list[generator_pb2.Job]:
    call = stub.WatchJob(generator_pb2.WatchJobRequest(job_id=job_id), metadata=CALLER)
    return [response.event.job async for response in call]


async def test_a_job_is_one_job_whichever_replica_is_asked(
    postgres_database: DatabaseTarget, tmp_path: Path
) -> None:
    async with two_replicas(tmp_path, postgres_database) as (a, b):
        job = await _first_event(a, _request("a pier at dawn", key="shot-1"))
        seen_on_b = await _watch(b, job.job_id)
        again = await _first_event(b, _request("a pier at dawn", key="shot-1"))
        listed = await b.ListJobs(generator_pb2.ListJobsRequest(), metadata=CALLER)
    assert job.state == State.JOB_STATE_QUEUED
    assert seen_on_b[-1].state == State.JOB_STATE_SUCCEEDED
    assert seen_on_b[-1].result.sha256 and seen_on_b[-1].job_id == job.job_id
    assert again.job_id == job.job_id  # the key, retried on the other replica
    assert [j.job_id for j in listed.jobs] == [job.job_id]


async def test_a_reused_key_with_another_request_is_refused_on_the_other_replica(
    postgres_database: DatabaseTarget, tmp_path: Path
) -> None:
    async with two_replicas(tmp_path, postgres_database) as (a, b):
        job = await _first_event(a, _request("a pier at dawn", key="shot-1"))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _first_event(b, _request("another shot", key="shot-1"))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert job.job_id in refused.value.details()


async def test_a_cancel_asked_of_either_replica_stops_the_job_where_it_runs(
    postgres_database: DatabaseTarget, tmp_path: Path
) -> None:
    async with two_replicas(tmp_path, postgres_database) as (a, b):
        # Long renders: each replica runs one at a time, so a third waits in the queue.
        jobs = [await _first_event(a, _request(f"long take {n}", seconds=10)) for n in range(3)]
        running, queued = [], []
        for _ in range(100):
            states = {}
            for job in jobs:
                request = generator_pb2.GetJobRequest(job_id=job.job_id)
                states[job.job_id] = (await b.GetJob(request, metadata=CALLER)).job.state
            running = [i for i, s in states.items() if s == State.JOB_STATE_RUNNING]
            queued = [i for i, s in states.items() if s == State.JOB_STATE_QUEUED]
            if len(running) == 2:
                break
            await asyncio.sleep(0.1)
        assert len(running) == 2 and len(queued) == 1, states
        answers = []
        # Each replica runs one of the two: asked of one replica, one cancel is its own job
        # and the other reaches the other replica through the store.
        for job_id, stub in ((queued[0], b), (running[0], b), (running[1], b)):
            answers.append(
                await stub.CancelJob(generator_pb2.CancelJobRequest(job_id=job_id), metadata=CALLER)
            )
        ended = {job_id: (await _watch(a, job_id))[-1] for job_id in [*running, *queued]}
    assert [answer.outcome for answer in answers] == [generator_pb2.CANCEL_OUTCOME_CANCELLED] * 3
    assert {job.state for job in ended.values()} == {State.JOB_STATE_CANCELLED}


async def test_one_callers_concurrent_jobs_are_counted_on_every_replica(
    postgres_database: DatabaseTarget, tmp_path: Path
) -> None:
    limit = {"CLIPMESH_GENERATOR_MAX_ACTIVE_JOBS_PER_CALLER": "2"}
    async with two_replicas(tmp_path, postgres_database, **limit) as (a, b):
        await _first_event(a, _request("first", seconds=10))
        await _first_event(b, _request("second", seconds=10))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _first_event(a, _request("third", seconds=10))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
