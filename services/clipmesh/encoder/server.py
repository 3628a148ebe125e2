"""Wiring of the encoder service: load the model, start the batchers, serve."""

from __future__ import annotations

import asyncio

from clipmesh.encoder import metrics
from clipmesh.encoder.config import EncoderConfig
from clipmesh.encoder.encoding import Encoder
from clipmesh.encoder.model import INT8_CACHE_DIR, load_model
from clipmesh.encoder.servicer import EncoderServicer, weights_ref
from clipmesh.encoder.weights import WeightsSpec
from clipmesh.runtime.server import Application, GrpcService
from clipmesh_api.encoder.v1 import encoder_pb2, encoder_pb2_grpc


class EncoderApp(Application):
    """The encoder as the runtime runs it: the model loads in `start()`, off the event loop."""

    def __init__(self, config: EncoderConfig) -> None:
        self.config = config
        self.encoder: Encoder | None = None
        self._servicer = EncoderServicer()

    def grpc_services(self) -> list[GrpcService]:
        return [GrpcService.generated(encoder_pb2, encoder_pb2_grpc, self._servicer)]

    async def start(self) -> None:
        model = await asyncio.to_thread(
            load_model,
            self.config.model,
            WeightsSpec.parse(self.config.weights),
            device=self.config.device,
            precision=self.config.precision,
            threads=self.config.inference_threads,
            int8_cache_dir=self.config.data_dir / INT8_CACHE_DIR,
        )
        info = model.info
        metrics.MODEL_INFO.info(
            {
                "model": info.model_name,
                "model_id": info.model_id,
                "weights": info.weights.kind,
                "weights_ref": weights_ref(info.weights),
                "device": info.device,
                "precision": info.precision,
            }
        )
        self.encoder = Encoder(model, self.config)
        self.encoder.start()
        self._servicer.encoder = self.encoder

    async def stop(self) -> None:
        if self.encoder is not None:
            await self.encoder.close()


def create_app(config: EncoderConfig) -> EncoderApp:
    """Builds the encoder application from its config."""
    return EncoderApp(config)
