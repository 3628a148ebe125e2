"""The contract every index backend keeps (FAISS embedded, Milvus at scale).

Semantics shared by all backends, and checked by one contract test suite against each:
- `upsert` replaces every segment of each given video atomically and returns only once the
  write is durable; the video is searchable when it returns.
- `delete` removes videos at once.
- A segment's score is the inner product of the query vector with the segment's vector; a
  video's score is its best segment's score; moments come from `moments.find_moments`.
- A collection is created by its first write; its dimension is fixed by that write. Searching
  or deleting in a collection that does not exist is NOT_FOUND; a vector of the wrong
  dimension is INVALID_ARGUMENT naming the field.
"""

from __future__ import annotations

import abc

import numpy as np

from clipmesh.index.filters import VideoFilter
from clipmesh.index.records import (
    CollectionStats,
    SearchQuery,
    SearchResult,
    Segments,
    VideoMeta,
    VideoWrite,
)
from clipmesh.runtime.errors import NotFound


def collection_not_found(name: str) -> NotFound:
    """The error every backend raises for a collection that does not exist."""
    return NotFound(
        f"collection {name!r} does not exist",
        reason="COLLECTION_NOT_FOUND",
        metadata={"collection": name},
    )


class IndexBackend(abc.ABC):
    """Stores videos' segments and answers moment-level searches."""

    name: str = ""

    @abc.abstractmethod
    async def open(self) -> None:
        """Loads or connects; raises StartupError when the stored state cannot be trusted."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Flushes and releases resources."""

    async def maintain(self) -> None:  # noqa: B027 (a hook: most backends have nothing to do)
        """Periodic housekeeping (the service calls it every few seconds); default: none."""

    @abc.abstractmethod
    async def upsert(self, collection: str, videos: list[VideoWrite]) -> int:
        """Durably replaces the given videos; returns the write's sequence number."""

    @abc.abstractmethod
    async def delete(self, collection: str, video_ids: list[str]) -> tuple[int, list[str]]:
        """Removes videos; returns (how many existed, the ids that did not)."""

    @abc.abstractmethod
    async def search(self, query: SearchQuery) -> SearchResult:
        """The top videos for `query`, each with its best moments."""

    @abc.abstractmethod
    async def stats(self, collection: str = "") -> list[CollectionStats]:
        """Statistics of one collection, or of all when `collection` is empty."""

    @abc.abstractmethod
    async def get_video(self, collection: str, video_id: str) -> tuple[VideoMeta, int] | None:
        """A video's metadata and segment count, or None."""

    @abc.abstractmethod
    async def list_videos(
        self, collection: str, video_filter: VideoFilter | None, *, offset: int, limit: int
    ) -> tuple[list[VideoMeta], int]:
        """A page of the videos passing `video_filter`, newest first (then by id), and how many
        pass in all."""

    @abc.abstractmethod
    async def get_segments(
        self, collection: str, video_id: str, span: tuple[float, float] | None = None
    ) -> Segments | None:
        """A video's segments overlapping `span` (start_s, end_s), in time order; None when the
        video does not exist."""


def newest_first(videos: list[VideoMeta]) -> list[VideoMeta]:
    """The listing order every backend uses: newest first, then by id."""
    return sorted(videos, key=lambda meta: (-meta.create_time_s, meta.video_id))


def overlapping(segments: Segments, span: tuple[float, float] | None) -> Segments:
    """`segments` in time order, keeping those that overlap `span` (all when None)."""
    order = np.argsort(segments.start_s, kind="stable")
    if span is not None:
        order = order[(segments.start_s[order] < span[1]) & (segments.end_s[order] > span[0])]
    return Segments(
        segments.start_s[order],
        segments.end_s[order],
        segments.keyframe_s[order],
        segments.vectors[order],
        tuple(segments.thumbnails[i] for i in order),
    )
