"""The generator gateway's jobs over gRPC, on the offline animatic backend and on DashScope's
protocol served by a faithful local server: every state of the lifecycle, idempotency, the
content cache, provider failures and limits, cancelling, watching and re-attaching, listing,
output download and deletion, and the metrics all of this leaves. What the gateway refuses,
and its SDK and CLI, are in test_generator_refusals_and_clients.py."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import av
import grpc
import pytest

from clipmesh_api.generator.v1 import generator_pb2
from tests.integration.conftest import State, generate, refusal, spec
from tests.support import scrape_metrics

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def wait_for_state(gateway, job_id: str, states: set[int], timeout_s: float = 30):
    async def poll():
        while True:
            job = (await gateway.stub.GetJob(generator_pb2.GetJobRequest(job_id=job_id))).job
            if job.state in states:
                return job
            await asyncio.sleep(0.05)

    return await asyncio.wait_for(poll(), timeout_s)


async def test_an_animatic_job_streams_queued_running_progress_and_a_decodable_result(gateway):
    events = await generate(gateway, spec())
    states = [e.job.state for e in events]
    assert states[0] == State.JOB_STATE_QUEUED and events[0].job.queue_position == 0
    assert State.JOB_STATE_RUNNING in states and states[-1] == State.JOB_STATE_SUCCEEDED
    fractions = [e.job.progress for e in events if e.job.state == State.JOB_STATE_RUNNING]
    assert fractions == sorted(fractions) and any(0 < f < 1 for f in fractions)
    assert any(e.message.startswith("frame ") for e in events)
    job = events[-1].job
    assert (job.result.width, job.result.height, job.result.fps) == (256, 144, 12.0)
    assert job.spec.model == "animatic-v1" and job.orig_prompt == job.spec.prompt
    path = job.result.uri.removeprefix("file://")
    with av.open(path) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        assert (stream.codec_context.width, stream.codec_context.height) == (256, 144)
    assert frames == 12
    assert (
        hashlib.sha256(await asyncio.to_thread(Path(path).read_bytes)).hexdigest()
        == job.result.sha256
    )
    assert job.create_time.seconds and job.start_time.seconds and job.end_time.seconds


async def test_the_same_idempotency_key_and_spec_returns_the_same_job(gateway):
    first = await generate(gateway, spec("idempotent shot"), key="shot-1")
    again = await generate(gateway, spec("idempotent shot"), key="shot-1")
    assert first[-1].job.job_id == again[-1].job.job_id
    assert again[-1].job.state == State.JOB_STATE_SUCCEEDED
    error = await refusal(
        gateway.stub.Generate(
            generator_pb2.GenerateRequest(spec=spec("a different shot"), idempotency_key="shot-1")
        ).read()
    )
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "IDEMPOTENCY_KEY_REUSED"
    assert error.metadata["job_id"] == first[-1].job.job_id


async def test_an_identical_seeded_request_is_answered_from_the_cache(gateway, fake):
    seeded = spec("[cache] a crane up over rooftops", backend="dashscope", seed=7)
    made = (await generate(gateway, seeded))[-1].job
    created = fake.tasks_created
    cached = await generate(gateway, seeded)
    assert len(cached) == 1  # no queue, no provider: one SUCCEEDED event
    job = cached[0].job
    assert job.state == State.JOB_STATE_SUCCEEDED and job.result.cache_hit
    assert job.result.sha256 == made.result.sha256 and job.job_id != made.job_id
    assert fake.tasks_created == created
    unseeded = spec("[cache] a crane up over rooftops", backend="dashscope")
    assert not (await generate(gateway, unseeded))[-1].job.result.cache_hit


async def test_dashscope_jobs_keep_both_prompts_and_map_provider_failures(gateway):
    ok = (await generate(gateway, spec("night market, handheld", backend="dashscope")))[-1].job
    assert ok.state == State.JOB_STATE_SUCCEEDED and ok.provider_task_id
    assert ok.orig_prompt == "night market, handheld" and ok.actual_prompt
    assert (ok.result.width, ok.result.height) == (ok.spec.width, ok.spec.height)
    rejected = await generate(
        gateway, spec("[fail:DataInspectionFailed] a crowd", backend="dashscope")
    )
    job = rejected[-1].job
    assert job.state == State.JOB_STATE_FAILED
    assert (job.error.reason, job.error.provider_code) == (
        "CONTENT_REJECTED",
        "DataInspectionFailed",
    )
    lost = (await generate(gateway, spec("[unknown] fog", backend="dashscope")))[-1].job
    assert lost.error.reason == "PROVIDER_TASK_UNKNOWN"


async def test_provider_limits_hold_with_many_jobs_at_once(gateway, fake):
    jobs = await asyncio.gather(
        *(
            generate(gateway, spec(f"shot {i}", backend="dashscope"), caller=f"team-{i}")
            for i in range(8)
        )
    )
    assert all(events[-1].job.state == State.JOB_STATE_SUCCEEDED for events in jobs)
    assert fake.max_concurrent_observed <= 2
    assert fake.max_submits_in_any_1s_window <= 2
    assert fake.violations == []
    positions = [
        e.job.queue_position
        for events in jobs
        for e in events
        if e.job.state == State.JOB_STATE_QUEUED
    ]
    assert max(positions) >= 2  # callers saw where they stood


async def test_cancelling_a_queued_and_a_running_job(gateway):
    long = spec("a long static shot of the sea", duration_s=10.0, fps=30.0, width=640, height=368)
    running_call = gateway.stub.Generate(generator_pb2.GenerateRequest(spec=long))
    running = (await running_call.read()).event.job
    queued_events = gateway.stub.Generate(generator_pb2.GenerateRequest(spec=spec("waiting")))
    queued = (await queued_events.read()).event.job
    assert queued.state == State.JOB_STATE_QUEUED
    answer = await gateway.stub.CancelJob(generator_pb2.CancelJobRequest(job_id=queued.job_id))
    assert answer.outcome == generator_pb2.CANCEL_OUTCOME_CANCELLED
    assert answer.job.state == State.JOB_STATE_CANCELLED
    rest = [r.event async for r in queued_events]
    assert rest[-1].job.state == State.JOB_STATE_CANCELLED
    await wait_for_state(gateway, running.job_id, {State.JOB_STATE_RUNNING})
    answer = await gateway.stub.CancelJob(generator_pb2.CancelJobRequest(job_id=running.job_id))
    assert answer.outcome == generator_pb2.CANCEL_OUTCOME_CANCELLED
    final = [r.event async for r in running_call][-1].job
    assert final.state == State.JOB_STATE_CANCELLED
    again = await gateway.stub.CancelJob(generator_pb2.CancelJobRequest(job_id=running.job_id))
    assert again.outcome == generator_pb2.CANCEL_OUTCOME_NOT_CANCELLABLE


async def test_a_disconnected_caller_does_not_stop_its_job_and_can_watch_again(gateway):
    call = gateway.stub.Generate(generator_pb2.GenerateRequest(spec=spec("re-attach")))
    job_id = (await call.read()).event.job.job_id
    call.cancel()  # the caller goes away
    watched = [
        r.event async for r in gateway.stub.WatchJob(generator_pb2.WatchJobRequest(job_id=job_id))
    ]
    assert watched[-1].job.state == State.JOB_STATE_SUCCEEDED
    again = [
        r.event async for r in gateway.stub.WatchJob(generator_pb2.WatchJobRequest(job_id=job_id))
    ]
    assert len(again) == 1 and again[0].job.state == State.JOB_STATE_SUCCEEDED


async def test_jobs_list_newest_first_filtered_and_paged(gateway):
    page = await gateway.stub.ListJobs(
        generator_pb2.ListJobsRequest(states=[State.JOB_STATE_SUCCEEDED], page={"page_size": 2})
    )
    assert len(page.jobs) == 2 and page.page.next_page_token
    assert all(j.state == State.JOB_STATE_SUCCEEDED for j in page.jobs)
    assert page.jobs[0].create_time.ToNanoseconds() >= page.jobs[1].create_time.ToNanoseconds()
    following = await gateway.stub.ListJobs(
        generator_pb2.ListJobsRequest(
            states=[State.JOB_STATE_SUCCEEDED],
            page={"page_size": 2, "page_token": page.page.next_page_token},
        )
    )
    assert not {j.job_id for j in following.jobs} & {j.job_id for j in page.jobs}
    dashscope = await gateway.stub.ListJobs(generator_pb2.ListJobsRequest(backend="dashscope"))
    assert dashscope.jobs and all(j.backend == "dashscope" for j in dashscope.jobs)


async def test_an_output_downloads_intact_and_can_be_deleted(gateway):
    job = (await generate(gateway, spec("download me")))[-1].job
    request = generator_pb2.DownloadJobOutputRequest(job_id=job.job_id)
    data = b"".join([r.chunk async for r in gateway.stub.DownloadJobOutput(request)])
    assert len(data) == job.result.size_bytes
    assert hashlib.sha256(data).hexdigest() == job.result.sha256
    deleted = await gateway.stub.DeleteJobOutput(
        generator_pb2.DeleteJobOutputRequest(job_id=job.job_id)
    )
    assert deleted.file_removed and deleted.job.output_deleted
    error = await refusal(gateway.stub.DownloadJobOutput(request).read())
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "NO_OUTPUT")


async def test_metrics_count_jobs_cache_and_provider_errors(gateway):
    samples = await scrape_metrics(gateway.metrics_port)
    assert (
        samples[
            (
                "clipmesh_generator_jobs_ended_total",
                (("backend", "animatic"), ("state", "succeeded")),
            )
        ]
        >= 1
    )
    assert samples[("clipmesh_generator_cache_lookups_total", (("result", "hit"),))] >= 1
    assert (
        samples[
            (
                "clipmesh_generator_provider_errors_total",
                (("backend", "dashscope"), ("code", "DataInspectionFailed")),
            )
        ]
        >= 1
    )
    assert ("clipmesh_generator_queue_seconds_count", (("backend", "dashscope"),)) in samples
    assert (
        "clipmesh_generator_rate_limit_wait_seconds_count",
        (("backend", "dashscope"),),
    ) in samples
