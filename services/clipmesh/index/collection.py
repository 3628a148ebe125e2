"""One collection held by the FAISS backend: videos, segments by slot, raw vectors, ANN index.

Every segment gets a slot (an int64 id, never reused). Writes take the collection's write lock
briefly and go straight into the live index, so they are searchable at once. Rebuilds (a new
index kind, or retraining after growth) train a new index on a copy in a background thread
without the lock, then catch up with the writes made meanwhile and swap under the lock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from itertools import islice
from typing import overload

import faiss
import numpy as np

from clipmesh.index import ann
from clipmesh.index.ranking import CandidateSegments, rank_candidates
from clipmesh.index.records import SearchQuery, SearchResult, Segments, VideoMeta, VideoWrite
from clipmesh.index.rwlock import ReadWriteLock
from clipmesh.index.vectors import RawVectors

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnnSettings:
    """How a collection indexes and searches."""

    mode: str = "auto"
    exact_max_segments: int = 50_000
    memory_budget_bytes: int = 4 << 30
    nprobe: int = 32
    min_nprobe: int = 4
    max_nprobe: int = 256
    exact_filter_max_segments: int = 50_000


@dataclass
class VideoEntry:
    """A stored video and the slots of its segments."""

    meta: VideoMeta
    slots: np.ndarray


class _Columns:
    """Growable per-slot columns: times, thumbnail and owning video."""

    def __init__(self) -> None:
        self.times = np.zeros((1024, 3), np.float64)  # start_s, end_s, keyframe_s
        self.thumbnails: list[str] = []
        self.video_ids: list[str] = []

    def __len__(self) -> int:
        return len(self.video_ids)

    def append(self, video_id: str, segments: Segments) -> None:
        start, count = len(self), len(segments)
        if start + count > len(self.times):
            grown = np.zeros((max(start + count, 2 * len(self.times)), 3), np.float64)
            grown[:start] = self.times[:start]
            self.times = grown
        self.times[start : start + count] = np.column_stack(
            [segments.start_s, segments.end_s, segments.keyframe_s]
        )
        self.thumbnails.extend(segments.thumbnails)
        self.video_ids.extend([video_id] * count)


class _SlotThumbnails(Sequence[str]):
    """The thumbnails of some slots, looked up as they are read: only the returned moments'
    ever are. Safe to read after the lock is released, as slots are never reused and the
    list only grows."""

    def __init__(self, thumbnails: list[str], slots: np.ndarray) -> None:
        self._thumbnails = thumbnails
        self._slots = slots

    def __len__(self) -> int:
        return len(self._slots)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> _SlotThumbnails: ...

    def __getitem__(self, index: int | slice) -> str | _SlotThumbnails:
        if isinstance(index, slice):
            return _SlotThumbnails(self._thumbnails, self._slots[index])
        return self._thumbnails[self._slots[index]]


@dataclass
class _EffortModel:
    """Learns seconds per probed list, to pick nprobe from the time a caller has left."""

    seconds_per_probe: float = 2e-5

    def observe(self, nprobe: int, seconds: float) -> None:
        self.seconds_per_probe = 0.8 * self.seconds_per_probe + 0.2 * seconds / max(nprobe, 1)

    def nprobe_for(self, remaining_s: float | None, settings: AnnSettings) -> int:
        if remaining_s is None:
            return settings.nprobe
        # Spend at most a third of what is left on the ANN stage; leave the rest for ranking,
        # metadata and the way back.
        affordable = int(remaining_s / 3 / self.seconds_per_probe)
        return max(
            settings.min_nprobe, min(settings.max_nprobe, max(affordable, 0), settings.nprobe)
        )


class Collection:
    """A collection's state and its index, safe for concurrent searches and writes."""

    def __init__(self, name: str, dimension: int, settings: AnnSettings) -> None:
        self.name = name
        self.dimension = dimension
        self.settings = settings
        self.videos: dict[str, VideoEntry] = {}
        self.vectors = RawVectors(dimension)
        self.columns = _Columns()
        self.live_segments = 0
        self.lock = ReadWriteLock()
        self.plan = ann.AnnPlan("flat")
        self.index: faiss.Index = ann.new_index(self.plan, dimension)
        self.rebuilding = False
        self._rebuild_deletions: list[np.ndarray] = []
        self._effort = _EffortModel()

    # -- writes ---------------------------------------------------------------------------

    def apply_upsert(self, writes: list[VideoWrite]) -> None:
        """Replaces each video's segments; visible to the next search."""
        with self.lock.writing():
            for write in writes:
                self._remove(write.meta.video_id)
                first = len(self.columns)
                slots = np.arange(first, first + len(write.segments), dtype=np.int64)
                self.columns.append(write.meta.video_id, write.segments)
                if len(slots):
                    self.vectors.append(write.segments.vectors)
                    self.index.add_with_ids(write.segments.vectors, slots)
                self.videos[write.meta.video_id] = VideoEntry(write.meta, slots)
                self.live_segments += len(slots)

    def apply_delete(self, video_ids: list[str]) -> tuple[int, list[str]]:
        """Removes videos; returns (how many existed, the ids that did not)."""
        missing = [v for v in video_ids if v not in self.videos]
        with self.lock.writing():
            for video_id in video_ids:
                self._remove(video_id)
        return len(video_ids) - len(missing), missing

    def _remove(self, video_id: str) -> None:
        entry = self.videos.pop(video_id, None)
        if entry is None or not len(entry.slots):
            return
        self.index.remove_ids(faiss.IDSelectorBatch(entry.slots))
        self.live_segments -= len(entry.slots)
        if self.rebuilding:
            self._rebuild_deletions.append(entry.slots)

    # -- reads ----------------------------------------------------------------------------

    def segments_of(self, entry: VideoEntry) -> Segments:
        """A stored video's segments with their exact (float16-stored) vectors."""
        times = self.columns.times[entry.slots]
        return Segments(
            times[:, 0],
            times[:, 1],
            times[:, 2],
            self.vectors.take(entry.slots),
            tuple(self.columns.thumbnails[s] for s in entry.slots),
        )

    def search(self, query: SearchQuery) -> SearchResult:
        """Candidate videos from the index, then an exact ranking of their segments."""
        return self._search(query, self.lock.reading())

    def search_now(self, query: SearchQuery) -> SearchResult | None:
        """`search`, or None at once when a write holds or awaits the lock (for a caller that
        must not wait)."""
        lock = self.lock.try_reading()
        return None if lock is None else self._search(query, lock)

    def _search(self, query: SearchQuery, lock: AbstractContextManager[None]) -> SearchResult:
        timings: dict[str, float] = {}
        started = time.perf_counter()
        with lock:
            allowed = self._allowed_slots(query)
            timings["filter"] = _ms_since(started)
            mark = time.perf_counter()
            k = min(max(128, query.top_k * 32), self.live_segments)
            remaining = None if query.deadline is None else query.deadline - time.monotonic()
            nprobe = self._effort.nprobe_for(remaining, self.settings)
            degraded = self.plan.trained and nprobe < self.settings.nprobe
            if k == 0 or (allowed is not None and not len(allowed)):
                ids = np.zeros(0, np.int64)
            elif allowed is not None and len(allowed) <= self.settings.exact_filter_max_segments:
                ids = self._exact_among(allowed, query.vector, k)
                degraded = False
            else:
                _, ids = ann.search(self.index, query.vector, k, nprobe=nprobe, allowed=allowed)
                if self.plan.trained:
                    self._effort.observe(nprobe, time.perf_counter() - mark)
            timings["ann"] = _ms_since(mark)
            mark = time.perf_counter()
            candidates = self._candidates(ids, 3 * query.top_k)
            timings["fetch"] = _ms_since(mark)
        mark = time.perf_counter()
        videos = rank_candidates(
            candidates, query.vector, top_k=query.top_k, max_moments=query.max_moments
        )
        timings["rank"] = _ms_since(mark)
        reason = (
            f"nprobe {nprobe} instead of {self.settings.nprobe} to meet the deadline"
            if degraded
            else ""
        )
        return SearchResult(videos, self.plan.kind, degraded, reason, timings)

    def _candidates(self, ids: np.ndarray, limit: int) -> CandidateSegments:
        """The first `limit` distinct videos owning the slots `ids` (in that order), with all
        their segments gathered at once."""
        owners = self.columns.video_ids
        entries = [
            self.videos[v] for v in islice(dict.fromkeys(owners[i] for i in ids.tolist()), limit)
        ]
        bounds = np.zeros(len(entries) + 1, np.int64)
        np.cumsum([len(e.slots) for e in entries], out=bounds[1:])
        slots = np.concatenate([e.slots for e in entries] or [np.zeros(0, np.int64)])
        times = self.columns.times[slots]
        return CandidateSegments(
            metas=[e.meta for e in entries],
            bounds=bounds,
            start_s=times[:, 0],
            end_s=times[:, 1],
            keyframe_s=times[:, 2],
            vectors=self.vectors.take(slots),
            thumbnails=_SlotThumbnails(self.columns.thumbnails, slots),
        )

    def _allowed_slots(self, query: SearchQuery) -> np.ndarray | None:
        if query.filter is None:
            return None
        chosen = [e.slots for e in self.videos.values() if query.filter.matches(e.meta)]
        return np.concatenate(chosen) if chosen else np.zeros(0, np.int64)

    def _exact_among(self, slots: np.ndarray, vector: np.ndarray, k: int) -> np.ndarray:
        scores = self.vectors.take(slots) @ vector
        top = np.argsort(-scores)[:k]
        return slots[top]

    # -- rebuilds -------------------------------------------------------------------------

    def wanted_plan(self) -> ann.AnnPlan | None:
        """A better index plan for the current size, or None if the current one is fine."""
        plan = ann.plan_index(
            self.live_segments,
            self.dimension,
            mode=self.settings.mode,
            exact_max_segments=self.settings.exact_max_segments,
            memory_budget_bytes=self.settings.memory_budget_bytes,
        )
        if plan.kind != self.plan.kind or plan.nlist >= 2 * max(self.plan.nlist, 1):
            return plan
        return None

    def rebuild(self, plan: ann.AnnPlan) -> float:
        """Builds an index for `plan` off the lock and swaps it in; returns seconds taken."""
        started = time.perf_counter()
        with self.lock.reading():
            self.rebuilding = True
            self._rebuild_deletions = []
            copied_until = len(self.columns)
            live = np.concatenate(
                [e.slots for e in self.videos.values()] or [np.zeros(0, np.int64)]
            )
        index = ann.new_index(plan, self.dimension)
        if plan.trained:
            rng = np.random.default_rng(0)
            sample = rng.choice(live, size=min(len(live), ann.training_size(plan)), replace=False)
            with self.lock.reading():
                training = self.vectors.take(np.sort(sample))
            ann.train(index, training)
        for start in range(0, len(live), 65536):
            chunk = np.sort(live[start : start + 65536])
            with self.lock.reading():
                vectors = self.vectors.take(chunk)
            index.add_with_ids(vectors, chunk)
        with self.lock.writing():
            fresh = np.concatenate(
                [e.slots[e.slots >= copied_until] for e in self.videos.values()]
                or [np.zeros(0, np.int64)]
            )
            if len(fresh):
                index.add_with_ids(self.vectors.take(fresh), fresh)
            for slots in self._rebuild_deletions:
                index.remove_ids(faiss.IDSelectorBatch(slots))
            self.index, self.plan = index, plan
            self.rebuilding = False
            self._rebuild_deletions = []
        elapsed = time.perf_counter() - started
        log.info(
            "index rebuilt",
            extra={
                "collection": self.name,
                "index_type": plan.kind,
                "nlist": plan.nlist,
                "segments": self.live_segments,
                "seconds": round(elapsed, 2),
            },
        )
        return elapsed


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
