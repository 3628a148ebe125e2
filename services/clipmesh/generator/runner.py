"""Running one job: the backend's run (or the resume of a provider task), its progress, its
output kept, and its end committed — with its refund and webhook event — before any watcher
hears of it."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from clipmesh.generator import metrics
from clipmesh.generator.backends.base import GenerationFailed, TaskContext
from clipmesh.generator.jobs import GenerationResult, Job, JobError, JobState, state_name
from clipmesh.generator.ledger import JobLedger
from clipmesh.generator.live import LiveJob
from clipmesh.generator.webhooks import webhook_event

log = logging.getLogger(__name__)


class JobRunner:
    """Runs the jobs the queues hand over, each in its own task.

    Args:
        data_dir: The gateway's data directory (scratch space per job).
        ledger: Where jobs are committed.
        live: The gateway's jobs in flight by id (a job leaves it when it ends).
        finished: Told when a job's run is over, with its run time when it succeeded (the
            queues start the next one).
    """

    def __init__(
        self,
        data_dir: Path,
        ledger: JobLedger,
        live: dict[str, LiveJob],
        finished: Callable[[LiveJob, float | None], None],
    ) -> None:
        self._data_dir = data_dir
        self._ledger = ledger
        self._live = live
        self._finished = finished
        self._tasks: set[asyncio.Task] = set()

    async def stop(self) -> None:
        """Stops running work without ending it: the store keeps it for the next start."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def start(self, live: LiveJob, *, resume_task_id: str = "") -> None:
        """Runs a job the queues handed over (or one resumed at start)."""
        self._live[live.job.job_id] = live
        # RUNNING from here on (committed by `_run`), so a cancel now reaches the backend's
        # cancel flag instead of a queue the job has left.
        live.job.state = JobState.RUNNING
        live.job.queue_position = 0
        metrics.JOBS.labels("running", live.job.backend).inc()
        task = asyncio.get_running_loop().create_task(self._run(live, resume_task_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, live: LiveJob, resume_task_id: str) -> None:
        job, backend = live.job, live.backend
        scratch = self._data_dir / "scratch" / job.job_id
        scratch.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            if not resume_task_id:
                job.start_time_s = time.time()
                await self._ledger.update(job, submitting=backend.remote)
                live.publish(f"running on {backend.name}")
            if live.cancel_requested.is_set():  # cancelled before the backend was called
                await self.end(live, JobState.CANCELLED, "cancelled before it started")
                return
            ctx = TaskContext(
                job_id=job.job_id,
                scratch_dir=scratch,
                report=partial(self._report, live),
                submitted=partial(self._submitted, live),
                cancel_requested=live.cancel_requested,
            )
            await self._finish(live, ctx, resume_task_id)
        except asyncio.CancelledError:
            raise  # the gateway is stopping: the job stays RUNNING in the store and resumes
        except Exception:
            log.exception("job %s failed unexpectedly", job.job_id)
            error = JobError("INTERNAL", "the gateway failed unexpectedly; see its log")
            await self.end(live, JobState.FAILED, "failed", error=error)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            succeeded = live.job.state == JobState.SUCCEEDED
            self._finished(live, time.monotonic() - started if succeeded else None)

    async def _finish(self, live: LiveJob, ctx: TaskContext, resume_task_id: str) -> None:
        job, backend = live.job, live.backend
        try:
            if resume_task_id:
                video = await backend.resume(job.spec, resume_task_id, ctx)
            else:
                video = await backend.run(job.spec, ctx)
        except GenerationFailed as failure:
            if failure.reason == "CANCELLED":
                await self.end(live, JobState.CANCELLED, failure.message)
                return
            error = JobError(failure.reason, failure.message, failure.provider_code)
            await self.end(live, JobState.FAILED, "failed", error=error)
            return
        result = await self._ledger.keep_output(job.spec, video)
        job.actual_prompt = video.actual_prompt
        metrics.RESULT_SECONDS.labels(backend.name).observe(time.monotonic() - live.submitted_at)
        await self.end(live, JobState.SUCCEEDED, "succeeded", result=result)

    async def _report(
        self, live: LiveJob, fraction: float | None, eta_s: float | None, message: str
    ) -> None:
        if fraction is not None:
            live.job.progress = min(max(fraction, 0.0), 1.0)
        live.job.eta_s = -1.0 if eta_s is None else max(eta_s, 0.0)
        live.publish(message)

    async def _submitted(self, live: LiveJob, provider_task_id: str) -> None:
        live.job.provider_task_id = provider_task_id
        await self._ledger.update(live.job)
        live.publish(f"submitted to {live.backend.name} as task {provider_task_id}")

    async def end(
        self,
        live: LiveJob,
        state: JobState,
        message: str,
        *,
        error: JobError | None = None,
        result: GenerationResult | None = None,
    ) -> None:
        job = live.job
        previous = state_name(job.state)
        job.state = state
        job.eta_s = 0.0 if state == JobState.SUCCEEDED else -1.0
        if error is not None:
            job.error = error
        if result is not None:
            job.result = result
            job.progress = 1.0
        await self.end_stored(job, state)
        metrics.JOBS.labels(previous, job.backend).dec()
        self._live.pop(job.job_id, None)
        live.publish(message)
        live.ended.set()

    async def end_stored(self, job: Job, state: JobState) -> None:
        job.state = state
        job.end_time_s = time.time()
        # A provider bills the seconds it made; a job that made none costs its caller nothing,
        # unless its submission may have reached the provider unrecorded.
        interrupted = job.error is not None and job.error.reason == "SUBMISSION_INTERRUPTED"
        refund = state != JobState.SUCCEEDED and not interrupted
        await self._ledger.end(job, refund=refund, event=webhook_event(job))
        metrics.JOBS_ENDED.labels(state_name(state), job.backend).inc()
