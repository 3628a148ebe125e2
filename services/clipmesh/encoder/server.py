"""Wiring of the encoder service: load the model, start the batchers, serve."""

from __future__ import annotations

import asyncio
import functools

from clipmesh.encoder import metrics
from clipmesh.encoder.config import EncoderConfig
from clipmesh.encoder.encoding import Encoder, inference_thread
from clipmesh.encoder.model import load_configured_model
from clipmesh.encoder.servicer import EncoderServicer, weights_ref
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
        # Loaded on the thread that will run it: see `inference_thread`.
        inference = inference_thread()
        load = functools.partial(
            load_configured_model, self.config, threads=self.config.inference_threads
        )
        try:
            model = await asyncio.get_running_loop().run_in_executor(inference, load)
        except BaseException:
            inference.shutdown(wait=False)
            raise
        info = model.info
        metrics.MODEL_INFO.info(
            {
                "model": info.model_name,
                "model_id": info.model_id,
                "weights": info.weights.kind,
                "weights_ref": weights_ref(info.weights),
                "device": info.device,
                "precision": info.precision,
                "text_languages": ",".join(info.text_languages),
                "tokenizer": info.tokenizer,
            }
        )
        self.encoder = Encoder(model, self.config, inference)
        self.encoder.start()
        self._servicer.encoder = self.encoder

    async def stop(self) -> None:
        if self.encoder is not None:
            await self.encoder.close()


def create_app(config: EncoderConfig) -> EncoderApp:
    """Builds the encoder application from its config."""
    return EncoderApp(config)
