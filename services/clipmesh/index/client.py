"""`IndexClient`: what other services ask of the index, in the index's own domain records.

Requests are written and answers read with `convert.py`; errors come back as the calling
service's own errors (`runtime.dependencies.translate`), with the index's field names renamed
to the caller's where it gives `names`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from clipmesh.index.convert import (
    filter_to_proto,
    search_result_from_proto,
    segments_from_proto,
    upsert_to_proto,
    video_from_proto,
)
from clipmesh.index.filters import VideoFilter
from clipmesh.index.records import SearchResult, Segments, VideoMeta, VideoWrite
from clipmesh.runtime.dependencies import DependencyClient
from clipmesh.runtime.errors import NotFound
from clipmesh_api.common.v1 import common_pb2
from clipmesh_api.index.v1 import index_pb2, index_pb2_grpc


@dataclass(frozen=True)
class StoredVideo:
    """A video as the index holds it: its metadata and how many segments it has."""

    meta: VideoMeta
    segment_count: int


@dataclass(frozen=True)
class VideoPage:
    """One page of a listing.

    Attributes:
        videos: The page's videos, newest first.
        next_page_token: Where the next page starts; "" after the last.
        total_size: Videos in the whole listing.
    """

    videos: list[VideoMeta]
    next_page_token: str
    total_size: int


class IndexClient(DependencyClient):
    """Calls the index service."""

    service = "index"
    stub_type = index_pb2_grpc.IndexServiceStub

    async def search(
        self,
        collection: str,
        queries: Sequence[tuple[np.ndarray | Sequence[float], float]],
        *,
        top_k: int,
        max_moments: int,
        video_filter: VideoFilter | None,
        timeout_s: float,
        names: Mapping[str, str] | None = None,
    ) -> SearchResult:
        """The best `top_k` videos for the weighted query vectors, with their moments.

        Args:
            collection: Where to search.
            queries: (vector, weight) pairs; negative weights push away.
            top_k: Videos to return.
            max_moments: Moments per video.
            video_filter: Only videos passing it (None: all).
            timeout_s: Deadline of the call.
            names: Renames the index's field names in errors (`{"queries": "parts"}`).
        """
        request = index_pb2.SearchRequest(
            collection=collection,
            queries=[
                index_pb2.WeightedVector(vector=np.asarray(vector).tolist(), weight=weight)
                for vector, weight in queries
            ],
            top_k=top_k,
            max_moments_per_video=max_moments,
            filter=filter_to_proto(video_filter),
        )
        with self.errors(names):
            response = await self._stub.Search(request, timeout=timeout_s)
        return search_result_from_proto(response)

    async def upsert_video(self, collection: str, write: VideoWrite, *, timeout_s: float) -> None:
        """Writes a video with all its segments in one durable write (acknowledged once the
        index has made it durable)."""
        await self.upsert_videos(collection, [write], timeout_s=timeout_s)

    async def upsert_videos(
        self, collection: str, writes: Sequence[VideoWrite], *, timeout_s: float
    ) -> None:
        """Writes several videos, each with all its segments, in one call; a video already
        held is replaced whole. All or nothing: a refused video fails the call."""
        with self.errors():
            request = upsert_to_proto(collection, list(writes))
            await self._stub.UpsertSegments(request, timeout=timeout_s)

    async def get_video(self, collection: str, video_id: str, *, timeout_s: float) -> StoredVideo:
        """A video's metadata and segment count.

        Raises:
            NotFound: The collection has no such video.
        """
        request = index_pb2.GetVideoRequest(collection=collection, video_id=video_id)
        with self.errors():
            response = await self._stub.GetVideo(request, timeout=timeout_s)
        return StoredVideo(video_from_proto(response.video), response.segments)

    async def has_video(self, collection: str, video_id: str, *, timeout_s: float) -> bool:
        """Whether the collection holds the video."""
        try:
            await self.get_video(collection, video_id, timeout_s=timeout_s)
        except NotFound:
            return False
        return True

    async def list_videos(
        self,
        collection: str,
        *,
        video_filter: VideoFilter | None,
        page_size: int,
        page_token: str,
        timeout_s: float,
    ) -> VideoPage:
        """One page of the collection's videos, newest first."""
        request = index_pb2.ListVideosRequest(
            collection=collection,
            filter=filter_to_proto(video_filter),
            page=common_pb2.PageRequest(page_size=page_size, page_token=page_token),
        )
        with self.errors():
            response = await self._stub.ListVideos(request, timeout=timeout_s)
        return VideoPage(
            [video_from_proto(video) for video in response.videos],
            response.page.next_page_token,
            response.page.total_size,
        )

    async def delete_videos(
        self, collection: str, video_ids: Sequence[str], *, timeout_s: float
    ) -> tuple[int, list[str]]:
        """Removes videos; returns (how many were deleted, the ids it did not hold)."""
        request = index_pb2.DeleteVideosRequest(collection=collection, video_ids=video_ids)
        with self.errors():
            response = await self._stub.DeleteVideos(request, timeout=timeout_s)
        return response.deleted_count, list(response.not_found_ids)

    async def get_segments(
        self,
        collection: str,
        video_id: str,
        span: tuple[float, float] | None,
        *,
        timeout_s: float,
        names: Mapping[str, str] | None = None,
    ) -> Segments:
        """The video's segments overlapping `span` (all of them when None).

        Raises:
            NotFound: The collection has no such video.
        """
        request = index_pb2.GetSegmentsRequest(
            collection=collection,
            video_id=video_id,
            span=None if span is None else common_pb2.TimeRange(start_s=span[0], end_s=span[1]),
        )
        with self.errors(names):
            response = await self._stub.GetSegments(request, timeout=timeout_s)
        return segments_from_proto(response.segments)
