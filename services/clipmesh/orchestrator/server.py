"""Wiring of the orchestrator: dependencies, cache, search, ingest, previs, servicers."""

from __future__ import annotations

from clipmesh.orchestrator.cache import QueryCache
from clipmesh.orchestrator.config import OrchestratorConfig
from clipmesh.orchestrator.dependencies import Dependencies
from clipmesh.orchestrator.ingest import IngestPipeline
from clipmesh.orchestrator.previs.engine import PrevisEngine
from clipmesh.orchestrator.search import SearchEngine
from clipmesh.orchestrator.servicer import IngestServicer, PrevisServicer, SearchServicer
from clipmesh.runtime.server import Application, GrpcService
from clipmesh_api.orchestrator.v1 import (
    ingest_pb2,
    ingest_pb2_grpc,
    previs_pb2,
    previs_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
)


class OrchestratorApp(Application):
    """The orchestrator as the runtime runs it."""

    def __init__(self, config: OrchestratorConfig) -> None:
        self.config = config
        self.deps: Dependencies | None = None
        self.cache = QueryCache(config.cache_entries, config.cache_ttl_s)
        self._search = SearchServicer()
        self._ingest = IngestServicer(config, self.cache)
        self._previs = PrevisServicer()
        self._services = [
            GrpcService.generated(search_pb2, search_pb2_grpc, self._search),
            GrpcService.generated(ingest_pb2, ingest_pb2_grpc, self._ingest),
        ]
        if config.previs_enabled:
            self._services.append(GrpcService.generated(previs_pb2, previs_pb2_grpc, self._previs))

    def grpc_services(self) -> list[GrpcService]:
        return self._services

    async def start(self) -> None:
        # Channels are made on the serving event loop; dependencies may still be starting:
        # calls to them fail fast with UNAVAILABLE until they answer.
        self.deps = Dependencies(self.config)
        self._search.engine = SearchEngine(self.deps, self.config, self.cache)
        self._ingest.deps = self.deps
        self._ingest.pipeline = IngestPipeline(self.deps, self.config, self.cache)
        if self.config.previs_enabled:
            self._previs.engine = PrevisEngine(self.deps, self.config, self._ingest.pipeline)

    async def stop(self) -> None:
        if self._previs.engine is not None:
            await self._previs.engine.close()
        if self.deps is not None:
            await self.deps.close()


def create_app(config: OrchestratorConfig) -> OrchestratorApp:
    """Builds the orchestrator application from its config."""
    return OrchestratorApp(config)
