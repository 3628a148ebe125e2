"""Wiring of the encoder service: its config, servicers and lifecycle."""

from __future__ import annotations

from clipmesh.encoder.config import EncoderConfig
from clipmesh.encoder.servicer import EncoderServicer
from clipmesh.runtime.server import Application, GrpcService
from clipmesh_api.encoder.v1 import encoder_pb2, encoder_pb2_grpc


class EncoderApp(Application):
    """The encoder as the runtime runs it."""

    def __init__(self, config: EncoderConfig) -> None:
        self.config = config
        self._servicer = EncoderServicer()

    def grpc_services(self) -> list[GrpcService]:
        return [GrpcService.generated(encoder_pb2, encoder_pb2_grpc, self._servicer)]


def create_app(config: EncoderConfig) -> EncoderApp:
    """Builds the encoder application from its config."""
    return EncoderApp(config)
