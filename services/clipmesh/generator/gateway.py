"""The gateway's core: a job from submission to its end, and its events to every watcher.

A job's life: Generate validates the spec against its backend, the caller's quotas and its
webhook (`admission.py`), answers from the content cache or an earlier job of the same caller
with the same idempotency key when it can, else stores the job QUEUED and charges its caller.
The backend's queue (`queues.py`) starts it when the provider's limit allows and the runner
(`runner.py`) runs it; it ends SUCCEEDED (its video moved into the output store and the cache),
FAILED (a reason code) or CANCELLED. Every state change is committed (`ledger.py`) before
watchers hear of it, so after a crash queued jobs stay queued and provider tasks are polled
again, never submitted twice; a job's end commits with its refund and its webhook event, which
the dispatcher (`webhooks.py`) delivers.

A job belongs to the caller that submitted it (`runtime.access.Principal`): another caller,
unless admin, is told it does not exist. Watchers (the Generate stream, WatchJob) follow a
`LiveJob` (live.py); a disconnecting watcher never stops its job.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from clipmesh.generator import metrics
from clipmesh.generator.admission import Admission, GatewayLimits
from clipmesh.generator.backends.base import Backend
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
from clipmesh.generator.runner import JobRunner
from clipmesh.generator.webhooks import WebhookDispatcher, WebhookSettings, webhook_event
from clipmesh.runtime.access import PolicySource, Principal
from clipmesh.runtime.errors import FailedPrecondition, InvalidArgument, NotFound
from clipmesh.runtime.policy import Quota
from clipmesh.runtime.usage import QuotaUse

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
        policies: PolicySource | None = None,
        webhook_settings: WebhookSettings | None = None,
        cache_memory_entries: int = 1024,
        cache_max_bytes: int = 2 << 30,
    ) -> None:
        self._data_dir = data_dir
        self._backends = backends
        self._policies = policies or PolicySource()
        self._admission = Admission(
            backends,
            default_backend=default_backend,
            unavailable=unavailable or {},
            limits=limits or GatewayLimits(),
            policies=self._policies,
        )
        self._ledger = JobLedger(
            data_dir,
            cache_memory_entries=cache_memory_entries,
            cache_max_bytes=cache_max_bytes,
        )
        self._webhooks = WebhookDispatcher(
            self._ledger, self._policies, webhook_settings or WebhookSettings()
        )
        self._live: dict[str, LiveJob] = {}
        self._runner = JobRunner(data_dir, self._ledger, self._live, self._run_finished)
        self._queues = BackendQueues(backends, self._runner.start)
        self._admit = asyncio.Lock()

    # Lifecycle.

    async def start(self) -> None:
        """Opens the store and picks up every job a previous run left unfinished."""
        for stored in await self._ledger.open():
            await self._recover(stored.job, submitting=stored.submitting)
        for name in self._backends:
            self._queues.dispatch(name)
        self._webhooks.start()

    async def stop(self) -> None:
        """Stops running work without ending it: the store keeps it for the next start."""
        self._queues.stop()
        await self._webhooks.stop()
        await self._runner.stop()
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
            await self._runner.end_stored(job, JobState.FAILED)
        elif job.state == JobState.QUEUED:
            self._enqueue(live)
        elif job.provider_task_id:
            log.info("resuming job %s: polling provider task", job.job_id)
            self._queues.running(live)
            self._runner.start(live, resume_task_id=job.provider_task_id)
        elif submitting and backend.remote:
            # The gateway stopped between sending a billable submission and recording its
            # task id: resubmitting could bill twice, so the job fails and says why.
            job.error = JobError(
                "SUBMISSION_INTERRUPTED",
                "the gateway stopped while submitting to the provider; it may or may not have "
                "the task, so it was not resubmitted (submit again to retry)",
            )
            await self._runner.end_stored(job, JobState.FAILED)
        else:  # a local render cut short: nothing was billed, it simply runs again
            job.state = JobState.QUEUED
            job.start_time_s = 0.0
            await self._ledger.update(job)
            self._enqueue(live)

    # Submitting and watching.

    async def submit(
        self,
        spec: GenerationSpec,
        *,
        idempotency_key: str,
        principal: Principal,
        webhook_url: str = "",
    ) -> AsyncIterator[JobEvent]:
        """Admits a job for `principal` (or finds the one it submitted under the same
        idempotency key, or answers from the cache); returns its events: the job as admitted
        (QUEUED, with its position), then each change until it ends."""
        backend = self._admission.backend(spec.backend)
        filled = backend.validate(spec)
        webhook_url = self._admission.webhook(principal, webhook_url)
        request_sha256 = request_digest(filled, webhook_url)
        caller = principal.caller
        if len(idempotency_key) > 200:
            raise InvalidArgument(
                "idempotency_key is longer than 200 characters",
                field="idempotency_key",
                reason="BAD_IDEMPOTENCY_KEY",
            )
        async with self._admit:
            if idempotency_key:
                earlier = await self._ledger.by_idempotency_key(caller, idempotency_key)
                if earlier is not None:
                    if earlier.request_sha256 != request_sha256:
                        raise FailedPrecondition(
                            f"idempotency_key {idempotency_key!r} was used for a different "
                            f"request (job {earlier.job.job_id}); use a new key for a new request",
                            reason="IDEMPOTENCY_KEY_REUSED",
                            metadata={"job_id": earlier.job.job_id},
                        )
                    return self.events(earlier.job.job_id, principal)
            self._admission.check(
                principal, queued=self._queues.waiting(), active=self._active(caller)
            )
            job = Job(
                job_id=uuid.uuid4().hex,
                idempotency_key=idempotency_key,
                backend=backend.name,
                spec=filled,
                state=JobState.QUEUED,
                orig_prompt=filled.prompt,
                caller=caller,
                webhook_url=webhook_url,
                eta_s=-1,
                create_time_s=time.time(),
            )
            cached = await self._ledger.cached(filled)
            if cached is not None:
                job_id = await self._answer_from_cache(job, cached, request_sha256)
                return self.events(job_id, principal)
            charge = self._admission.charge(principal, backend, filled)
            await self._ledger.insert(job, request_sha256=request_sha256, charge=charge)
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
        if job.webhook_url:  # answered at once, but it ended all the same
            await self._ledger.end(job, refund=False, event=webhook_event(job))
        return job.job_id

    async def events(self, job_id: str, principal: Principal) -> AsyncIterator[JobEvent]:
        """The job as it stands, then each change until it ends."""
        job = await self.get(job_id, principal)  # NOT_FOUND for another caller's job
        live = self._live.get(job_id)
        if live is None:
            yield job_event(job, f"job {state_name(job.state)}")
            return
        async for event in live.follow(f"job {state_name(live.job.state)}"):
            yield event

    async def get(self, job_id: str, principal: Principal) -> Job:
        """The job, if `principal` may see it: another caller's job is NOT_FOUND, exactly as
        one that does not exist, so ids cannot be probed."""
        live = self._live.get(job_id)
        if live is not None:
            job = live.snapshot()
        else:
            stored = await self._ledger.get(job_id) if job_id else None
            job = stored.job if stored is not None else None
        if job is None or not principal.may_see(job.caller):
            raise NotFound(f"no job {job_id!r}", reason="JOB_NOT_FOUND")
        return job

    async def list_jobs(
        self,
        principal: Principal,
        *,
        states: tuple[JobState, ...],
        backend: str,
        before_seq: int | None,
        limit: int,
    ) -> tuple[list[Job], int | None]:
        """A page of the jobs `principal` may see, newest first, and the cursor of the next
        page (None at the end)."""
        rows = await self._ledger.page(
            states=states,
            backend=backend,
            before_seq=before_seq,
            limit=limit,
            caller=principal.owner_filter,
        )
        jobs = [
            self._live[row.job.job_id].snapshot() if row.job.job_id in self._live else row.job
            for row in rows
        ]
        return jobs, (rows[-1].seq if len(rows) == limit else None)

    # Cancelling and deleting.

    async def cancel(self, job_id: str, principal: Principal) -> tuple[Job, CancelOutcome]:
        """Cancels what can be; returns the job and what the cancel achieved."""
        job = await self.get(job_id, principal)
        live = self._live.get(job_id)
        if live is None:
            return job, CancelOutcome.NOT_CANCELLABLE
        if live.job.state == JobState.QUEUED:
            self._queues.remove(live)
            await self._runner.end(live, JobState.CANCELLED, "cancelled while queued")
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

    async def delete_output(self, job_id: str, principal: Principal) -> tuple[Job, bool]:
        """Deletes a succeeded job's video; returns the job and whether the file went."""
        job = await self.get(job_id, principal)
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

    async def usage(self, principal: Principal) -> list[QuotaUse]:
        """The caller's generation quotas as they stand."""
        seconds = await self._ledger.provider_seconds_used(principal.policy)
        return [seconds, self._admission.concurrent_use(principal, self._active(principal.caller))]

    def quota_rows(self) -> Iterator[tuple[str, Quota, float, float | None]]:
        """(caller, quota, used, limit) of every caller the policy names, for the metrics
        (called from the metrics thread: it reads a snapshot of the jobs in flight)."""
        policy = self._policies.current()
        if not policy.enforced:
            return
        today = self._ledger.usage_today()
        active = Counter(live.job.caller for live in list(self._live.values()))
        seconds = Quota.PROVIDER_VIDEO_SECONDS_PER_DAY
        for name, caller in policy.callers.items():
            yield name, seconds, today.get((name, seconds.value), 0.0), caller.limit(seconds)
            limit = self._admission.concurrent_limit(Principal(name, caller, enforced=True))
            yield name, Quota.CONCURRENT_JOBS, active[name], limit

    def _active(self, caller: str) -> int:
        """Jobs of `caller` queued or running."""
        return sum(1 for live in self._live.values() if live.job.caller == caller)

    # Jobs in the queues and running.

    def _enqueue(self, live: LiveJob) -> None:
        self._live[live.job.job_id] = live
        self._queues.add(live)

    def _run_finished(self, live: LiveJob, succeeded_after_s: float | None) -> None:
        self._queues.finished(live, succeeded_after_s=succeeded_after_s)
