"""The embedded FAISS backend: collections in memory, durable through a WAL and snapshots.

A write is validated, logged (fsync), then applied; it is acknowledged after both. Snapshots
are taken in the background once the log has grown past `snapshot_wal_bytes` (and at clean
shutdown), after which the covered log segments are dropped. Index rebuilds run on a worker
thread and never block searches or writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from clipmesh.index import metrics
from clipmesh.index import requests as codec
from clipmesh.index.ann import memory_bytes
from clipmesh.index.backend import IndexBackend, collection_not_found, newest_first, overlapping
from clipmesh.index.collection import AnnSettings, Collection
from clipmesh.index.convert import upsert_to_proto
from clipmesh.index.filters import VideoFilter
from clipmesh.index.records import (
    CollectionStats,
    SearchQuery,
    SearchResult,
    Segments,
    VideoMeta,
    VideoWrite,
)
from clipmesh.index.snapshot import load_snapshot, write_snapshot
from clipmesh.index.wal import WalRecord, WriteAheadLog
from clipmesh.runtime.errors import InvalidArgument
from clipmesh_api.index.v1 import index_pb2

log = logging.getLogger(__name__)

_UPSERT, _DELETE = b"U", b"D"
# The largest top_k searched on the event loop: 3 × top_k candidate videos are re-ranked, a
# millisecond or two at 50 segments a video.
INLINE_MAX_TOP_K = 20


class FaissBackend(IndexBackend):
    """FAISS indexes in this process, state under `data_dir`.

    Args:
        data_dir: Where the WAL and snapshots live.
        settings: Index choice and search effort.
        snapshot_wal_bytes: Log size that triggers a background snapshot.
        snapshot_interval_s: Age of the oldest unsnapshotted write that triggers one.
    """

    name = "faiss"

    def __init__(
        self,
        data_dir: Path,
        settings: AnnSettings | None = None,
        *,
        snapshot_wal_bytes: int = 256 << 20,
        snapshot_interval_s: float = 3600.0,
    ) -> None:
        self.data_dir = data_dir
        self.settings = settings or AnnSettings()
        self.snapshot_wal_bytes = snapshot_wal_bytes
        self.snapshot_interval_s = snapshot_interval_s
        self._opened_at_s = time.time()
        self.collections: dict[str, Collection] = {}
        self.wal = WriteAheadLog(data_dir / "wal")
        self.applied_sequence = 0
        self.snapshot_sequence = 0
        self.last_snapshot_time_s: float | None = None
        self._maintenance: set[asyncio.Task[None]] = set()
        self._snapshotting = False
        self._searches_running = 0  # on worker threads

    async def open(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        sequence, collections, created = await asyncio.to_thread(
            load_snapshot, self.data_dir, self.settings
        )
        self.collections = {c.name: c for c in collections}
        self.applied_sequence = self.snapshot_sequence = sequence
        self.last_snapshot_time_s = created
        records = await asyncio.to_thread(self.wal.open, after_sequence=sequence)
        for record in records:
            self._apply(record)
        log.info(
            "index opened",
            extra={
                "snapshot_sequence": sequence,
                "replayed_records": len(records),
                "collections": {n: c.live_segments for n, c in self.collections.items()},
            },
        )
        for collection in self.collections.values():
            self._maybe_rebuild(collection)

    async def wait_for_maintenance(self) -> None:
        """Waits until running rebuilds and snapshots (and any they start) have finished."""
        while self._maintenance:
            await asyncio.gather(*self._maintenance, return_exceptions=True)

    async def close(self) -> None:
        await self.wait_for_maintenance()
        if self.applied_sequence > self.snapshot_sequence:
            await self.snapshot()  # a clean restart then replays nothing
        self.wal.close()

    # -- writes ---------------------------------------------------------------------------

    async def upsert(self, collection: str, videos: list[VideoWrite]) -> int:
        first = next((i for i, v in enumerate(videos) if len(v.segments)), None)
        dimension = None if first is None else videos[first].segments.vectors.shape[1]
        existing = self.collections.get(collection)
        if existing is not None and dimension is not None and dimension != existing.dimension:
            raise InvalidArgument(
                f"vectors have dimension {dimension}; collection {collection!r} holds "
                f"{existing.dimension}",
                field=f"videos[{first}].segments[].vector",
                reason="DIMENSION_MISMATCH",
            )
        if existing is None and dimension is None:
            raise InvalidArgument(
                f"the first write to {collection!r} must carry segments",
                field="videos[].segments",
                reason="EMPTY_REQUEST",
            )
        payload = _UPSERT + upsert_to_proto(collection, videos).SerializeToString()
        sequence = await self.wal.append(payload, self._apply)
        self._after_write(collection)
        return sequence

    async def delete(self, collection: str, video_ids: list[str]) -> tuple[int, list[str]]:
        target = self._collection(collection)
        missing = [v for v in video_ids if v not in target.videos]
        if len(missing) == len(video_ids):
            return 0, missing
        request = index_pb2.DeleteVideosRequest(collection=collection, video_ids=video_ids)
        await self.wal.append(_DELETE + request.SerializeToString(), self._apply)
        self._after_write(collection)
        return len(video_ids) - len(missing), missing

    def _apply(self, record: WalRecord) -> None:
        """Applies one logged write (live, or replayed at start-up).

        Idempotent: replaying a record whose effect a snapshot already holds changes nothing
        a reader can see, so a snapshot's sequence may safely lag its contents.
        """
        kind, body = record.payload[:1], record.payload[1:]
        if kind == _UPSERT:
            name, writes = codec.parse_upsert(
                index_pb2.UpsertSegmentsRequest.FromString(body), codec.REPLAY_LIMITS
            )
            collection = self.collections.get(name)
            if collection is None:
                dimension = next(w.segments.vectors.shape[1] for w in writes if len(w.segments))
                collection = self.collections[name] = Collection(name, dimension, self.settings)
            collection.apply_upsert(writes)
        elif kind == _DELETE:
            request = index_pb2.DeleteVideosRequest.FromString(body)
            if request.collection in self.collections:
                self.collections[request.collection].apply_delete(list(request.video_ids))
        self.applied_sequence = record.sequence

    # -- reads ----------------------------------------------------------------------------

    async def search(self, query: SearchQuery) -> SearchResult:
        collection = self._collection(query.collection)
        if query.vector.shape[0] != collection.dimension:
            raise InvalidArgument(
                f"query vectors have dimension {query.vector.shape[0]}; collection "
                f"{query.collection!r} holds {collection.dimension}",
                field="queries[0].vector",
                reason="DIMENSION_MISMATCH",
            )
        # A quick search runs on the event loop when no other search is running and no write
        # holds the collection: two hand-offs to a worker thread and back cost more than it
        # (docs/benchmarks.md, "Index"). Anything else — the lock taken, searches at once,
        # filters, exact indexes, large top_k — runs on a worker thread, so the loop never waits.
        if not self._searches_running and _quick(collection, query):
            result = collection.search_now(query)
            if result is not None:
                return result
        self._searches_running += 1
        try:
            return await asyncio.to_thread(collection.search, query)
        finally:
            self._searches_running -= 1

    async def stats(self, collection: str = "") -> list[CollectionStats]:
        chosen = [self._collection(collection)] if collection else list(self.collections.values())
        wal_bytes = self.wal.size_bytes()
        return [
            CollectionStats(
                collection=c.name,
                videos=len(c.videos),
                segments=c.live_segments,
                dimension=c.dimension,
                index_type=c.plan.kind,
                memory_bytes=memory_bytes(c.index),
                wal_bytes=wal_bytes,
                last_snapshot_time_s=self.last_snapshot_time_s,
                rebuilding=c.rebuilding,
            )
            for c in chosen
        ]

    async def get_video(self, collection: str, video_id: str) -> tuple[VideoMeta, int] | None:
        entry = self._collection(collection).videos.get(video_id)
        return None if entry is None else (entry.meta, len(entry.slots))

    async def list_videos(
        self, collection: str, video_filter: VideoFilter | None, *, offset: int, limit: int
    ) -> tuple[list[VideoMeta], int]:
        entries = self._collection(collection).videos.values()
        chosen = [e.meta for e in entries if video_filter is None or video_filter.matches(e.meta)]
        return newest_first(chosen)[offset : offset + limit], len(chosen)

    async def get_segments(
        self, collection: str, video_id: str, span: tuple[float, float] | None = None
    ) -> Segments | None:
        target = self._collection(collection)
        with target.lock.reading():
            entry = target.videos.get(video_id)
            return None if entry is None else overlapping(target.segments_of(entry), span)

    def _collection(self, name: str) -> Collection:
        collection = self.collections.get(name)
        if collection is None:
            raise collection_not_found(name)
        return collection

    # -- maintenance ----------------------------------------------------------------------

    def _after_write(self, name: str) -> None:
        collection = self.collections.get(name)
        if collection is not None:
            self._maybe_rebuild(collection)
        if not self._snapshotting and self.wal.size_bytes() > self.snapshot_wal_bytes:
            self._spawn(self._background_snapshot())

    def _maybe_rebuild(self, collection: Collection) -> None:
        plan = collection.wanted_plan()
        if plan is not None and not collection.rebuilding:
            collection.rebuilding = True  # claimed now; the worker thread confirms it
            self._spawn(self._rebuild(collection, plan))

    async def _rebuild(self, collection: Collection, plan) -> None:
        try:
            seconds = await asyncio.to_thread(collection.rebuild, plan)
            metrics.REBUILDS.labels(collection.name).inc()
            metrics.REBUILD_SECONDS.labels(collection.name).observe(seconds)
        except Exception:
            collection.rebuilding = False
            log.exception("index rebuild failed", extra={"collection": collection.name})

    def _spawn(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self._maintenance.add(task)
        task.add_done_callback(self._maintenance.discard)

    async def maintain(self) -> None:
        """Snapshots once writes have waited `snapshot_interval_s` unsnapshotted."""
        if self._snapshotting or self.applied_sequence <= self.snapshot_sequence:
            return
        since = self.last_snapshot_time_s or self._opened_at_s
        if time.time() - since >= self.snapshot_interval_s:
            await self._background_snapshot()

    async def _background_snapshot(self) -> None:
        # A failure is counted and logged by snapshot(); the next trigger tries again.
        with contextlib.suppress(Exception):
            await self.snapshot()

    async def snapshot(self) -> None:
        """Writes a snapshot of every collection and drops the log it covers."""
        if self._snapshotting:
            return
        self._snapshotting = True
        try:
            self.wal.request_rotation()
            sequence = await asyncio.to_thread(self._write_snapshot)
            self.snapshot_sequence = sequence
            self.last_snapshot_time_s = time.time()
            self.wal.drop_through(sequence)
        except Exception:
            metrics.SNAPSHOT_FAILURES.inc()
            log.exception("index snapshot failed; the write-ahead log keeps every write")
            raise
        finally:
            self._snapshotting = False

    def _write_snapshot(self) -> int:
        collections = sorted(list(self.collections.values()), key=lambda c: c.name)
        with contextlib.ExitStack() as stack:
            for collection in collections:
                stack.enter_context(collection.lock.reading())
            sequence = self.applied_sequence
            write_snapshot(self.data_dir, sequence, collections)
        log.info("snapshot written", extra={"sequence": sequence})
        return sequence


def _quick(collection: Collection, query: SearchQuery) -> bool:
    """Whether `query` is a search of a few milliseconds at most: an IVF index (a flat one's
    scan grows with the collection), no filter (it is checked video by video), small top_k."""
    return collection.plan.trained and query.filter is None and query.top_k <= INLINE_MAX_TOP_K
