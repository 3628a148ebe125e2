"""The `dashscope` backend: Wan text-to-video on Alibaba Cloud Model Studio (DashScope).

It runs one job over DashScope's task API (`dashscope_api.py`, where the protocol, its retries
and its error codes live): submits the task, records its id with the gateway so a restart can
resume it, polls it with growing waits, cancels it while it is still PENDING, and downloads and
probes the video it made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any
from urllib.parse import urlsplit

from clipmesh.generator import metrics
from clipmesh.generator.backends.base import Backend, GenerationFailed, RenderedVideo, TaskContext
from clipmesh.generator.backends.dashscope_api import MAX_SEED, MODELS, DashScopeAPI
from clipmesh.generator.jobs import GenerationSpec, ShotType
from clipmesh.media.probe import probe
from clipmesh.runtime.errors import InvalidArgument, ServiceError

log = logging.getLogger(__name__)

_IN_PROGRESS = {
    "PENDING": "queued at provider",
    "RUNNING": "rendering at provider",
    "SUSPENDED": "suspended at provider",
}


class DashScopeBackend(Backend):
    """Wan text-to-video through DashScope's asynchronous task API.

    Args:
        max_concurrent: The account's concurrent tasks; the gateway's queue keeps to it.
        poll_initial_s: First wait between status polls; grows ×1.5 per poll.
        poll_max_s: Longest wait between status polls.
        orphaned_task_s: How long a task whose submission was cut off is assumed to hold one
            of the account's concurrent tasks (wan renders take minutes).
        api: How to reach the account (`base_url`, `api_key`, `submissions_per_s`, retries,
            timeouts, download limits): `DashScopeAPI`'s arguments, documented there.
    """

    name = "dashscope"
    default_model = "wan2.2-t2v-plus"
    models = MODELS
    cancels_running = False  # DashScope cancels PENDING tasks only
    remote = True  # billed per submission: never resubmitted after an interrupted submit

    def __init__(
        self,
        *,
        max_concurrent: int = 2,
        poll_initial_s: float = 2.0,
        poll_max_s: float = 15.0,
        orphaned_task_s: float = 300.0,
        **api: Any,
    ) -> None:
        self._api = DashScopeAPI(backend=self.name, **api)
        self.max_concurrent = max_concurrent
        self.orphaned_task_s = orphaned_task_s
        self._poll_initial_s = poll_initial_s
        self._poll_max_s = poll_max_s
        # Submit-to-SUCCEEDED times seen here, per model (a moving average), for ETAs.
        self._typical_s: dict[str, float] = {}

    @property
    def submissions_per_s(self) -> float:
        return self._api.submissions_per_s

    def use_submission_rate(self, rate) -> None:
        self._api.use_submission_rate(rate)

    def __repr__(self) -> str:
        base_url = self._api.base_url
        return f"DashScopeBackend(base_url={base_url!r}, max_concurrent={self.max_concurrent})"

    def validate(self, spec: GenerationSpec) -> GenerationSpec:
        """The spec with defaults filled in; also refuses seeds DashScope does not take, and a
        multi-shot clip with prompt rewriting off (DashScope would make one shot instead)."""
        filled = super().validate(spec)
        if filled.seed is not None and not 0 <= filled.seed <= MAX_SEED:
            raise InvalidArgument(
                f"seed {filled.seed} is outside DashScope's range 0–{MAX_SEED}",
                field="spec.seed",
                reason="UNSUPPORTED_SEED",
            )
        if filled.shot_type is ShotType.MULTI and filled.prompt_extend is False:
            raise InvalidArgument(
                "a multi-shot clip needs prompt_extend unset or true: DashScope plans the shots "
                "while rewriting the prompt, and makes one shot without it",
                field="spec.prompt_extend",
                reason="MULTI_SHOT_NEEDS_PROMPT_EXTEND",
            )
        return filled

    async def run(self, spec: GenerationSpec, ctx: TaskContext) -> RenderedVideo:
        """Submits the task, records its id with the gateway, then follows it to the video."""
        if ctx.cancel_requested.is_set():
            raise GenerationFailed("CANCELLED", "cancelled before submission to DashScope")
        started_s = time.monotonic()
        answer = await self._api.submit(spec, before_send=ctx.about_to_submit)
        task_id = str(answer.get("task_id") or "")
        if not task_id:
            raise GenerationFailed("PROVIDER_ERROR", "DashScope accepted the task but sent no id")
        await ctx.submitted(task_id)
        eta_s = self._eta_s(spec.model, started_s)
        await ctx.report(None, eta_s, f"submitted to DashScope (task {task_id})")
        return await self._follow(spec, task_id, ctx, started_s)

    async def resume(
        self, spec: GenerationSpec, provider_task_id: str, ctx: TaskContext
    ) -> RenderedVideo:
        """Follows a task submitted before a restart; never submits again."""
        await ctx.report(None, None, f"resumed following DashScope task {provider_task_id}")
        return await self._follow(spec, provider_task_id, ctx, None)

    async def cancel(self, provider_task_id: str) -> bool:
        """Asks DashScope to cancel a task; True when it accepted (it does for PENDING only)."""
        try:
            await self._api.cancel(provider_task_id)
        except GenerationFailed as exc:
            log.info(
                "DashScope did not cancel task %s (%s)",
                provider_task_id,
                exc.provider_code or exc.reason,
            )
            return False
        return True

    async def close(self) -> None:
        """Closes the HTTP connections."""
        await self._api.close()

    async def _follow(
        self,
        spec: GenerationSpec,
        task_id: str,
        ctx: TaskContext,
        started_s: float | None,
    ) -> RenderedVideo:
        """Polls the task until it ends; downloads and probes the video it made."""
        delay_s = self._poll_initial_s
        reported = ""
        cancel_asked = False
        while True:
            output = await self._api.poll(task_id)
            status = str(output.get("task_status") or "UNKNOWN")
            if status == "SUCCEEDED":
                if started_s is not None:
                    self._observe(spec.model, time.monotonic() - started_s)
                return await self._fetch(output, ctx)
            if status not in _IN_PROGRESS:
                raise self._ended(status, output, task_id)
            if status != reported:
                reported = status
                await ctx.report(None, self._eta_s(spec.model, started_s), _IN_PROGRESS[status])
            pending = status == "PENDING"
            if pending and ctx.cancel_requested.is_set() and not cancel_asked:
                cancel_asked = True
                if await self.cancel(task_id):
                    raise GenerationFailed("CANCELLED", f"cancelled at DashScope (task {task_id})")
            # A RUNNING task cannot be stopped, so only a PENDING one wakes early on a cancel.
            if pending and not cancel_asked:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ctx.cancel_requested.wait(), delay_s)
            else:
                await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 1.5, self._poll_max_s)

    def _ended(self, status: str, output: dict, task_id: str) -> GenerationFailed:
        if status == "FAILED":
            code = str(output.get("code") or "")
            metrics.PROVIDER_ERRORS.labels(self.name, code or "FAILED").inc()
            return self._api.failure(code, str(output.get("message") or ""), None)
        if status == "CANCELED":
            return GenerationFailed("CANCELLED", f"the task was cancelled at DashScope ({task_id})")
        metrics.PROVIDER_ERRORS.labels(self.name, status).inc()
        if status == "UNKNOWN":
            return GenerationFailed(
                "PROVIDER_TASK_UNKNOWN",
                f"DashScope does not know task {task_id}: it never existed or has expired "
                "(task ids live 24 h)",
            )
        return GenerationFailed("PROVIDER_ERROR", f"DashScope reported task status {status!r}")

    async def _fetch(self, output: dict, ctx: TaskContext) -> RenderedVideo:
        url = str(output.get("video_url") or "")
        if urlsplit(url).scheme not in ("http", "https"):
            raise GenerationFailed("PROVIDER_ERROR", "DashScope reported success with no video_url")
        path = ctx.scratch_dir / "dashscope.mp4"
        await self._api.download(url, path)
        try:
            info = await asyncio.to_thread(probe, path)
        except ServiceError as exc:
            raise GenerationFailed(
                "PROVIDER_BAD_RESULT", f"the video DashScope returned is unusable: {exc.message}"
            ) from exc
        return RenderedVideo(
            path=path,
            width=info.width,
            height=info.height,
            fps=info.fps,
            duration_s=info.duration_s,
            actual_prompt=str(output.get("actual_prompt") or ""),
        )

    def _eta_s(self, model: str, started_s: float | None) -> float | None:
        typical_s = self._typical_s.get(model)
        if typical_s is None or started_s is None:
            return None
        return max(0.0, typical_s - (time.monotonic() - started_s))

    def _observe(self, model: str, took_s: float) -> None:
        previous_s = self._typical_s.get(model)
        self._typical_s[model] = took_s if previous_s is None else 0.8 * previous_s + 0.2 * took_s
