"""The index write path of a bulk ingest: batched upserts, a bound on writes in flight, one
write per video even when the listing holds the same bytes twice.

Each UpsertSegments call carries up to `write_batch_videos` whole videos; a video becomes
visible only with all its segments. `add` waits while `max_writes_in_flight` writes are
outstanding, and the driver only asks the pipeline for more once `add` returns: a slow index
slows the pipeline (backpressure), it never fills the driver's memory.

A batch the index refuses as invalid is written again one video at a time, so one bad video
fails alone; a batch that fails for any other reason (the index unavailable past the channel's
retries, a deadline) fails its videos with that reason, and a re-run writes them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from clipmesh.bulk import metrics
from clipmesh.bulk.records import FileOutcome, Outcome, PreparedVideo
from clipmesh.index.client import IndexClient
from clipmesh.runtime.errors import InvalidArgument, ServiceError

log = logging.getLogger(__name__)

# A call also ends at this many segments, so it stays far below gRPC's message cap (8,192
# segments of 512 floats are 16 MiB) and the index's per-request limits, however long the videos.
MAX_SEGMENTS_PER_WRITE = 8192

Report = Callable[[FileOutcome], None]


class IndexWriter:
    """Writes prepared videos to one collection of the index.

    Args:
        index: The index client.
        collection: Where the videos go.
        batch_videos: Most videos in one call.
        max_in_flight: Most calls outstanding.
        timeout_s: Deadline of each call.
        report: Told every file's outcome, once.
    """

    def __init__(
        self,
        index: IndexClient,
        collection: str,
        *,
        batch_videos: int,
        max_in_flight: int,
        timeout_s: float,
        report: Report,
    ) -> None:
        self._index = index
        self._collection = collection
        self._batch_videos = batch_videos
        self._slots = asyncio.Semaphore(max_in_flight)
        self._timeout_s = timeout_s
        self._report = report
        self._pending: list[PreparedVideo] = []
        self._pending_segments = 0
        self._writes: set[asyncio.Task] = set()
        # Video id → the copies of the same bytes waiting for its first write to end. Kept
        # only for the current window: later windows' copies are caught by the workers' check
        # against the index, so this never grows with the whole library.
        self._copies: dict[str, list[PreparedVideo]] = {}
        self._written: set[str] = set()

    async def add(self, videos: list[PreparedVideo]) -> None:
        """Takes videos out of the pipeline; returns once there is room for more."""
        for video in videos:
            if not video.ready:
                self._report(FileOutcome.of(video))
            elif video.video_id in self._written:
                self._report(FileOutcome.of(video, Outcome.DUPLICATE))
            elif video.video_id in self._copies:
                self._copies[video.video_id].append(video)
            else:
                self._copies[video.video_id] = []
                self._pending.append(video)
                self._pending_segments += len(video.start_s)
                full = len(self._pending) >= self._batch_videos
                if full or self._pending_segments >= MAX_SEGMENTS_PER_WRITE:
                    await self._start_write()

    async def flush(self) -> None:
        """Writes what is pending and waits for every write; the window's duplicates are
        forgotten (the index knows them now)."""
        if self._pending:
            await self._start_write()
        await asyncio.gather(*self._writes)
        self._written.clear()

    async def _start_write(self) -> None:
        batch, self._pending, self._pending_segments = self._pending, [], 0
        await self._slots.acquire()  # backpressure: wait for a write to end
        metrics.WRITES_IN_FLIGHT.inc()
        task = asyncio.create_task(self._write_holding_slot(batch))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write_holding_slot(self, batch: list[PreparedVideo]) -> None:
        try:
            await self._write(batch)
        finally:
            metrics.WRITES_IN_FLIGHT.dec()
            self._slots.release()

    async def _write(self, batch: list[PreparedVideo]) -> None:
        try:
            try:
                await self._upsert(batch)
            except InvalidArgument:
                if len(batch) == 1:
                    raise
                for video in batch:  # find the one the index refuses; the others go in
                    await self._write([video])
                return
        except ServiceError as error:
            log.warning("index write of %d video(s) failed: %s", len(batch), error.message)
            self._fail(batch, error.reason, error.message)
            return
        except Exception as error:  # a defect: still every video gets its outcome
            log.exception("index write of %d video(s) failed", len(batch))
            self._fail(batch, "INTERNAL", f"internal error: {type(error).__name__}")
            return
        for video in batch:
            self._done(video, FileOutcome.of(video, Outcome.DONE))

    async def _upsert(self, batch: list[PreparedVideo]) -> None:
        started = time.perf_counter()
        writes = [video.write() for video in batch]
        await self._index.upsert_videos(self._collection, writes, timeout_s=self._timeout_s)
        metrics.WRITE_SECONDS.observe(time.perf_counter() - started)
        metrics.WRITE_SEGMENTS.inc(sum(len(write.segments) for write in writes))

    def _fail(self, batch: list[PreparedVideo], reason: str, message: str) -> None:
        for video in batch:
            self._done(video, FileOutcome.of(video.failed(reason, message)))

    def _done(self, video: PreparedVideo, outcome: FileOutcome) -> None:
        """Reports a written (or failed) video and the copies that waited for it."""
        self._report(outcome)
        copies = self._copies.pop(video.video_id, [])
        if outcome.outcome == Outcome.DONE:
            self._written.add(video.video_id)
        for copy in copies:
            if outcome.outcome == Outcome.DONE:
                self._report(FileOutcome.of(copy, Outcome.DUPLICATE))
            else:
                self._report(FileOutcome.of(copy.failed(outcome.reason, outcome.message)))
