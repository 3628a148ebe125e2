"""What the generator gateway refuses over gRPC — bad specs before any provider call, bad job
ids and states, a caller over its share of active jobs — and its clients against it: the
Python SDK's round trips (blocking and asyncio) and the `clipmesh generate` / `clipmesh jobs`
CLI. The jobs themselves are in test_generator_jobs.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc
import pytest

from clipmesh_api.generator.v1 import generator_pb2
from clipmesh_client import errors as client_errors
from clipmesh_client.async_generation import AsyncGeneratorClient
from clipmesh_client.generation import GeneratorClient
from tests.integration.conftest import State, generate, refusal, spec
from tests.support import run_cli

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.mark.parametrize(
    ("bad", "reason", "field"),
    [
        (spec(""), "EMPTY_PROMPT", "spec.prompt"),
        (spec("x" * 801), "PROMPT_TOO_LONG", "spec.prompt"),
        (spec(negative_prompt="n" * 501), "PROMPT_TOO_LONG", "spec.negative_prompt"),
        (spec(width=1000, height=1000), "UNSUPPORTED_SIZE", "spec.width"),
        (spec(duration_s=11), "UNSUPPORTED_DURATION", "spec.duration_s"),
        (spec(fps=29.97), "UNSUPPORTED_FPS", "spec.fps"),
        (spec(backend="dashscope", width=1280, height=720), "UNSUPPORTED_SIZE", "spec.width"),
        (spec(backend="dashscope", duration_s=10), "UNSUPPORTED_DURATION", "spec.duration_s"),
        (spec(backend="midjourney"), "UNKNOWN_BACKEND", "spec.backend"),
        (spec(model="wan9"), "UNSUPPORTED_MODEL", "spec.model"),
    ],
)
async def test_bad_specs_are_refused_before_any_provider_call(gateway, fake, bad, reason, field):
    created = fake.tasks_created
    error = await refusal(gateway.stub.Generate(generator_pb2.GenerateRequest(spec=bad)).read())
    assert (error.code, error.reason, error.metadata.get("field")) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        reason,
        field,
    )
    assert fake.tasks_created == created


async def test_the_allowed_sizes_are_named_in_the_refusal(gateway):
    error = await refusal(
        gateway.stub.Generate(
            generator_pb2.GenerateRequest(spec=spec(backend="dashscope", width=1280, height=720))
        ).read()
    )
    assert "1920x1080" in error.message and "832x480" in error.message


async def test_bad_ids_and_states_get_clear_errors(gateway):
    missing = await refusal(gateway.stub.GetJob(generator_pb2.GetJobRequest(job_id="0" * 32)))
    assert (missing.code, missing.reason) == (grpc.StatusCode.NOT_FOUND, "JOB_NOT_FOUND")
    for bad in ("", "../etc/passwd", "é" * 10, "x" * 65):
        error = await refusal(gateway.stub.GetJob(generator_pb2.GetJobRequest(job_id=bad)))
        assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    error = await refusal(gateway.stub.ListJobs(generator_pb2.ListJobsRequest(states=[42])))
    assert (error.reason, error.metadata["field"]) == ("UNKNOWN_ENUM_VALUE", "states[0]")


async def test_one_caller_cannot_hold_more_than_its_share(gateway):
    slow = spec("[slow] a long crane shot", backend="dashscope")
    calls = [
        gateway.stub.Generate(
            generator_pb2.GenerateRequest(spec=slow), metadata=(("x-clipmesh-caller", "greedy"),)
        )
        for _ in range(4)
    ]
    jobs = [(await call.read()).event.job for call in calls]
    error = await refusal(
        gateway.stub.Generate(
            generator_pb2.GenerateRequest(spec=slow), metadata=(("x-clipmesh-caller", "greedy"),)
        ).read()
    )
    assert (error.code, error.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_JOBS")
    assert error.retry_after_s
    others = await generate(gateway, spec("someone else"), caller="patient")
    assert others[-1].job.state == State.JOB_STATE_SUCCEEDED
    for job in jobs:
        await gateway.stub.CancelJob(generator_pb2.CancelJobRequest(job_id=job.job_id))
    for call in calls:
        call.cancel()


def _sdk_round_trip(target: str, destination: Path) -> dict:
    request = dict(
        size=(256, 144),
        duration_s=1,
        fps=12,
        seed=3,
        idempotency_key="sdk-1",
        labels={"project": "demo"},
    )
    prompt = "a pull out from a close-up, cold blue night"
    with GeneratorClient(target, caller="sdk-test", timeout_s=10) as gateway:
        events = list(gateway.generate(prompt, **request))
        job = events[-1].job
        again = list(gateway.generate(prompt, **request))  # the same key: the same job
        saved = gateway.download_output(job.job_id, destination)
        listed = [j.job_id for j in gateway.list_jobs(states=["succeeded"], page_size=2)]
        with pytest.raises(client_errors.NotFoundError):
            gateway.get_job("f" * 32)
        return {
            "first": events[0].job,
            "job": job,
            "again": again[-1].job,
            "saved": saved,
            "listed": listed,
            "fetched": gateway.get_job(job.job_id),
            "cancel": gateway.cancel_job(job.job_id),
        }


async def test_the_sdk_generates_watches_downloads_and_lists(gateway, tmp_path):
    out = await asyncio.to_thread(_sdk_round_trip, gateway.target, tmp_path / "clip.mp4")
    assert out["first"].state == "queued" and out["job"].state == "succeeded"
    assert out["job"].finished and out["job"].size == (256, 144)
    assert out["job"].labels == {"project": "demo"}
    assert out["again"].job_id == out["job"].job_id  # the same key: the same job
    assert out["saved"].stat().st_size > 0
    assert out["job"].job_id in out["listed"]
    assert out["fetched"] == out["job"]
    assert out["cancel"][1] == "not_cancellable"


async def test_the_async_sdk_generates_watches_downloads_and_lists(gateway, tmp_path):
    request = dict(size=(256, 144), duration_s=1, fps=12, seed=5, idempotency_key="sdk-async-1")
    prompt = "a slow tilt up a lighthouse, warm light"
    async with AsyncGeneratorClient(gateway.target, caller="sdk-async", timeout_s=10) as sdk:
        events = [event async for event in sdk.generate(prompt, labels={"take": "1"}, **request)]
        job = events[-1].job
        again = [event async for event in sdk.generate(prompt, labels={"take": "1"}, **request)]
        stream = sdk.generate("a crane down to the harbour", **request | {"idempotency_key": ""})
        left = await anext(stream)
        await stream.aclose()  # leaving the stream early: the job goes on
        rewatched = [event async for event in sdk.watch(left.job.job_id)]
        saved = await sdk.download_output(job.job_id, tmp_path / "async.mp4")
        listed = [j.job_id async for j in sdk.list_jobs(states=["succeeded"], page_size=1)]
        fetched, cancelled, usage = await asyncio.gather(
            sdk.get_job(job.job_id), sdk.cancel_job(job.job_id), sdk.usage()
        )
        with pytest.raises(client_errors.NotFoundError) as missing:
            await sdk.get_job("f" * 32)
        with pytest.raises(client_errors.InvalidArgumentError) as refused:
            async for _ in sdk.generate("x" * 801, **request | {"idempotency_key": ""}):
                pass
        with pytest.raises(ValueError, match="unknown job state"):
            sdk.list_jobs(states=["finished"])
        removed = await sdk.delete_output(job.job_id)
    assert (events[0].job.state, job.state) == ("queued", "succeeded")
    assert (job.size, job.labels, job.caller) == ((256, 144), {"take": "1"}, "sdk-async")
    assert again[-1].job.job_id == job.job_id  # the same key: the same job
    assert left.job.state == "queued" and rewatched[-1].job.state == "succeeded"
    assert saved.stat().st_size > 0 and fetched == job
    assert set(listed) >= {job.job_id, left.job.job_id}
    assert cancelled[1] == "not_cancellable"
    assert {quota.quota for quota in usage} == {"provider_video_seconds_per_day", "concurrent_jobs"}
    assert (missing.value.reason, refused.value.reason) == ("JOB_NOT_FOUND", "PROMPT_TOO_LONG")
    assert refused.value.metadata["field"] == "spec.prompt"
    assert removed


async def test_the_cli_generates_lists_and_reports_errors_in_one_line(gateway, tmp_path):
    output = tmp_path / "cli.mp4"
    code, out, err = await run_cli(
        "generate",
        "固定镜头，夜晚的港口",
        "--size",
        "256x144",
        "--duration",
        "1",
        "--fps",
        "12",
        "--output",
        str(output),
        "--target",
        gateway.target,
    )
    assert code == 0, err
    assert "succeeded" in out and output.stat().st_size > 0
    code, out, _ = await run_cli(
        "jobs", "list", "--json", "--limit", "3", "--target", gateway.target
    )
    listed = json.loads(out)
    assert code == 0 and 1 <= len(listed) <= 3
    assert listed[0]["prompt"] == "固定镜头，夜晚的港口"  # newest first
    code, _, err = await run_cli("generate", "x" * 801, "--target", gateway.target)
    assert code == 1
    (line,) = err.strip().splitlines()
    assert "INVALID_ARGUMENT [PROMPT_TOO_LONG]" in line
    code, _, err = await run_cli("generate", "a shot", "--size", "wide", "--target", gateway.target)
    assert code == 2 and "WIDTHxHEIGHT" in err
