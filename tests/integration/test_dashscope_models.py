"""wan2.5 and wan2.6 through the generator gateway's gRPC API against the local DashScope:
1080P clips of each model's durations, multi-shot, generated soundtracks; what a model does not
offer is refused before any provider call; a multi-shot or silent clip is never answered with
a default clip from the cache."""

from __future__ import annotations

from pathlib import Path

import av
import grpc
import pytest

from clipmesh.media.probe import probe
from clipmesh_api.generator.v1 import generator_pb2
from tests.integration.conftest import State, generate, refusal, spec
from tests.support import run_cli

pytestmark = pytest.mark.asyncio(loop_scope="module")
MULTI, SINGLE = generator_pb2.SHOT_TYPE_MULTI, generator_pb2.SHOT_TYPE_SINGLE


def wan(model: str, prompt: str, **fields) -> generator_pb2.GenerationSpec:
    return spec(prompt, backend="dashscope", model=model, **fields)


async def downloaded(gateway, job: generator_pb2.Job, tmp_path: Path) -> Path:
    request = generator_pb2.DownloadJobOutputRequest(job_id=job.job_id)
    path = tmp_path / f"{job.job_id}.mp4"
    path.write_bytes(b"".join([r.chunk async for r in gateway.stub.DownloadJobOutput(request)]))
    return path


def has_soundtrack(path: Path) -> bool:
    with av.open(str(path)) as container:
        return bool(container.streams.audio)


async def test_a_15_s_1080p_multi_shot_wan26_clip_with_a_soundtrack(gateway, fake, tmp_path):
    asked = wan(
        "wan2.6-t2v",
        "a detective walks a rainy street at night, then a close-up of his eyes",
        width=1920,
        height=1080,
        duration_s=15,
        shot_type=MULTI,
        generate_audio=True,
    )
    job = (await generate(gateway, asked))[-1].job

    assert job.state == State.JOB_STATE_SUCCEEDED, job.error.message
    assert (job.spec.shot_type, job.spec.generate_audio) == (MULTI, True)
    sent = fake.task_parameters[-1]
    assert (sent["size"], sent["duration"]) == ("1920*1080", 15)
    assert (sent["shot_type"], sent["audio"], sent["prompt_extend"]) == ("multi", True, True)
    video = await downloaded(gateway, job, tmp_path)
    info = probe(video)
    assert (info.width, info.height, info.fps) == (1920, 1080, 30.0)
    assert (job.result.width, job.result.height, job.result.fps) == (1920, 1080, 30.0)
    assert has_soundtrack(video)


async def test_wan26_takes_any_whole_second_and_can_be_silent(gateway, fake, tmp_path):
    asked = wan("wan2.6-t2v", "a paper boat drifts", width=1280, height=720, duration_s=2)
    default = (await generate(gateway, asked))[-1].job
    assert default.state == State.JOB_STATE_SUCCEEDED, default.error.message
    assert "audio" not in fake.task_parameters[-1]  # left to the model: a soundtrack

    asked.duration_s, asked.generate_audio = 7, False
    silent = (await generate(gateway, asked))[-1].job

    assert silent.state == State.JOB_STATE_SUCCEEDED, silent.error.message
    assert fake.task_parameters[-1]["duration"] == 7
    assert fake.task_parameters[-1]["audio"] is False
    assert not has_soundtrack(await downloaded(gateway, silent, tmp_path))
    assert has_soundtrack(await downloaded(gateway, default, tmp_path))


async def test_wan25_makes_10_s_clips_with_its_default_soundtrack(gateway, fake, tmp_path):
    asked = wan("wan2.5-t2v-preview", "a kettle whistles on a stove", duration_s=10)
    job = (await generate(gateway, asked))[-1].job

    assert job.state == State.JOB_STATE_SUCCEEDED, job.error.message
    sent = fake.task_parameters[-1]
    assert (sent["size"], sent["duration"]) == ("1920*1080", 10)  # the model's default size
    assert "shot_type" not in sent and "audio" not in sent
    video = await downloaded(gateway, job, tmp_path)
    assert probe(video).fps == 24.0
    assert has_soundtrack(video)


@pytest.mark.parametrize(
    ("model", "fields", "refused"),
    [
        ("wan2.6-t2v", {"width": 832, "height": 480}, ("UNSUPPORTED_SIZE", "spec.width")),
        ("wan2.6-t2v", {"duration_s": 16}, ("UNSUPPORTED_DURATION", "spec.duration_s")),
        ("wan2.6-t2v", {"duration_s": 7.5}, ("UNSUPPORTED_DURATION", "spec.duration_s")),
        ("wan2.6-t2v", {"prompt": "x" * 1501}, ("PROMPT_TOO_LONG", "spec.prompt")),
        (
            "wan2.6-t2v",
            {"shot_type": MULTI, "prompt_extend": False},
            ("MULTI_SHOT_NEEDS_PROMPT_EXTEND", "spec.prompt_extend"),
        ),
        ("wan2.5-t2v-preview", {"duration_s": 15}, ("UNSUPPORTED_DURATION", "spec.duration_s")),
        ("wan2.5-t2v-preview", {"shot_type": MULTI}, ("UNSUPPORTED_SHOT_TYPE", "spec.shot_type")),
        ("wan2.2-t2v-plus", {"generate_audio": True}, ("UNSUPPORTED_AUDIO", "spec.generate_audio")),
        ("wan2.2-t2v-plus", {"shot_type": MULTI}, ("UNSUPPORTED_SHOT_TYPE", "spec.shot_type")),
    ],
)
async def test_what_the_model_does_not_offer_is_refused_and_nothing_is_submitted(
    gateway, fake, model, fields, refused
):
    submitted = len(fake.submit_times)
    asked = wan(model, **{"prompt": "a fox in fresh snow", **fields})
    error = await refusal(gateway.stub.Generate(generator_pb2.GenerateRequest(spec=asked)).read())

    reason, field = refused
    assert (error.code, error.reason, error.metadata.get("field")) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        reason,
        field,
    )
    assert len(fake.submit_times) == submitted  # the provider never heard of it


async def test_the_refusal_names_the_allowed_choices(gateway):
    asked = wan("wan2.5-t2v-preview", "a fox", shot_type=MULTI)
    error = await refusal(gateway.stub.Generate(generator_pb2.GenerateRequest(spec=asked)).read())
    assert "allowed shot types: single" in error.message and "wan2.6-t2v" in error.message
    asked = wan("wan2.6-t2v", "a fox", duration_s=1)
    error = await refusal(gateway.stub.Generate(generator_pb2.GenerateRequest(spec=asked)).read())
    assert "2 s, 3 s" in error.message and "15 s" in error.message


async def test_a_multi_shot_request_is_not_served_the_single_shot_clip_from_the_cache(
    gateway, fake
):
    single = wan("wan2.6-t2v", "two friends argue in a kitchen", seed=11, shot_type=SINGLE)
    first = (await generate(gateway, single))[-1].job
    assert first.state == State.JOB_STATE_SUCCEEDED and not first.result.cache_hit
    created = fake.tasks_created

    multi = wan("wan2.6-t2v", "two friends argue in a kitchen", seed=11, shot_type=MULTI)
    made = (await generate(gateway, multi))[-1].job
    again = (await generate(gateway, multi))[-1].job

    assert made.state == State.JOB_STATE_SUCCEEDED and not made.result.cache_hit
    assert fake.tasks_created == created + 1
    assert fake.task_parameters[-1]["shot_type"] == "multi"
    assert again.result.cache_hit and again.result.sha256 == made.result.sha256
    assert fake.tasks_created == created + 1  # the same multi-shot request: from the cache


async def test_the_sdk_and_the_cli_ask_for_multi_shot_and_silence(gateway, fake) -> None:
    from clipmesh_client import AsyncGeneratorClient

    async with AsyncGeneratorClient(gateway.target) as client:
        events = client.generate(
            "a fox crosses a snowy field, then looks back",
            backend="dashscope",
            model="wan2.6-t2v",
            size=(1280, 720),
            duration_s=3,
            shot_type="multi",
            generate_audio=False,
        )
        final = [event async for event in events][-1].job
    assert final.state == "succeeded", final.error_message
    sent = fake.task_parameters[-1]
    assert (sent["shot_type"], sent["audio"], sent["duration"]) == ("multi", False, 3)

    code, _, err = await run_cli(
        "generate", "a heron lands on a pier", "--backend", "dashscope", "--model",
        "wan2.6-t2v", "--size", "1280x720", "--duration", "2", "--shot-type", "multi",
        "--no-audio", "--json", "--target", gateway.target,
    )  # fmt: skip
    assert code == 0, err
    assert (fake.task_parameters[-1]["shot_type"], fake.task_parameters[-1]["audio"]) == (
        "multi",
        False,
    )
    code, _, err = await run_cli(
        "generate", "x", "--shot-type", "several", "--target", gateway.target
    )
    assert code == 2 and "--shot-type" in err


async def test_the_sdk_refuses_an_unknown_shot_type_before_any_call(gateway) -> None:
    from clipmesh_client import AsyncGeneratorClient

    async with AsyncGeneratorClient(gateway.target) as client:
        with pytest.raises(ValueError, match="shot_type"):
            client.generate("x", shot_type="several")
