"""Wiring of the generator gateway: its config, servicers and lifecycle."""

from __future__ import annotations

from clipmesh.generator.config import GeneratorConfig
from clipmesh.generator.servicer import GeneratorServicer
from clipmesh.runtime.server import Application, GrpcService
from clipmesh_api.generator.v1 import generator_pb2, generator_pb2_grpc


class GeneratorApp(Application):
    """The generator gateway as the runtime runs it."""

    def __init__(self, config: GeneratorConfig) -> None:
        self.config = config
        self._servicer = GeneratorServicer()

    def grpc_services(self) -> list[GrpcService]:
        return [GrpcService.generated(generator_pb2, generator_pb2_grpc, self._servicer)]


def create_app(config: GeneratorConfig) -> GeneratorApp:
    """Builds the generator application from its config."""
    return GeneratorApp(config)
