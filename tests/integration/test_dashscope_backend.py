"""The dashscope backend over real HTTP against a faithful local DashScope (FakeDashScope)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from clipmesh.demo.library import make_video
from clipmesh.generator.backends.base import GenerationFailed, TaskContext
from clipmesh.generator.backends.dashscope import DashScopeBackend
from clipmesh.generator.backends.dashscope_api import request_body
from clipmesh.generator.jobs import GenerationSpec
from clipmesh.runtime.errors import InvalidArgument
from tests.fakes.dashscope_server import FakeDashScope
from tests.fakes.dashscope_tasks import check_submission

pytestmark = pytest.mark.timeout(60)

KEY = "sk-test-secret-7f3a9c"
FAST = {"poll_initial_s": 0.05, "poll_max_s": 0.2, "retry_base_s": 0.01}
# Only validates: it never calls out.
OFFLINE = DashScopeBackend(base_url="http://127.0.0.1:9/api/v1", api_key=KEY)


@dataclass
class Recorder:
    """A TaskContext's callbacks, remembering what the backend told the gateway."""

    server: FakeDashScope | None = None
    submitted: list[str] = field(default_factory=list)
    polls_before_submitted: list[int] = field(default_factory=list)
    reports: list[tuple[float | None, float | None, str]] = field(default_factory=list)
    cancel_on_submit: bool = False

    def context(self, scratch_dir: Path) -> TaskContext:
        async def report(fraction, eta_s, message) -> None:
            self.reports.append((fraction, eta_s, message))

        async def submitted(task_id: str) -> None:
            self.submitted.append(task_id)
            if self.server is not None:
                self.polls_before_submitted.append(self.server.poll_count)
            if self.cancel_on_submit:
                ctx.cancel_requested.set()

        scratch_dir.mkdir(parents=True, exist_ok=True)  # as the gateway does
        ctx = TaskContext("job-1", scratch_dir, report, submitted)
        return ctx

    @property
    def messages(self) -> list[str]:
        return [message for _, _, message in self.reports]


@pytest.fixture
def fake() -> Iterator[Callable[..., FakeDashScope]]:
    """Starts FakeDashScope servers (key KEY, short tasks, unless given) and stops them after."""
    servers: list[FakeDashScope] = []

    def start(**options) -> FakeDashScope:
        quick = {"api_key": KEY, "queue_s": (0.02, 0.05), "task_duration_s": (0.05, 0.15)}
        servers.append(FakeDashScope(**{**quick, **options}).start())
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@contextlib.asynccontextmanager
async def backend_for(base_url: str, **options) -> AsyncIterator[DashScopeBackend]:
    backend = DashScopeBackend(base_url=base_url, **{"api_key": KEY, **FAST, **options})
    try:
        yield backend
    finally:
        await backend.close()


def spec(prompt: str = "a red fox trotting through fresh snow", **fields):
    """A validated 480P spec (the cheapest size for the fake to render)."""
    fields = {"width": 832, "height": 480, **fields}
    unchecked = GenerationSpec(prompt=prompt, **fields)
    return OFFLINE.validate(unchecked)


def counter(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, {"backend": "dashscope", **labels}) or 0.0


async def test_a_job_ends_with_the_probed_video_and_the_providers_rewritten_prompt(
    fake, tmp_path
) -> None:
    server = fake()
    recorder = Recorder(server)
    async with backend_for(server.base_url) as backend:
        video = await backend.run(spec(), recorder.context(tmp_path))

    assert (video.width, video.height, video.fps) == (832, 480, 30.0)
    assert video.path.parent == tmp_path and video.path.stat().st_size > 0
    assert video.actual_prompt.startswith("a red fox trotting through fresh snow")
    assert len(video.actual_prompt) > len("a red fox trotting through fresh snow")
    assert len(recorder.submitted) == 1 and recorder.polls_before_submitted == [0]
    assert recorder.messages == [
        f"submitted to DashScope (task {recorder.submitted[0]})",
        "queued at provider",
        "rendering at provider",
    ]
    assert all(fraction is None for fraction, _, _ in recorder.reports)
    assert server.tasks_created == 1 and server.violations == []


@pytest.mark.parametrize(
    ("prompt", "options", "expected"),
    [
        ("[fail:DataInspectionFailed] a fox", {}, ("CONTENT_REJECTED", "DataInspectionFailed")),
        ("[fail:InternalError.Algo] a fox", {}, ("GENERATION_FAILED", "InternalError.Algo")),
        ("[reject:Arrearage] a fox", {}, ("PROVIDER_ARREARAGE", "Arrearage")),
        ("[unknown] a fox", {}, ("PROVIDER_TASK_UNKNOWN", "")),
        ("a fox", {"api_key": "sk-wrong-key"}, ("PROVIDER_AUTH", "InvalidApiKey")),
        ("a fox", {"expire_files": True}, ("PROVIDER_RESULT_EXPIRED", "")),
    ],
)
async def test_provider_errors_fail_the_job_with_a_stable_reason(
    fake, tmp_path, prompt, options, expected
) -> None:
    reason, provider_code = expected
    server = fake(**options)
    errors_before = counter("clipmesh_generator_provider_errors_total", code=provider_code)
    async with backend_for(server.base_url) as backend:
        with pytest.raises(GenerationFailed) as failed:
            await backend.run(spec(prompt), Recorder().context(tmp_path))

    assert (failed.value.reason, failed.value.provider_code) == (reason, provider_code)
    if provider_code:
        after = counter("clipmesh_generator_provider_errors_total", code=provider_code)
        assert after == errors_before + 1
    if reason == "CONTENT_REJECTED":
        assert "rejected the content" in failed.value.message


async def test_the_providers_parameter_check_reaches_the_caller(fake, tmp_path) -> None:
    server = fake()
    unvalidated = GenerationSpec(
        prompt="a fox", model="wan2.2-t2v-plus", width=1280, height=720, duration_s=5
    )
    async with backend_for(server.base_url) as backend:
        with pytest.raises(GenerationFailed) as failed:
            await backend.run(unvalidated, Recorder().context(tmp_path))

    assert failed.value.reason == "INVALID_REQUEST"
    assert failed.value.provider_code == "InvalidParameter"
    assert "1920*1080" in failed.value.message
    assert server.tasks_created == 0


async def test_throttled_submissions_are_retried_without_breaking_the_limits(
    fake, tmp_path
) -> None:
    server = fake(throttle_first_n_submits=2)
    retries_before = counter("clipmesh_generator_provider_retries_total")
    async with backend_for(server.base_url) as backend:
        video = await backend.run(spec(), Recorder().context(tmp_path))

    assert video.width == 832
    assert server.tasks_created == 1 and len(server.submit_times) == 3
    assert server.violations == []
    assert counter("clipmesh_generator_provider_retries_total") >= retries_before + 2


async def test_server_errors_on_polls_are_retried(fake, tmp_path) -> None:
    server = fake(server_errors_first_n_polls=3)
    async with backend_for(server.base_url) as backend:
        video = await backend.run(spec(), Recorder().context(tmp_path))

    assert video.height == 480 and server.poll_count > 3


async def test_throttling_that_outlasts_the_retries_fails_the_job(fake, tmp_path) -> None:
    server = fake(throttle_first_n_submits=100)
    recorder = Recorder()
    async with backend_for(server.base_url, max_retries=2) as backend:
        with pytest.raises(GenerationFailed) as failed:
            await backend.run(spec(), recorder.context(tmp_path))

    assert failed.value.reason == "PROVIDER_THROTTLED"
    assert failed.value.provider_code == "Throttling.RateQuota"
    assert len(server.submit_times) == 3 and server.tasks_created == 0
    assert recorder.submitted == [] and server.violations == []


async def test_eight_jobs_at_once_keep_to_the_accounts_limits(fake, tmp_path) -> None:
    server = fake(max_submits_per_s=2, max_concurrent_tasks=2)
    async with backend_for(server.base_url, submissions_per_s=2, max_concurrent=2) as backend:
        # The gateway's queue keeps the concurrency limit; this semaphore stands in for it.
        slots = asyncio.Semaphore(backend.max_concurrent)

        async def job(number: int):
            ctx = Recorder().context(tmp_path / f"job-{number}")
            async with slots:
                return await backend.run(spec(f"shot {number}"), ctx)

        videos = await asyncio.gather(*(job(n) for n in range(8)))

    assert [v.width for v in videos] == [832] * 8
    assert server.tasks_created == 8
    assert server.max_submits_in_any_1s_window <= 2
    assert server.max_concurrent_observed <= 2
    assert server.violations == []


async def test_resume_follows_the_existing_task_without_submitting_again(fake, tmp_path) -> None:
    server = fake(task_duration_s=0.3)
    first = Recorder(server)
    async with backend_for(server.base_url) as backend:
        running = asyncio.create_task(backend.run(spec(), first.context(tmp_path / "a")))
        while not first.submitted:
            await asyncio.sleep(0.01)
        running.cancel()  # the gateway stops here, with the task id stored
        with contextlib.suppress(asyncio.CancelledError):
            await running

    second = Recorder(server)
    async with backend_for(server.base_url) as restarted:
        video = await restarted.resume(spec(), first.submitted[0], second.context(tmp_path / "b"))

    assert video.width == 832 and video.path.parent == tmp_path / "b"
    assert server.tasks_created == 1 and second.submitted == []


async def test_a_cancel_while_queued_at_the_provider_ends_the_job_cancelled(fake, tmp_path) -> None:
    server = fake()
    recorder = Recorder(server, cancel_on_submit=True)
    async with backend_for(server.base_url) as backend:
        with pytest.raises(GenerationFailed) as failed:
            await backend.run(spec("[slow] a fox"), recorder.context(tmp_path))

    task_id = recorder.submitted[0]
    assert failed.value.reason == "CANCELLED"
    assert server.cancel_calls == [(task_id, True)]
    assert server.status_of(task_id) == "CANCELED"


async def test_a_rendering_task_cannot_be_cancelled_and_still_finishes(fake, tmp_path) -> None:
    server = fake(task_duration_s=0.5)
    recorder = Recorder(server)
    async with backend_for(server.base_url) as backend:
        running = asyncio.create_task(backend.run(spec(), recorder.context(tmp_path)))
        while not recorder.submitted or server.status_of(recorder.submitted[0]) != "RUNNING":
            await asyncio.sleep(0.01)
        accepted = await backend.cancel(recorder.submitted[0])
        video = await running

    assert accepted is False and backend.cancels_running is False
    assert server.cancel_calls == [(recorder.submitted[0], False)]
    assert video.width == 832


async def test_the_api_key_never_leaves_the_authorization_header(fake, tmp_path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    server = fake()
    failures: list[GenerationFailed] = []
    async with backend_for(server.base_url) as backend:
        await backend.run(spec(), Recorder().context(tmp_path / "ok"))
        with pytest.raises(GenerationFailed) as failed:
            await backend.run(spec("[fail:DataInspectionFailed] x"), Recorder().context(tmp_path))
        failures.append(failed.value)
        assert not await backend.cancel("no-such-task")
        shown = repr(backend)
    async with backend_for(server.base_url, api_key="sk-wrong-secret-41b2") as wrong_key:
        with pytest.raises(GenerationFailed) as failed:
            await wrong_key.run(spec(), Recorder().context(tmp_path))
        failures.append(failed.value)
        shown += repr(wrong_key)

    for secret in (KEY, "sk-wrong-secret-41b2"):
        assert secret not in shown
        assert secret not in caplog.text
        assert all(secret not in f"{f} {f.message} {f.provider_code}" for f in failures)


async def test_the_result_download_never_carries_the_api_key(tmp_path) -> None:
    clip = make_video(tmp_path / "v.mp4", seed=3, duration_s=1, fps=30, shots=1)
    seen: list[httpx.Request] = []

    def provider(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("video-synthesis"):
            return httpx.Response(200, json={"output": {"task_id": "t1", "task_status": "PENDING"}})
        if request.url.path.endswith("/tasks/t1"):
            output = {"task_status": "SUCCEEDED", "video_url": "http://127.0.0.1:9/f/t1.mp4"}
            return httpx.Response(200, json={"output": output})
        return httpx.Response(200, content=clip.path.read_bytes())

    transport = httpx.MockTransport(provider)
    async with backend_for("http://127.0.0.1:9/api/v1", transport=transport) as backend:
        video = await backend.run(spec(), Recorder().context(tmp_path))

    assert video.width == 320
    api_calls, download = seen[:-1], seen[-1]
    assert all(r.headers["Authorization"] == f"Bearer {KEY}" for r in api_calls)
    assert "Authorization" not in download.headers


async def test_a_submit_is_retried_only_when_it_cannot_have_reached_the_provider(
    tmp_path,
) -> None:
    attempts: list[str] = []

    def flaky(failure: type[httpx.TransportError]) -> httpx.MockTransport:
        def provider(request: httpx.Request) -> httpx.Response:
            attempts.append(request.method)
            if len(attempts) < 3:
                raise failure("simulated", request=request)
            return httpx.Response(400, json={"code": "InvalidParameter", "message": "stop"})

        return httpx.MockTransport(provider)

    url, rate = "http://127.0.0.1:9/api/v1", {"submissions_per_s": 50}
    async with backend_for(url, transport=flaky(httpx.ConnectError), **rate) as backend:
        with pytest.raises(GenerationFailed) as refused:
            await backend.run(spec(), Recorder().context(tmp_path))
    assert refused.value.reason == "INVALID_REQUEST" and len(attempts) == 3

    attempts.clear()
    async with backend_for(url, transport=flaky(httpx.ReadTimeout), **rate) as backend:
        with pytest.raises(GenerationFailed) as uncertain:
            await backend.run(spec(), Recorder().context(tmp_path))
    assert uncertain.value.reason == "PROVIDER_UNAVAILABLE" and len(attempts) == 1


def test_validate_fills_the_models_defaults() -> None:
    filled = spec(width=0, height=0)
    assert (filled.model, filled.width, filled.height) == ("wan2.2-t2v-plus", 1920, 1080)
    assert (filled.duration_s, filled.fps) == (5.0, 30.0)


@pytest.mark.parametrize(
    ("fields", "reason", "mentions"),
    [
        ({"width": 1280, "height": 720}, "UNSUPPORTED_SIZE", "832x480, 480x832"),
        ({"duration_s": 10}, "UNSUPPORTED_DURATION", "allowed: 5 s"),
        ({"prompt": "x" * 801}, "PROMPT_TOO_LONG", "at most 800"),
        ({"negative_prompt": "x" * 501}, "PROMPT_TOO_LONG", "at most 500"),
        ({"seed": -1}, "UNSUPPORTED_SEED", "0–2147483647"),
    ],
)
def test_validate_refuses_what_the_model_does_not_offer(fields, reason, mentions) -> None:
    with pytest.raises(InvalidArgument) as refused:
        spec(**{"prompt": "a fox", **fields})
    assert refused.value.reason == reason
    assert mentions in refused.value.message


def test_every_size_and_duration_the_backend_offers_is_accepted_by_the_provider() -> None:
    for model, limits in OFFLINE.models.items():
        for (width, height), duration_s in (
            (size, d) for size in limits.sizes for d in limits.durations_s
        ):
            checked = OFFLINE.validate(
                GenerationSpec(
                    prompt="a fox", model=model, width=width, height=height, duration_s=duration_s
                )
            )
            check_submission(request_body(checked))
