"""gRPC servicer of the index: translates proto ↔ domain, nothing else."""

from __future__ import annotations

import time

from clipmesh.index import metrics, requests
from clipmesh.index.backend import IndexBackend
from clipmesh.index.convert import search_result_to_proto, segments_to_proto, video_to_proto
from clipmesh.index.filters import parse_filter
from clipmesh.runtime.errors import InvalidArgument, NotFound
from clipmesh.runtime.paging import page_response, parse_page
from clipmesh_api.index.v1 import index_pb2, index_pb2_grpc


class IndexServicer(index_pb2_grpc.IndexServiceServicer):
    """Serves IndexService from an `IndexBackend`."""

    def __init__(self, backend: IndexBackend, limits: requests.Limits) -> None:
        self._backend = backend
        self._limits = limits

    async def UpsertSegments(self, request, context):
        collection, videos = requests.parse_upsert(request, self._limits)
        sequence = await self._backend.upsert(collection, videos)
        return index_pb2.UpsertSegmentsResponse(
            videos_upserted=len(videos),
            segments_upserted=sum(len(v.segments) for v in videos),
            sequence=sequence,
        )

    async def DeleteVideos(self, request, context):
        collection, ids = requests.parse_delete(request, self._limits)
        deleted, missing = await self._backend.delete(collection, ids)
        return index_pb2.DeleteVideosResponse(deleted_count=deleted, not_found_ids=missing)

    async def Search(self, request, context):
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        query = requests.parse_search(request, self._limits, deadline=deadline)
        started = time.perf_counter()
        result = await self._backend.search(query)
        metrics.SEARCH_SECONDS.labels(self._backend.name).observe(time.perf_counter() - started)
        if result.degraded:
            metrics.DEGRADED_SEARCHES.labels(self._backend.name).inc()
        return search_result_to_proto(query.collection, result)

    async def GetStats(self, request, context):
        collection = requests.collection_name(request.collection) if request.collection else ""
        stats = await self._backend.stats(collection)
        response = index_pb2.GetStatsResponse(backend=self._backend.name)
        for s in stats:
            entry = response.collections.add(
                collection=s.collection,
                videos=s.videos,
                segments=s.segments,
                dimension=s.dimension,
                index_type=s.index_type,
                memory_bytes=s.memory_bytes,
                wal_bytes=s.wal_bytes,
                rebuilding=s.rebuilding,
            )
            if s.last_snapshot_time_s is not None:
                entry.last_snapshot_time.FromNanoseconds(int(s.last_snapshot_time_s * 1e9))
        return response

    async def GetVideo(self, request, context):
        collection = requests.collection_name(request.collection)
        video_id = requests.video_id(request.video_id, "video_id", self._limits)
        found = await self._backend.get_video(collection, video_id)
        if found is None:
            raise NotFound(
                f"video {video_id!r} is not in collection {collection!r}",
                reason="VIDEO_NOT_FOUND",
                metadata={"video_id": video_id},
            )
        meta, segments = found
        return index_pb2.GetVideoResponse(video=video_to_proto(collection, meta), segments=segments)

    async def ListVideos(self, request, context):
        collection = requests.collection_name(request.collection)
        video_filter = parse_filter(request.filter) if request.HasField("filter") else None
        offset, limit = parse_page(request.page)
        videos, total = await self._backend.list_videos(
            collection, video_filter, offset=offset, limit=limit
        )
        return index_pb2.ListVideosResponse(
            videos=[video_to_proto(collection, meta) for meta in videos],
            page=page_response(offset, len(videos), total),
        )

    async def GetSegments(self, request, context):
        collection = requests.collection_name(request.collection)
        video_id = requests.video_id(request.video_id, "video_id", self._limits)
        span = None
        if request.HasField("span"):
            span = (request.span.start_s, request.span.end_s)
            if not span[0] < span[1]:
                raise InvalidArgument("span needs start_s < end_s", field="span", reason="BAD_TIME")
        segments = await self._backend.get_segments(collection, video_id, span)
        if segments is None:
            raise NotFound(
                f"video {video_id!r} is not in collection {collection!r}",
                reason="VIDEO_NOT_FOUND",
                metadata={"video_id": video_id},
            )
        return index_pb2.GetSegmentsResponse(segments=segments_to_proto(segments))
