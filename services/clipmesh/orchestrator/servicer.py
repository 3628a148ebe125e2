"""gRPC servicers of the orchestrator's public API: translate proto ↔ domain, nothing else."""

from __future__ import annotations

import time

import grpc

from clipmesh.index.filters import parse_filter
from clipmesh.media.records import VideoProgress
from clipmesh.orchestrator import convert, requests
from clipmesh.orchestrator.account import Accounts
from clipmesh.orchestrator.config import OrchestratorConfig
from clipmesh.orchestrator.ingest import IngestPipeline
from clipmesh.orchestrator.library import VideoLibrary
from clipmesh.orchestrator.search import SearchEngine
from clipmesh.runtime.access import current_principal
from clipmesh.runtime.errors import Unavailable
from clipmesh_api.orchestrator.v1 import (
    account_pb2_grpc,
    ingest_pb2,
    ingest_pb2_grpc,
    search_pb2_grpc,
)


def call_deadline(context: grpc.aio.ServicerContext) -> float | None:
    """The caller's deadline as a `time.monotonic()` instant (None: no deadline)."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def started(value):
    """`value`, or UNAVAILABLE while the service has not finished starting."""
    if value is None:
        raise Unavailable("the orchestrator is still starting")
    return value


class SearchServicer(search_pb2_grpc.SearchServiceServicer):
    """Serves SearchService from a `SearchEngine`, set once the service has started."""

    def __init__(self, config: OrchestratorConfig) -> None:
        self._config = config
        self.engine: SearchEngine | None = None

    async def SearchVideos(self, request, context):
        query = requests.parse_search(request, self._config)
        answer = await started(self.engine).search(query, call_deadline=call_deadline(context))
        return convert.search_response_to_proto(answer)


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):
    """Serves IngestService: ingest, and the library's videos."""

    def __init__(self, config: OrchestratorConfig) -> None:
        self._config = config
        self.pipeline: IngestPipeline | None = None  # both set once the service has started
        self.library: VideoLibrary | None = None

    def _collection(self, name: str) -> str:
        return name or self._config.default_collection

    async def IngestVideos(self, request, context):
        batch = requests.parse_ingest(request, self._config)
        async for event in started(self.pipeline).run(batch, current_principal()):
            if isinstance(event, VideoProgress):
                yield convert.progress_to_proto(event)
            else:
                yield convert.summary_to_proto(event)

    async def DeleteVideos(self, request, context):
        deleted, missing = await started(self.library).delete(
            self._collection(request.collection), request.video_ids
        )
        return ingest_pb2.DeleteVideosResponse(deleted_count=deleted, not_found_ids=missing)

    async def GetVideo(self, request, context):
        collection = self._collection(request.collection)
        stored = await started(self.library).get(collection, request.video_id)
        return convert.video_response(collection, stored)

    async def ListVideos(self, request, context):
        collection = self._collection(request.collection)
        video_filter = parse_filter(request.filter) if request.HasField("filter") else None
        page = await started(self.library).list(
            collection, video_filter, request.page.page_size, request.page.page_token
        )
        return convert.videos_response(collection, page)


class AccountServicer(account_pb2_grpc.AccountServiceServicer):
    """Serves AccountService: who the caller is."""

    def __init__(self) -> None:
        self.accounts: Accounts | None = None  # set once the service has started

    async def GetCaller(self, request, context):
        info = await started(self.accounts).describe(current_principal())
        return convert.caller_info_to_proto(info)
