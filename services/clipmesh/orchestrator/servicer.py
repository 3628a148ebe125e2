"""gRPC servicers of the orchestrator's public API: translate proto ↔ domain, nothing else."""

from __future__ import annotations

import time

import grpc

from clipmesh.orchestrator.cache import QueryCache
from clipmesh.orchestrator.config import OrchestratorConfig
from clipmesh.orchestrator.dependencies import Dependencies, translate
from clipmesh.orchestrator.ingest import IngestPipeline
from clipmesh.orchestrator.previs.engine import PrevisEngine
from clipmesh.orchestrator.search import SearchEngine
from clipmesh.runtime.errors import Unavailable
from clipmesh_api.index.v1 import index_pb2
from clipmesh_api.orchestrator.v1 import (
    ingest_pb2,
    ingest_pb2_grpc,
    previs_pb2,
    previs_pb2_grpc,
    search_pb2_grpc,
)

LIBRARY_TIMEOUT_S = 10.0


def _deadline(context: grpc.aio.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def _started(value):
    if value is None:
        raise Unavailable("the orchestrator is still starting")
    return value


class SearchServicer(search_pb2_grpc.SearchServiceServicer):
    """Serves SearchService from a `SearchEngine`, set once the service has started."""

    def __init__(self) -> None:
        self.engine: SearchEngine | None = None

    async def SearchVideos(self, request, context):
        return await _started(self.engine).search(request, call_deadline=_deadline(context))


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):
    """Serves IngestService: ingest, and the library's videos."""

    def __init__(self, config: OrchestratorConfig, cache: QueryCache) -> None:
        self.deps: Dependencies | None = None  # set once the service has started
        self.pipeline: IngestPipeline | None = None
        self._config = config
        self._cache = cache

    async def IngestVideos(self, request, context):
        async for response in _started(self.pipeline).run(request):
            yield response

    @property
    def _deps(self) -> Dependencies:
        return _started(self.deps)

    def _collection(self, name: str) -> str:
        return name or self._config.default_collection

    async def DeleteVideos(self, request, context):
        collection = self._collection(request.collection)
        try:
            response = await self._deps.index.DeleteVideos(
                index_pb2.DeleteVideosRequest(collection=collection, video_ids=request.video_ids),
                timeout=LIBRARY_TIMEOUT_S,
            )
        except grpc.RpcError as error:
            raise translate(error, "index") from error
        self._cache.invalidate(collection)
        return ingest_pb2.DeleteVideosResponse(
            deleted_count=response.deleted_count, not_found_ids=response.not_found_ids
        )

    async def GetVideo(self, request, context):
        try:
            response = await self._deps.index.GetVideo(
                index_pb2.GetVideoRequest(
                    collection=self._collection(request.collection), video_id=request.video_id
                ),
                timeout=LIBRARY_TIMEOUT_S,
            )
        except grpc.RpcError as error:
            raise translate(error, "index") from error
        return ingest_pb2.GetVideoResponse(video=response.video, segments=response.segments)

    async def ListVideos(self, request, context):
        try:
            response = await self._deps.index.ListVideos(
                index_pb2.ListVideosRequest(
                    collection=self._collection(request.collection),
                    filter=request.filter,
                    page=request.page,
                ),
                timeout=LIBRARY_TIMEOUT_S,
            )
        except grpc.RpcError as error:
            raise translate(error, "index") from error
        return ingest_pb2.ListVideosResponse(videos=response.videos, page=response.page)


class PrevisServicer(previs_pb2_grpc.PrevisServiceServicer):
    """Serves PrevisService from a `PrevisEngine`, set once the service has started."""

    def __init__(self) -> None:
        self.engine: PrevisEngine | None = None

    async def CreateProject(self, request, context):
        async for progress in _started(self.engine).create(request):
            yield previs_pb2.CreateProjectResponse(progress=progress)

    async def ReviewShot(self, request, context):
        async for progress in _started(self.engine).review(request):
            yield previs_pb2.ReviewShotResponse(progress=progress)

    async def GetProject(self, request, context):
        return previs_pb2.GetProjectResponse(project=_started(self.engine).get(request.project_id))

    async def ExportCut(self, request, context):
        return previs_pb2.ExportCutResponse(cut=_started(self.engine).export(request.project_id))
