"""The gateway's core: a job from submission to its end, and its events to every watcher.

A job's life: Generate validates the spec against its backend, the caller's quotas and its
webhook (`admission.py`), answers from the content cache or an earlier job of the same caller
with the same idempotency key when it can, else stores the job QUEUED and charges its caller.
A replica claims it when the backend's limits allow (`replica.py`, on every replica sharing
the store) and its runner (`runner.py`) runs it; it ends SUCCEEDED (its video moved into the
output store and the cache), FAILED (a reason code) or CANCELLED. Every state change is
committed (`ledger.py`, `store.py`) before watchers hear of it, so after a crash queued jobs
stay queued and provider tasks are polled again, never submitted twice; a job's end commits
with its refund and its webhook event, which the dispatcher (`webhooks.py`) delivers.

Several replicas may share one PostgreSQL store: any of them admits, lists, cancels and
streams any job (watchers follow the store's notifications, `watches.py`), one of them runs
it under a lease, and another takes it over if that one dies.

A job belongs to the caller that submitted it (`runtime.access.Principal`): another caller,
unless admin, is told it does not exist. A disconnecting watcher never stops its job.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipmesh.generator import metrics
from clipmesh.generator.admission import Admission, GatewayLimits
from clipmesh.generator.backends.base import Backend
from clipmesh.generator.jobs import (
    ENDED_STATES,
    CancelOutcome,
    GenerationResult,
    GenerationSpec,
    Job,
    JobEvent,
    JobState,
    job_event,
    request_digest,
    state_name,
)
from clipmesh.generator.ledger import CachedOutputGone, JobLedger
from clipmesh.generator.live import LiveJob
from clipmesh.generator.queues import QueueEstimates
from clipmesh.generator.ratelimit import SharedSubmissionRate
from clipmesh.generator.replica import ReplicaLoop
from clipmesh.generator.runner import JobRunner, end_job
from clipmesh.generator.store import CHANNEL, ClaimRules, LeaseLost, StoredJob
from clipmesh.generator.watches import JobWatches
from clipmesh.generator.webhooks import WebhookDispatcher, WebhookSettings, webhook_event
from clipmesh.runtime.access import PolicySource, Principal
from clipmesh.runtime.errors import FailedPrecondition, InvalidArgument, NotFound
from clipmesh.runtime.leases import new_replica_id
from clipmesh.runtime.policy import Quota
from clipmesh.runtime.postgres import DatabaseTarget
from clipmesh.runtime.usage import QuotaUse

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GatewayStorage:
    """Where the gateway keeps its state, and how its replicas share the work.

    Attributes:
        target: A PostgreSQL database shared by replicas; None for SQLite in the data dir.
        outputs_dir: Where videos are kept (None: DATA_DIR/outputs); shared by replicas.
        pool_size: PostgreSQL connections.
        lease_s: How long a replica's claim on its jobs lasts without renewal.
        replica_id: This replica's identity (None: a new one per start).
        max_running_per_caller: Jobs of one caller running at once per backend (0: no bound);
            held across replicas.
        stop_grace_s: How long a stopping replica lets a provider submission in flight land.
    """

    target: DatabaseTarget | None = None
    outputs_dir: Path | None = None
    pool_size: int = 8
    lease_s: float = 15.0
    replica_id: str | None = None
    max_running_per_caller: int = 0
    stop_grace_s: float = 10.0


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
        storage: GatewayStorage | None = None,
    ) -> None:
        storage = storage or GatewayStorage()
        self._storage = storage
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
            outputs_dir=storage.outputs_dir,
            target=storage.target,
            pool_size=storage.pool_size,
            cache_memory_entries=cache_memory_entries,
            cache_max_bytes=cache_max_bytes,
        )
        self._webhooks = WebhookDispatcher(
            self._ledger, self._policies, webhook_settings or WebhookSettings()
        )
        self.replica_id = storage.replica_id or new_replica_id()
        self._live: dict[str, LiveJob] = {}
        self._estimates = QueueEstimates(backends)
        self._runner = JobRunner(
            data_dir,
            self._ledger,
            owner=self.replica_id,
            live=self._live,
            notifications=lambda: self._ledger.notifications,
            finished=self._run_finished,
        )
        self._watches = JobWatches(self._ledger, self._live, self._estimates.eta_s)
        rules = {
            name: ClaimRules(
                limit=backend.max_concurrent,
                per_replica=not backend.remote,  # a local render takes one of this host's cores
                per_caller=storage.max_running_per_caller,
            )
            for name, backend in backends.items()
        }
        self._replica = ReplicaLoop(
            self._ledger,
            rules,
            replica_id=self.replica_id,
            lease_s=storage.lease_s,
            start=lambda stored: self._runner.start_claimed(stored, self._backends),
            adopt=lambda stored: self._runner.adopt(stored, self._backends),
        )

    @property
    def replica(self) -> ReplicaLoop:
        """This replica's lease and claims (its health follows the store)."""
        return self._replica

    # Lifecycle.

    async def start(self) -> None:
        """Opens the store, joins the replicas, and resumes what is orphaned."""
        metrics.create_series(self._backends)
        await self._ledger.open()
        notifications = self._ledger.notifications
        notifications.subscribe(CHANNEL, self._heard)
        self._watches.attach(notifications)
        await notifications.start()
        for backend in self._backends.values():
            if backend.remote and backend.submissions_per_s:
                backend.use_submission_rate(
                    SharedSubmissionRate(
                        self._ledger, backend.name, self.replica_id, backend.submissions_per_s
                    )
                )
        await self._replica.start()
        self._webhooks.start()
        log.info(
            "replica %s on the %s job store (lease %g s)",
            self.replica_id,
            "shared PostgreSQL" if self._ledger.shared else "embedded SQLite",
            self._storage.lease_s,
        )

    async def stop(self) -> None:
        """Stops running work without ending it and hands it to the other replicas (or the
        next start): the store keeps every job."""
        self._replica.stop_claiming()
        await self._webhooks.stop()
        await self._runner.stop(self._storage.stop_grace_s)
        await self._replica.stop()
        await self._replica.release()
        self._watches.close()
        if self._ledger.notifications is not None:
            await self._ledger.notifications.stop()
        for backend in self._backends.values():
            await backend.close()
        await self._ledger.close()

    def _heard(self, payload: str) -> None:
        """Every store notification, parsed once (progress arrives many times a second) and
        handed to what it concerns: the claims, the watchers, and a cancel asked of any
        replica for a job this one runs."""
        try:
            note = json.loads(payload)
        except ValueError:
            log.warning("an unreadable job notification: %r", payload[:200])
            return
        self._replica.hear(note)
        self._watches.hear(note)
        live = self._live.get(note.get("j", ""))
        if note.get("k") == "cancel" and live is not None:
            live.cancel_requested.set()

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
        if len(idempotency_key) > 200:
            raise InvalidArgument(
                "idempotency_key is longer than 200 characters",
                field="idempotency_key",
                reason="BAD_IDEMPOTENCY_KEY",
            )
        job = Job(
            job_id=uuid.uuid4().hex,
            idempotency_key=idempotency_key,
            backend=backend.name,
            spec=filled,
            state=JobState.QUEUED,
            orig_prompt=filled.prompt,
            caller=principal.caller,
            webhook_url=webhook_url,
            eta_s=-1,
            create_time_s=time.time(),
        )

        def check(queued: int, active: int) -> None:
            self._admission.check(principal, queued=queued, active=active)

        cached = await self._ledger.cached(filled)
        if cached is not None:
            answered = self._answered_from_cache(job, cached)
            with contextlib.suppress(CachedOutputGone):  # evicted meanwhile: made anew
                earlier, _ = await self._ledger.submit(
                    answered,
                    request_sha256=request_sha256,
                    charge=None,
                    check=check,
                    event=webhook_event(answered),
                )
                if earlier is not None:
                    return self._follow_earlier(earlier, request_sha256, idempotency_key, principal)
                metrics.JOBS_ENDED.labels("succeeded", job.backend).inc()
                return self.events(answered.job_id, principal)
        # Subscribed before the insert commits, so the caller's first event is the job as
        # admitted (QUEUED, with its position), whatever happens next.
        events = self._watches.follow(job.job_id, job, f"queued for {backend.name}")
        try:
            earlier, position = await self._ledger.submit(
                job,
                request_sha256=request_sha256,
                charge=self._admission.charge(principal, backend, filled),
                check=check,
            )
        except BaseException:
            await events.aclose()
            raise
        if earlier is not None:
            await events.aclose()
            return self._follow_earlier(earlier, request_sha256, idempotency_key, principal)
        job.queue_position = position
        job.eta_s = self._estimates.eta_s(backend.name, position)
        self._replica.wake(backend.name)
        return events

    def _follow_earlier(
        self, earlier: StoredJob, request_sha256: str, key: str, principal: Principal
    ) -> AsyncIterator[JobEvent]:
        if earlier.request_sha256 != request_sha256:
            raise FailedPrecondition(
                f"idempotency_key {key!r} was used for a different request "
                f"(job {earlier.job.job_id}); use a new key for a new request",
                reason="IDEMPOTENCY_KEY_REUSED",
                metadata={"job_id": earlier.job.job_id},
            )
        return self.events(earlier.job.job_id, principal)

    @staticmethod
    def _answered_from_cache(job: Job, cached: GenerationResult) -> Job:
        answered = dataclasses.replace(job)
        answered.state = JobState.SUCCEEDED
        answered.progress, answered.eta_s = 1.0, 0.0
        answered.result = dataclasses.replace(cached, cache_hit=True)
        answered.start_time_s = answered.create_time_s
        answered.end_time_s = time.time()
        return answered

    async def events(self, job_id: str, principal: Principal) -> AsyncIterator[JobEvent]:
        """The job as it stands, then each change until it ends (on whichever replica runs
        it)."""
        job = await self.get(job_id, principal)  # NOT_FOUND for another caller's job
        if job.state in ENDED_STATES:
            yield job_event(job, f"job {state_name(job.state)}")
            return
        async for event in self._watches.follow(job_id):
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
        """Cancels what can be, on whichever replica runs the job; returns the job and what
        the cancel achieved."""
        job = await self.get(job_id, principal)
        if job.state == JobState.QUEUED:
            try:
                await end_job(self._ledger, job, JobState.CANCELLED, None, "cancelled while queued")
                return job, CancelOutcome.CANCELLED
            except LeaseLost:  # claimed a moment ago: cancel it where it runs
                job = await self.get(job_id, principal)
        if job.state != JobState.RUNNING:
            return job, CancelOutcome.NOT_CANCELLABLE
        backend = self._backends.get(job.backend)
        if not await self._ledger.request_cancel(job_id):
            return await self.get(job_id, principal), CancelOutcome.NOT_CANCELLABLE
        # A backend that stops promptly (a local render) ends the job within a moment; say
        # CANCELLED then, else REQUESTED and let the stream tell how it ends.
        wait_s = 2.0 if backend is not None and backend.cancels_running else 0.5
        ended = await self._ended_within(job_id, wait_s)
        if ended is not None and ended.state == JobState.CANCELLED:
            return ended, CancelOutcome.CANCELLED
        return await self.get(job_id, principal), CancelOutcome.REQUESTED

    async def _ended_within(self, job_id: str, wait_s: float) -> Job | None:
        """The job once it ended, if it does within `wait_s`."""
        events = self._watches.follow(job_id)
        try:
            async with asyncio.timeout(wait_s):
                async for event in events:
                    if event.job.state in ENDED_STATES:
                        return event.job
        except TimeoutError:
            return None
        finally:
            await events.aclose()
        return None

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
        """The caller's generation quotas as they stand (on every replica)."""
        seconds = await self._ledger.provider_seconds_used(principal.policy)
        active = await self._ledger.active_jobs(principal.caller)
        return [seconds, self._admission.concurrent_use(principal, active)]

    def quota_rows(self) -> Iterator[tuple[str, Quota, float, float | None]]:
        """(caller, quota, used, limit) of every caller the policy names, for the metrics
        (called from the metrics thread; read from the store, so every replica agrees)."""
        policy = self._policies.current()
        if not policy.enforced:
            return
        today = self._ledger.usage_today()
        active = self._ledger.active_by_caller()
        seconds = Quota.PROVIDER_VIDEO_SECONDS_PER_DAY
        for name, caller in policy.callers.items():
            yield name, seconds, today.get((name, seconds.value), 0.0), caller.limit(seconds)
            limit = self._admission.concurrent_limit(Principal(name, caller, enforced=True))
            yield name, Quota.CONCURRENT_JOBS, active.get(name, 0), limit

    def _run_finished(self, live: LiveJob, succeeded_after_s: float | None) -> None:
        if succeeded_after_s is not None:
            self._estimates.learn(live.backend.name, succeeded_after_s)
        self._replica.wake(live.backend.name)
