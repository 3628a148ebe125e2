"""What the gateway commits — jobs, their output files, the content cache — as coroutines.

One thread owns SQLite and the files, so commits never block the event loop and never
interleave; every method here runs its work on that thread and returns when it is durable.
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
from clipmesh.generator.store import Charge, JobStore, StoredJob
from clipmesh.runtime.policy import CallerPolicy, Quota
from clipmesh.runtime.usage import QuotaUse


class JobLedger:
    """The gateway's durable state under `data_dir`: jobs.sqlite3, outputs/, the cache.

    Args:
        data_dir: The gateway's data directory.
        cache_memory_entries: Cache entries also kept in memory.
        cache_max_bytes: Bytes of video the cache may refer to (0 turns it off).
    """

    def __init__(self, data_dir: Path, *, cache_memory_entries: int, cache_max_bytes: int) -> None:
        self._path = data_dir / "jobs.sqlite3"
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="jobstore")
        self._outputs = OutputStore(data_dir / "outputs")
        self._cache_options = (cache_memory_entries, cache_max_bytes)
        self._store: JobStore | None = None
        self._cache: ContentCache | None = None
        # Called after a webhook event was committed (the dispatcher wakes up).
        self.on_webhook: Callable[[], None] | None = None

    async def open(self) -> list[StoredJob]:
        """Opens the store; returns the jobs a previous run left queued or running."""
        self._store = await self._run(JobStore, self._path)
        memory_entries, max_bytes = self._cache_options
        self._cache = ContentCache(
            self._store, self._outputs, memory_entries=memory_entries, max_bytes=max_bytes
        )
        return await self._run(lambda: list(self._store.unfinished()))

    async def close(self) -> None:
        if self._store is not None:
            await self._run(self._store.close)
        self._executor.shutdown(wait=True)

    # Jobs.

    async def insert(self, job: Job, *, request_sha256: str, charge: Charge | None = None) -> None:
        """Stores a new job and charges its caller, together (a cache hit holds its output
        from the start). Raises the quota's refusal when the charge does not fit."""
        held = job.result.sha256 if job.result is not None else ""
        insert = partial(self._store.insert, request_sha256=request_sha256, charge=charge)
        await self._run(insert, job, output_sha256=held)

    async def update(self, job: Job, *, submitting: bool = False) -> None:
        """Commits the job as it stands (and whether a billable submission is in flight)."""
        await self._run(self._store.update, job, submitting=submitting, output_sha256=_held(job))

    async def end(self, job: Job, *, refund: bool, event: OutboxEvent | None) -> None:
        """Commits an ended job with its refund and its webhook event, together."""
        await self._run(self._store.end, job, output_sha256=_held(job), refund=refund, event=event)
        if event is not None and self.on_webhook is not None:
            self.on_webhook()

    async def get(self, job_id: str) -> StoredJob | None:
        return await self._run(self._store.get, job_id)

    async def by_idempotency_key(self, caller: str, key: str) -> StoredJob | None:
        return await self._run(self._store.by_idempotency_key, caller, key)

    # Quotas and webhooks.

    async def provider_seconds_used(self, caller: CallerPolicy) -> QuotaUse:
        """The caller's provider video-seconds today."""
        (use,) = await self._run(
            self._store.charges.use, caller, [Quota.PROVIDER_VIDEO_SECONDS_PER_DAY]
        )
        return use

    def usage_today(self) -> dict[tuple[str, str], float]:
        """Every caller's charges today (for the metrics; called off the store's thread)."""
        return self._executor.submit(self._store.charges.today).result()

    async def outbox(self, operation: Callable[[WebhookOutbox], Any]) -> Any:
        """Runs `operation` on the webhook outbox, on the store's thread."""
        return await self._run(lambda: operation(self._store.outbox))

    async def page(self, **filters: Any) -> list[StoredJob]:
        """A page of jobs, newest first (see `JobStore.page`)."""
        return await self._run(partial(self._store.page, **filters))

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
        self._store.update(job)  # clears the job's hold on the content first
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
