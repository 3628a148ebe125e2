"""Running the jobs this replica owns — claimed from the queue, or adopted from a replica that
is gone (`adopt`: resumed, re-queued or failed) — each through the backend's run (or the resume
of a provider task), its progress, its output kept, and its end committed, with its refund and
webhook event, before any watcher hears of it.

Every write is fenced by ownership (store.py): when it is refused (`LeaseLost`: this replica's
lease lapsed and another replica took the job over), the run stops here without writing and
the job goes on there. A provider task created just before ownership was lost is cancelled,
best effort: the new owner never submits it again (store.py, SUBMISSION_INTERRUPTED).

While the store is out of reach (`StoreUnavailable`: the database restarting), a job's writes
wait and are tried again until it is back — a result already made is never thrown away for
want of a database — unless the replica stops meanwhile; then another replica takes the job
over from what was committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

from clipmesh.generator import metrics
from clipmesh.generator.backends.base import Backend, GenerationFailed, TaskContext
from clipmesh.generator.jobs import GenerationResult, Job, JobError, JobState, state_name
from clipmesh.generator.ledger import JobLedger
from clipmesh.generator.live import LiveJob
from clipmesh.generator.store import CHANNEL, LeaseLost, StoredJob
from clipmesh.generator.webhooks import webhook_event
from clipmesh.runtime.database import StoreUnavailable
from clipmesh.runtime.notifications import Notifications

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_WAIT_S = (0.2, 0.5, 1.0, 2.0)


async def durably(write: Callable[[], Awaitable[T]], what: str) -> T:
    """`write()`, tried again while the store is out of reach."""
    for attempt in itertools.count():
        try:
            return await write()
        except StoreUnavailable as exc:
            if attempt == 0:
                log.warning("%s waits for the store: %s", what, exc)
            await asyncio.sleep(RETRY_WAIT_S[min(attempt, len(RETRY_WAIT_S) - 1)])
    raise AssertionError("unreachable")


PROGRESS_INTERVAL_S = 0.2
"""Progress of one job is published at most this often (a state change always goes out)."""


class JobRunner:
    """Runs the jobs this replica claimed or took over, each in its own task.

    Args:
        data_dir: The gateway's data directory (scratch space per job).
        ledger: Where jobs are committed.
        owner: This replica's id (every write is fenced by it).
        live: The jobs this replica runs, by id (a job leaves it when it ends here).
        notifications: Where progress is published.
        finished: Told when a job's run is over here, with its run time when it succeeded.
    """

    def __init__(
        self,
        data_dir: Path,
        ledger: JobLedger,
        *,
        owner: str,
        live: dict[str, LiveJob],
        notifications: Callable[[], Notifications],
        finished: Callable[[LiveJob, float | None], None],
    ) -> None:
        self._data_dir = data_dir
        self._ledger = ledger
        self._owner = owner
        self._live = live
        self._notifications = notifications
        self._finished = finished
        self._tasks: set[asyncio.Task] = set()

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stops running work without ending it: the store keeps it, and another replica (or
        the next start) takes it over. A billable submission in flight is let land first (up
        to `grace_s`), so that its task id is recorded and the job can be resumed."""
        deadline = time.monotonic() + grace_s
        while any(live.submitting for live in self._live.values()):
            if time.monotonic() > deadline:
                log.warning("stopping with a provider submission still in flight")
                break
            await asyncio.sleep(0.05)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def start_claimed(self, stored: StoredJob, backends: dict[str, Backend]) -> None:
        """Runs a job this replica just claimed."""
        backend = backends[stored.job.backend]
        metrics.QUEUE_SECONDS.labels(backend.name).observe(
            max(0.0, time.time() - stored.job.create_time_s)
        )
        self.start(LiveJob(stored.job, backend))

    async def adopt(self, stored: StoredJob, backends: dict[str, Backend]) -> None:
        """A running job whose replica is gone, now this one's: resumed when its provider task
        is known, failed when its submission may or may not have reached the provider, else
        (a local render cut short) queued again."""
        job = stored.job
        if job.job_id in self._live:
            return  # this replica runs it already (its own lease had lapsed a moment)
        backend = backends.get(job.backend)
        try:
            if backend is None:
                job.error = JobError(
                    "BACKEND_UNAVAILABLE", f"backend {job.backend!r} is not configured any more"
                )
                await end_job(self._ledger, job, JobState.FAILED, self._owner, "failed")
            elif job.provider_task_id:
                log.info("resuming job %s: polling provider task", job.job_id)
                live = LiveJob(job, backend)
                if stored.cancel_requested:
                    live.cancel_requested.set()
                self.start(live, resume_task_id=job.provider_task_id)
            elif stored.submitting and backend.remote:
                # Stopped between sending a billable submission and recording its task id:
                # resubmitting could bill twice, so the job fails and says why.
                job.error = JobError(
                    "SUBMISSION_INTERRUPTED",
                    "the gateway stopped while submitting to the provider; it may or may not "
                    "have the task, so it was not resubmitted (submit again to retry)",
                )
                await end_job(
                    self._ledger,
                    job,
                    JobState.FAILED,
                    self._owner,
                    "failed",
                    orphaned_task_s=backend.orphaned_task_s,
                )
            else:  # nothing was billed: it waits for its turn again
                await self._ledger.requeue(job, self._owner)
        except LeaseLost:
            pass  # another replica adopted it first

    def start(self, live: LiveJob, *, resume_task_id: str = "") -> None:
        """Runs a job this replica owns (RUNNING in the store already)."""
        self._live[live.job.job_id] = live
        live.job.state = JobState.RUNNING
        live.job.queue_position = 0
        task = asyncio.get_running_loop().create_task(self._run(live, resume_task_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, live: LiveJob, resume_task_id: str) -> None:
        job = live.job
        scratch = self._data_dir / "scratch" / job.job_id
        scratch.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            if live.cancel_requested.is_set():  # cancelled before the backend was called
                await self.end(live, JobState.CANCELLED, "cancelled before it started")
                return
            ctx = TaskContext(
                job_id=job.job_id,
                scratch_dir=scratch,
                report=partial(self._report, live),
                submitted=partial(self._submitted, live),
                cancel_requested=live.cancel_requested,
                about_to_submit=partial(self._about_to_submit, live),
            )
            await self._finish(live, ctx, resume_task_id)
        except asyncio.CancelledError:
            raise  # the replica is stopping: the job stays RUNNING in the store and resumes
        except LeaseLost:
            log.warning("job %s: another replica owns it now; stopping here", job.job_id)
        except Exception:
            log.exception("job %s failed unexpectedly", job.job_id)
            error = JobError("INTERNAL", "the gateway failed unexpectedly; see its log")
            with contextlib.suppress(LeaseLost):
                await self.end(live, JobState.FAILED, "failed", error=error)
        finally:
            live.submitting = False
            shutil.rmtree(scratch, ignore_errors=True)
            self._live.pop(job.job_id, None)
            live.ended.set()
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
        finally:
            live.submitting = False
        result = await durably(
            lambda: self._ledger.keep_output(job.spec, video), f"job {job.job_id}'s output"
        )
        job.actual_prompt = video.actual_prompt
        metrics.RESULT_SECONDS.labels(backend.name).observe(time.monotonic() - live.submitted_at)
        await self.end(live, JobState.SUCCEEDED, "succeeded", result=result)

    async def _report(
        self, live: LiveJob, fraction: float | None, eta_s: float | None, message: str
    ) -> None:
        if fraction is not None:
            live.job.progress = min(max(fraction, 0.0), 1.0)
        live.job.eta_s = -1.0 if eta_s is None else max(eta_s, 0.0)
        now = time.monotonic()
        if now - live.published_at < PROGRESS_INTERVAL_S and fraction not in (None, 1.0):
            return  # the next report carries it; watchers need not hear every frame
        live.published_at = now
        job = live.job
        note = {"k": "progress", "j": job.job_id, "s": job.state.value, "m": message}
        note |= {"p": round(job.progress, 4), "e": round(job.eta_s, 1)}
        await self._notifications().publish(CHANNEL, json.dumps(note))

    async def _about_to_submit(self, live: LiveJob) -> None:
        """Committed before the provider can hear of the job: from here on a crash leaves it
        SUBMISSION_INTERRUPTED rather than submitted twice."""
        if live.submitting:
            return  # a retried attempt: already committed
        live.submitting = True
        await durably(
            lambda: self._ledger.update(live.job, self._owner, submitting=True),
            f"job {live.job.job_id}",
        )

    async def _submitted(self, live: LiveJob, provider_task_id: str) -> None:
        live.job.provider_task_id = provider_task_id
        message = f"submitted to {live.backend.name} as task {provider_task_id}"
        try:
            await durably(
                lambda: self._ledger.update(live.job, self._owner, message=message),
                f"job {live.job.job_id}'s task id",
            )
        except LeaseLost:
            # Taken over while the submission was in flight: the new owner failed the job
            # rather than submit it again; this task would be billed for nothing.
            cancelled = await live.backend.cancel(provider_task_id)
            log.warning(
                "job %s: lost while submitting; provider task %s %s",
                live.job.job_id,
                provider_task_id,
                "cancelled" if cancelled else "could not be cancelled",
            )
            raise
        finally:
            live.submitting = False

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
        job.eta_s = 0.0 if state == JobState.SUCCEEDED else -1.0
        if error is not None:
            job.error = error
        if result is not None:
            job.result = result
            job.progress = 1.0
        await durably(
            lambda: end_job(self._ledger, job, state, self._owner, message),
            f"job {job.job_id}'s end",
        )


async def end_job(
    ledger: JobLedger,
    job: Job,
    state: JobState,
    owner: str | None,
    message: str,
    *,
    orphaned_task_s: float = 0.0,
) -> None:
    """Commits `job`'s end as `owner` (None: a queued job nobody runs) with its refund and its
    webhook event; raises LeaseLost when `owner` does not hold it (any more)."""
    job.state = state
    job.end_time_s = time.time()
    # A provider bills the seconds it made; a job that made none costs its caller nothing,
    # unless its submission may have reached the provider unrecorded.
    interrupted = job.error is not None and job.error.reason == "SUBMISSION_INTERRUPTED"
    refund = state != JobState.SUCCEEDED and not interrupted
    await ledger.end(
        job,
        owner,
        refund=refund,
        event=webhook_event(job),
        message=message,
        orphaned_task_s=orphaned_task_s if interrupted else 0.0,
    )
    metrics.JOBS_ENDED.labels(state_name(state), job.backend).inc()
