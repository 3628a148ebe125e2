"""Wiring of the index service: its config, servicers and lifecycle."""

from __future__ import annotations

from clipmesh.index.config import IndexConfig
from clipmesh.index.servicer import IndexServicer
from clipmesh.runtime.server import Application, GrpcService
from clipmesh_api.index.v1 import index_pb2, index_pb2_grpc


class IndexApp(Application):
    """The index as the runtime runs it."""

    def __init__(self, config: IndexConfig) -> None:
        self.config = config
        self._servicer = IndexServicer()

    def grpc_services(self) -> list[GrpcService]:
        return [GrpcService.generated(index_pb2, index_pb2_grpc, self._servicer)]


def create_app(config: IndexConfig) -> IndexApp:
    """Builds the index application from its config."""
    return IndexApp(config)
