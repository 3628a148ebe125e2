"""What the gateway commits — jobs, leases, their output files, the content cache — as
coroutines.

Store work runs on worker threads, never on the event loop: one thread for SQLite (its commits
never interleave), as many as the connection pool for PostgreSQL. Every method returns when its
work is durable. Output files live in the outputs dir, which replicas sharing a PostgreSQL
store share too (outputs.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from clipmesh.generator import metrics
from clipmesh.generator.backends.base import RenderedVideo
from clipmesh.generator.cache import ContentCache, cache_key
from clipmesh.generator.jobs import GenerationResult, GenerationSpec, Job, JobState
from clipmesh.generator.outbox import OutboxEvent, WebhookOutbox
from clipmesh.generator.outputs import OutputStore
from clipmesh.generator.schema import open_job_database
from clipmesh.generator.store import Charge, ClaimRules, JobStore, StoredJob
from clipmesh.runtime.notifications import Notifications, notifications_for
from clipmesh.runtime.policy import CallerPolicy, Quota
from clipmesh.runtime.postgres import DatabaseTarget
from clipmesh.runtime.usage import QuotaUse

AdmissionCheck = Callable[[int, int], None]
"""Raises a refusal given (jobs queued on every backend, the caller's jobs queued or running)."""


class CachedOutputGone(Exception):
    """The cache entry's file was deleted between the lookup and the job's insert."""


class JobLedger:
    """The gateway's durable state: the job store, the outputs, the cache.

    Args:
        data_dir: The gateway's data directory (jobs.sqlite3 when no `target`).
        outputs_dir: Where the videos are kept.
        target: A PostgreSQL database shared with other replicas; None for SQLite.
        pool_size: Connections (and store threads) for PostgreSQL.
        cache_memory_entries: Cache entries also kept in memory.
        cache_max_bytes: Bytes of video the cache may refer to (0 turns it off).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        outputs_dir: Path | None = None,
        target: DatabaseTarget | None = None,
        pool_size: int = 8,
        cache_memory_entries: int,
        cache_max_bytes: int,
    ) -> None:
        self._data_dir = data_dir
        self._target = target
        self._pool_size = pool_size
        threads = pool_size if target is not None else 1
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="jobstore")
        self._outputs = OutputStore(outputs_dir or data_dir / "outputs")
        self._cache_options = (cache_memory_entries, cache_max_bytes)
        self._store: JobStore | None = None
        self._cache: ContentCache | None = None
        self.notifications: Notifications | None = None
        # Called after a webhook event was committed here (the dispatcher wakes up).
        self.on_webhook: Callable[[], None] | None = None

    @property
    def shared(self) -> bool:
        """Whether other replicas may share this store (it is open)."""
        return self._store.db.shared

    async def open(self) -> None:
        """Opens (and migrates) the store."""
        db = await self._run(
            open_job_database, self._data_dir, self._target, pool_size=self._pool_size
        )
        self._store = JobStore(db)
        memory_entries, max_bytes = self._cache_options
        self._cache = ContentCache(
            self._store, self._outputs, memory_entries=memory_entries, max_bytes=max_bytes
        )
        self.notifications = notifications_for(db)

    async def close(self) -> None:
        if self._store is not None:
            await self._run(self._store.close)
        self._executor.shutdown(wait=True)

    # Submitting.

    async def submit(
        self,
        job: Job,
        *,
        request_sha256: str,
        charge: Charge | None,
        check: AdmissionCheck,
        event: OutboxEvent | None = None,
    ) -> tuple[StoredJob | None, int]:
        """In one transaction, serialised per caller across replicas: the caller's earlier job
        under the same idempotency key when there is one (nothing is written), else the
        admission check on the counts as committed, then the job with its charge (a job
        answered from the cache with its webhook event). Returns (the earlier job, 0) or
        (None, the new job's queue position)."""
        return await self._run(self._submit, job, request_sha256, charge, check, event)

    def _submit(self, job, request_sha256, charge, check, event) -> tuple[StoredJob | None, int]:
        store = self._store
        with store.transaction():
            store.lock_caller(job.caller)
            if job.idempotency_key:
                earlier = store.earlier(job.caller, job.idempotency_key)
                if earlier is not None:
                    return earlier, 0
            check(*store.counts(job.caller))
            held = job.result.sha256 if job.result is not None else ""
            if held:  # answered from the cache: its file must outlive the lookup
                store.db.lock("outputs")
                if not self._outputs.exists(held):
                    raise CachedOutputGone(held)
            position = store.insert(
                job, request_sha256=request_sha256, output_sha256=held, charge=charge
            )
            if event is not None:
                store.outbox.add(event)
            return None, position

    # Leases and claims.

    async def heartbeat(self, replica_id: str, host: str, lease_s: float) -> None:
        await self._run(self._store.heartbeat, replica_id, host, lease_s)

    async def forget_other_replicas(self, replica_id: str) -> None:
        await self._run(self._store.forget_other_replicas, replica_id)

    async def prune_replicas(self, older_than_s: float) -> None:
        await self._run(self._store.prune_replicas, older_than_s)

    async def claim(
        self, backend: str, owner: str, rules: ClaimRules, limit: int
    ) -> list[StoredJob]:
        return await self._run(self._store.claim, backend, owner, rules, limit)

    async def take_over(self, owner: str) -> list[StoredJob]:
        return await self._run(self._store.take_over, owner)

    async def release(self, owner: str) -> int:
        return await self._run(self._store.release, owner)

    async def open_provider_call(
        self, backend: str, replica_id: str, capacity: int, window_s: float
    ) -> tuple[int | None, float]:
        return await self._run(
            self._store.provider_calls.open, backend, replica_id, capacity, window_s
        )

    async def close_provider_call(self, call_id: int) -> None:
        await self._run(self._store.provider_calls.close, call_id)

    # The owner's writes (LeaseLost when it owns the job no more).

    async def update(
        self, job: Job, owner: str, *, submitting: bool = False, message: str = ""
    ) -> None:
        """Commits the job as it stands (and whether a billable submission is in flight)."""
        update = partial(self._store.update, submitting=submitting, message=message)
        await self._run(update, job, owner, output_sha256=_held(job))

    async def end(
        self,
        job: Job,
        owner: str | None,
        *,
        refund: bool,
        event: OutboxEvent | None,
        message: str = "",
        orphaned_task_s: float = 0.0,
    ) -> None:
        """Commits an ended job with its refund and its webhook event, together (`owner` None:
        a queued job nobody has claimed); see `JobStore.end`."""
        end = partial(
            self._store.end,
            refund=refund,
            event=event,
            message=message,
            orphaned_task_s=orphaned_task_s,
        )
        await self._run(end, job, owner, output_sha256=_held(job))
        if event is not None and self.on_webhook is not None:
            self.on_webhook()

    async def requeue(self, job: Job, owner: str) -> None:
        await self._run(self._store.requeue, job, owner)

    async def request_cancel(self, job_id: str) -> bool:
        return await self._run(self._store.request_cancel, job_id)

    # Reading.

    async def get(self, job_id: str) -> StoredJob | None:
        return await self._run(self._store.get, job_id)

    async def positions(self, job_ids: list[str]) -> dict[str, int]:
        return await self._run(self._store.positions, job_ids)

    async def page(self, **filters: Any) -> list[StoredJob]:
        """A page of jobs, newest first (see `JobStore.page`)."""
        return await self._run(partial(self._store.page, **filters))

    async def active_jobs(self, caller: str) -> int:
        """The caller's jobs queued or running, on every replica."""
        _, active = await self._run(self._store.counts, caller)
        return active

    def active_by_caller(self) -> dict[str, int]:
        """Jobs queued or running by caller (for the metrics; called off the store's threads)."""
        return self._executor.submit(self._store.active_by_caller).result()

    async def unfinished_counts(self) -> dict[tuple[str, str], int]:
        """Jobs queued and running, by (state name, backend), on every replica."""
        return await self._run(self._store.unfinished_counts)

    # Quotas and webhooks.

    async def provider_seconds_used(self, caller: CallerPolicy) -> QuotaUse:
        """The caller's provider video-seconds today."""
        (use,) = await self._run(
            self._store.charges.use, caller, [Quota.PROVIDER_VIDEO_SECONDS_PER_DAY]
        )
        return use

    def usage_today(self) -> dict[tuple[str, str], float]:
        """Every caller's charges today (for the metrics; called off the store's threads)."""
        return self._executor.submit(self._store.charges.today).result()

    async def outbox(self, operation: Callable[[WebhookOutbox], Any]) -> Any:
        """Runs `operation` on the webhook outbox, on a store thread."""
        return await self._run(lambda: operation(self._store.outbox))

    # Outputs and the cache.

    async def cached(self, spec: GenerationSpec) -> GenerationResult | None:
        """The result of an identical seeded request made before, if its file is still there."""
        key = cache_key(spec) if self._cache.enabled else ""
        if not key:
            return None
        found = await self._run(self._cache.get, key)
        metrics.CACHE_LOOKUPS.labels("hit" if found else "miss").inc()
        return found

    async def keep_output(self, spec: GenerationSpec, video: RenderedVideo) -> GenerationResult:
        """Moves a rendered video into the output store (by content) and the cache."""
        sha256, path, size = await self._run(self._outputs.put, video.path)
        result = GenerationResult(
            uri=path.resolve().as_uri(),
            duration_s=video.duration_s,
            fps=video.fps,
            width=video.width,
            height=video.height,
            size_bytes=size,
            sha256=sha256,
        )
        key = cache_key(spec)
        if key:
            await self._run(self._cache.put, key, result)
        return result

    async def delete_output(self, job: Job) -> bool:
        """Drops the job's hold on its video; True when that removed the file itself."""
        return await self._run(self._delete_output, job)

    def _delete_output(self, job: Job) -> bool:
        sha256 = job.result.sha256
        with self._store.transaction():
            self._store.db.lock("outputs")
            self._store.save_output_state(job)  # clears the job's hold on the content first
            if self._store.jobs_holding(sha256):
                return False
            self._cache.drop_content(sha256)
            return self._outputs.delete(sha256)

    def has_output(self, sha256: str) -> bool:
        return self._outputs.exists(sha256)

    def output_chunks(self, sha256: str) -> Iterator[bytes]:
        """The file's bytes, for the caller to iterate off the event loop."""
        return self._outputs.chunks(sha256)

    async def _run(self, function: Callable, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(function, *args, **kwargs))


def _held(job: Job) -> str:
    """The content address the job holds in the output store ("" for none)."""
    if job.state != JobState.SUCCEEDED or job.result is None or job.output_deleted:
        return ""
    return job.result.sha256
