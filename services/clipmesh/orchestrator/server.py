"""Wiring of the orchestrator: its config, servicers and lifecycle."""

from __future__ import annotations

from clipmesh.orchestrator.config import OrchestratorConfig
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
        self._services = [
            GrpcService.generated(search_pb2, search_pb2_grpc, SearchServicer()),
            GrpcService.generated(ingest_pb2, ingest_pb2_grpc, IngestServicer()),
            GrpcService.generated(previs_pb2, previs_pb2_grpc, PrevisServicer()),
        ]

    def grpc_services(self) -> list[GrpcService]:
        return self._services


def create_app(config: OrchestratorConfig) -> OrchestratorApp:
    """Builds the orchestrator application from its config."""
    return OrchestratorApp(config)
