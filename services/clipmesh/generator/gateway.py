"""The gateway's core: a job from submission to its end, and its events to every watcher.

A job's life: Generate validates the spec against its backend, answers from the content cache
or an earlier job with the same idempotency key when it can, else stores the job QUEUED. The
backend's queue (`queues.py`) starts it when the provider's limit allows; a running job
reports progress through its `TaskContext`; it ends SUCCEEDED (its video moved into the output
store and the cache), FAILED (a reason code) or CANCELLED. Every state change is committed
(`ledger.py`) before watchers hear of it, so after a crash queued jobs stay queued and
provider tasks are polled again, never submitted twice.

Watchers (the Generate stream, WatchJob) follow a `LiveJob` (live.py); a disconnecting
watcher never stops its job.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

from clipmesh.generator import metrics
from clipmesh.generator.admission import Admission, GatewayLimits
from clipmesh.generator.backends.base import Backend, GenerationFailed, TaskContext
from clipmesh.generator.jobs import (
    CancelOutcome,
    GenerationResult,
    GenerationSpec,
    Job,
    JobError,
    JobEvent,
    JobState,
    job_event,
    request_digest,
    state_name,
)
from clipmesh.generator.ledger import JobLedger
from clipmesh.generator.live import LiveJob
from clipmesh.generator.queues import BackendQueues
from clipmesh.runtime.errors import FailedPrecondition, InvalidArgument, NotFound

log = logging.getLogger(__name__)


class Gateway:
    """Jobs across backends; every public method is a coroutine on the server's loop."""

    def __init__(
        self,
        data_dir: Path,
        backends: dict[str, Backend],
        *,
        default_backend: str,
        unavailable: dict[str, str] | None = None,
        limits: GatewayLimits | None = None,
        cache_memory_entries: int = 1024,
        cache_max_bytes: int = 2 << 30,
    ) -> None:
        self._data_dir = data_dir
        self._backends = backends
        self._admission = Admission(
            backends,
            default_backend=default_backend,
            unavailable=unavailable or {},
            limits=limits or GatewayLimits(),
        )
        self._ledger = JobLedger(
            data_dir,
            cache_memory_entries=cache_memory_entries,
            cache_max_bytes=cache_max_bytes,
        )
        self._live: dict[str, LiveJob] = {}
        self._queues = BackendQueues(backends, self._start)
        self._tasks: set[asyncio.Task] = set()
        self._admit = asyncio.Lock()

    # Lifecycle.

    async def start(self) -> None:
        """Opens the store and picks up every job a previous run left unfinished."""
        for stored in await self._ledger.open():
            await self._recover(stored.job, submitting=stored.submitting)
        for name in self._backends:
            self._queues.dispatch(name)

    async def stop(self) -> None:
        """Stops running work without ending it: the store keeps it for the next start."""
        self._queues.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for backend in self._backends.values():
            await backend.close()
        await self._ledger.close()

    async def _recover(self, job: Job, *, submitting: bool) -> None:
        backend = self._backends.get(job.backend)
        live = LiveJob(job, backend) if backend else None
        if live is None:
            job.error = JobError(
                "BACKEND_UNAVAILABLE", f"backend {job.backend!r} is not configured any more"
            )
            await self._end_stored(job, JobState.FAILED)
        elif job.state == JobState.QUEUED:
            self._enqueue(live)
        elif job.provider_task_id:
            log.info("resuming job %s: polling provider task", job.job_id)
            self._queues.running(live)
            self._start(live, resume_task_id=job.provider_task_id)
        elif submitting and backend.remote:
            # The gateway stopped between sending a billable submission and recording its
            # task id: resubmitting could bill twice, so the job fails and says why.
            job.error = JobError(
                "SUBMISSION_INTERRUPTED",
                "the gateway stopped while submitting to the provider; it may or may not have "
                "the task, so it was not resubmitted (submit again to retry)",
            )
            await self._end_stored(job, JobState.FAILED)
        else:  # a local render cut short: nothing was billed, it simply runs again
            job.state = JobState.QUEUED
            job.start_time_s = 0.0
            await self._ledger.update(job)
            self._enqueue(live)

    # Submitting and watching.

    async def submit(
        self, spec: GenerationSpec, *, idempotency_key: str, caller: str
    ) -> AsyncIterator[JobEvent]:
        """Admits a job (or finds the one with the same idempotency key, or answers from the
        cache); returns its events: the job as admitted (QUEUED, with its position), then each
        change until it ends."""
        backend = self._admission.backend(spec.backend)
        filled = backend.validate(spec)
        request_sha256 = request_digest(filled)
        if len(idempotency_key) > 200:
            raise InvalidArgument(
                "idempotency_key is longer than 200 characters",
                field="idempotency_key",
                reason="BAD_IDEMPOTENCY_KEY",
            )
        async with self._admit:
            if idempotency_key:
                earlier = await self._ledger.by_idempotency_key(idempotency_key)
                if earlier is not None:
                    if earlier.request_sha256 != request_sha256:
                        raise FailedPrecondition(
                            f"idempotency_key {idempotency_key!r} was used for a different "
                            f"request (job {earlier.job.job_id}); use a new key for a new request",
                            reason="IDEMPOTENCY_KEY_REUSED",
                            metadata={"job_id": earlier.job.job_id},
                        )
                    return self.events(earlier.job.job_id)
            self._admission.check(
                caller,
                queued=self._queues.waiting(),
                active=sum(1 for live in self._live.values() if live.job.caller == caller),
            )
            job = Job(
                job_id=uuid.uuid4().hex,
                idempotency_key=idempotency_key,
                backend=backend.name,
                spec=filled,
                state=JobState.QUEUED,
                orig_prompt=filled.prompt,
                caller=caller,
                eta_s=-1,
                create_time_s=time.time(),
            )
            cached = await self._ledger.cached(filled)
            if cached is not None:
                return self.events(await self._answer_from_cache(job, cached, request_sha256))
            await self._ledger.insert(job, request_sha256=request_sha256)
            live = LiveJob(job, backend)
            self._enqueue(live)
            # Subscribed and snapshotted before the job can start, so the caller's first event
            # is QUEUED with its position, whatever happens next.
            events = live.follow(f"queued for {backend.name}")
            self._queues.dispatch(backend.name)
            return events

    async def _answer_from_cache(self, job: Job, cached: GenerationResult, request_sha: str) -> str:
        job.state = JobState.SUCCEEDED
        job.progress, job.eta_s = 1.0, 0.0
        job.result = dataclasses.replace(cached, cache_hit=True)
        job.start_time_s = job.create_time_s
        job.end_time_s = time.time()
        await self._ledger.insert(job, request_sha256=request_sha)
        metrics.JOBS_ENDED.labels("succeeded", job.backend).inc()
        return job.job_id

    async def events(self, job_id: str) -> AsyncIterator[JobEvent]:
        """The job as it stands, then each change until it ends."""
        live = self._live.get(job_id)
        if live is None:
            job = await self.get(job_id)
            yield job_event(job, f"job {state_name(job.state)}")
            return
        async for event in live.follow(f"job {state_name(live.job.state)}"):
            yield event

    async def get(self, job_id: str) -> Job:
        live = self._live.get(job_id)
        if live is not None:
            return live.snapshot()
        stored = await self._ledger.get(job_id) if job_id else None
        if stored is None:
            raise NotFound(f"no job {job_id!r}", reason="JOB_NOT_FOUND")
        return stored.job

    async def list_jobs(
        self, *, states: tuple[JobState, ...], backend: str, before_seq: int | None, limit: int
    ) -> tuple[list[Job], int | None]:
        """A page of jobs, newest first, and the cursor of the next page (None at the end)."""
        rows = await self._ledger.page(
            states=states, backend=backend, before_seq=before_seq, limit=limit
        )
        jobs = [
            self._live[row.job.job_id].snapshot() if row.job.job_id in self._live else row.job
            for row in rows
        ]
        return jobs, (rows[-1].seq if len(rows) == limit else None)

    # Cancelling and deleting.

    async def cancel(self, job_id: str) -> tuple[Job, CancelOutcome]:
        """Cancels what can be; returns the job and what the cancel achieved."""
        live = self._live.get(job_id)
        if live is None:
            return await self.get(job_id), CancelOutcome.NOT_CANCELLABLE
        if live.job.state == JobState.QUEUED:
            self._queues.remove(live)
            await self._end(live, JobState.CANCELLED, "cancelled while queued")
            return live.snapshot(), CancelOutcome.CANCELLED
        live.cancel_requested.set()
        live.publish("cancel requested")
        # A backend that stops promptly (a local render) ends the job within a moment; say
        # CANCELLED then, else REQUESTED and let the stream tell how it ends.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(live.ended.wait(), 2.0 if live.backend.cancels_running else 0.5)
        if live.job.state == JobState.CANCELLED:
            return live.snapshot(), CancelOutcome.CANCELLED
        return live.snapshot(), CancelOutcome.REQUESTED

    async def delete_output(self, job_id: str) -> tuple[Job, bool]:
        """Deletes a succeeded job's video; returns the job and whether the file went."""
        job = await self.get(job_id)
        if job.state != JobState.SUCCEEDED:
            raise FailedPrecondition(
                f"job {job_id} is {state_name(job.state)}; only a succeeded job has an output",
                reason="NO_OUTPUT",
            )
        if job.output_deleted:
            return job, False
        job.output_deleted = True
        return job, await self._ledger.delete_output(job)

    def output_chunks(self, job: Job) -> Any:
        """The bytes of a succeeded job's video (iterated on the store's thread by the caller)."""
        if job.state != JobState.SUCCEEDED or job.output_deleted or job.result is None:
            raise FailedPrecondition(
                f"job {job.job_id} has no output to download", reason="NO_OUTPUT"
            )
        if not self._ledger.has_output(job.result.sha256):
            raise NotFound(f"the output of job {job.job_id} is gone", reason="OUTPUT_GONE")
        return self._ledger.output_chunks(job.result.sha256)

    # Jobs in the queues and running.

    def _enqueue(self, live: LiveJob) -> None:
        self._live[live.job.job_id] = live
        self._queues.add(live)

    def _start(self, live: LiveJob, *, resume_task_id: str = "") -> None:
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

    # Running one job.

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
                await self._end(live, JobState.CANCELLED, "cancelled before it started")
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
            await self._end(live, JobState.FAILED, "failed", error=error)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            succeeded = live.job.state == JobState.SUCCEEDED
            self._queues.finished(
                live, succeeded_after_s=time.monotonic() - started if succeeded else None
            )

    async def _finish(self, live: LiveJob, ctx: TaskContext, resume_task_id: str) -> None:
        job, backend = live.job, live.backend
        try:
            if resume_task_id:
                video = await backend.resume(job.spec, resume_task_id, ctx)
            else:
                video = await backend.run(job.spec, ctx)
        except GenerationFailed as failure:
            if failure.reason == "CANCELLED":
                await self._end(live, JobState.CANCELLED, failure.message)
                return
            error = JobError(failure.reason, failure.message, failure.provider_code)
            await self._end(live, JobState.FAILED, "failed", error=error)
            return
        result = await self._ledger.keep_output(job.spec, video)
        job.actual_prompt = video.actual_prompt
        metrics.RESULT_SECONDS.labels(backend.name).observe(time.monotonic() - live.submitted_at)
        await self._end(live, JobState.SUCCEEDED, "succeeded", result=result)

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

    async def _end(
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
        await self._end_stored(job, state)
        metrics.JOBS.labels(previous, job.backend).dec()
        self._live.pop(job.job_id, None)
        live.publish(message)
        live.ended.set()

    async def _end_stored(self, job: Job, state: JobState) -> None:
        job.state = state
        job.end_time_s = time.time()
        await self._ledger.update(job)
        metrics.JOBS_ENDED.labels(state_name(state), job.backend).inc()
