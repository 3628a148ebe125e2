"""gRPC servicer of the encoder: translates proto ↔ domain, nothing else."""

from __future__ import annotations

import time

import grpc
import numpy as np

from clipmesh.encoder.encoding import Encoder
from clipmesh.encoder.weights import WeightsSpec
from clipmesh.runtime.errors import Unavailable
from clipmesh_api.encoder.v1 import encoder_pb2, encoder_pb2_grpc

_WEIGHTS_SOURCE = {
    "checkpoint": encoder_pb2.WEIGHTS_SOURCE_CHECKPOINT,
    "pretrained": encoder_pb2.WEIGHTS_SOURCE_PRETRAINED_TAG,
    "random": encoder_pb2.WEIGHTS_SOURCE_RANDOM_INIT,
}


def _deadline(context: grpc.aio.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def _interactive(priority: int) -> bool:
    return priority != encoder_pb2.PRIORITY_BATCH


def _embeddings(
    vectors: np.ndarray, truncated: list[bool] | None = None
) -> list[encoder_pb2.Embedding]:
    flags = truncated or [False] * len(vectors)
    return [
        encoder_pb2.Embedding(vector=row.tolist(), truncated=flag)
        for row, flag in zip(vectors, flags, strict=True)
    ]


def weights_ref(weights: WeightsSpec) -> str:
    """The weights reference as `GetModelInfo` reports it."""
    return f"seed={weights.ref}" if weights.is_random else weights.ref


class EncoderServicer(encoder_pb2_grpc.EncoderServiceServicer):
    """Serves EncoderService from an `Encoder`, set once the model has loaded."""

    def __init__(self, encoder: Encoder | None = None) -> None:
        self.encoder = encoder

    @property
    def _encoder(self) -> Encoder:
        if self.encoder is None:
            raise Unavailable("the encoder model is still loading")
        return self.encoder

    async def EmbedImages(self, request, context):
        vectors = await self._encoder.embed_images(
            request.images, deadline=_deadline(context), interactive=_interactive(request.priority)
        )
        info = self._encoder.model.info
        return encoder_pb2.EmbedImagesResponse(
            model_id=info.model_id, dimension=info.dimension, embeddings=_embeddings(vectors)
        )

    async def EmbedTexts(self, request, context):
        result = await self._encoder.embed_texts(
            request.texts, deadline=_deadline(context), interactive=_interactive(request.priority)
        )
        info = self._encoder.model.info
        return encoder_pb2.EmbedTextsResponse(
            model_id=info.model_id,
            dimension=info.dimension,
            embeddings=_embeddings(result.vectors, result.truncated),
            warnings=result.warnings,
        )

    async def GetModelInfo(self, request, context):
        info, config = self._encoder.model.info, self._encoder.config
        return encoder_pb2.GetModelInfoResponse(
            model_id=info.model_id,
            model_name=info.model_name,
            weights_source=_WEIGHTS_SOURCE[info.weights.kind],
            weights_ref=weights_ref(info.weights),
            random_weights=info.weights.is_random,
            device=info.device,
            precision=info.precision,
            dimension=info.dimension,
            image_size=info.image_size,
            context_length=info.context_length,
            max_batch=config.max_batch,
            max_items_per_request=config.max_items_per_request,
            max_image_bytes=int(config.max_image_mb * 1024 * 1024),
            max_image_pixels=int(config.max_image_megapixels * 1_000_000),
            text_languages=info.text_languages,
            tokenizer=info.tokenizer,
        )
