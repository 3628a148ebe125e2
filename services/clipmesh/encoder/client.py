"""`EncoderClient`: what other services ask of the encoder, in domain values.

Vectors come back as float32 arrays, one row per item, in request order; errors come back as
the calling service's own errors (`runtime.dependencies.translate`), with the encoder's item
names (`images[3]`) renamed to the caller's when it gives `names`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clipmesh.runtime.dependencies import DependencyClient
from clipmesh_api.encoder.v1 import encoder_pb2, encoder_pb2_grpc


@dataclass(frozen=True)
class Embeddings:
    """Vectors of one request.

    Attributes:
        model_id: The model that made them (architecture and weights).
        vectors: float32 array of shape (n, dimension), rows L2-normalised.
        truncated: Per text, whether it was cut to the model's context (all False for images).
        warnings: Per text in a script the text tower was not trained on, a warning naming it
            by the caller's name for it.
    """

    model_id: str
    vectors: np.ndarray
    truncated: tuple[bool, ...]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class EncoderInfo:
    """What the encoder runs, as `GetModelInfo` reports it.

    Attributes:
        model_id: Architecture and weights, e.g. "ViT-B-32/random-seed-0".
        weights_ref: The checkpoint, pretrained tag or seed.
        random_weights: True when the weights are a seeded random initialisation.
        dimension: Length of every vector.
        text_languages: Languages the text tower was trained on (ISO 639-1 codes, or
            "multilingual"), as the operator declared them.
    """

    model_id: str
    weights_ref: str
    random_weights: bool
    dimension: int
    text_languages: tuple[str, ...] = ("en",)


class EncoderClient(DependencyClient):
    """Calls the encoder service."""

    service = "encoder"
    stub_type = encoder_pb2_grpc.EncoderServiceStub

    async def embed_images(
        self,
        images: Sequence[bytes],
        *,
        interactive: bool,
        timeout_s: float,
        names: Sequence[str] = (),
    ) -> Embeddings:
        """Embeds encoded images (JPEG, PNG, WebP) in one request.

        Args:
            images: The encoded images.
            interactive: True for work someone waits for (search), False for background
                work (ingest, checks), which the encoder's batcher serves after it.
            timeout_s: Deadline of the call.
            names: What the caller calls each image, for errors (`parts[2].image`).
        """
        request = encoder_pb2.EmbedImagesRequest(images=images, priority=_priority(interactive))
        with self.errors(_renames("images", names)):
            response = await self._stub.EmbedImages(request, timeout=timeout_s)
        return _embeddings(response)

    async def embed_texts(
        self,
        texts: Sequence[str],
        *,
        interactive: bool,
        timeout_s: float,
        names: Sequence[str] = (),
    ) -> Embeddings:
        """Embeds texts in one request; see `embed_images` for the arguments."""
        request = encoder_pb2.EmbedTextsRequest(texts=texts, priority=_priority(interactive))
        renames = _renames("texts", names)
        with self.errors(renames):
            response = await self._stub.EmbedTexts(request, timeout=timeout_s)
        warnings = tuple(_renamed(warning, renames) for warning in response.warnings)
        return _embeddings(response, warnings)

    async def model_info(self, *, timeout_s: float) -> EncoderInfo:
        """What the encoder runs."""
        with self.errors():
            info = await self._stub.GetModelInfo(
                encoder_pb2.GetModelInfoRequest(), timeout=timeout_s
            )
        return EncoderInfo(
            model_id=info.model_id,
            weights_ref=info.weights_ref,
            random_weights=info.random_weights,
            dimension=info.dimension,
            # An encoder older than this field reports none: its tower is an English one.
            text_languages=tuple(info.text_languages) or ("en",),
        )


def _priority(interactive: bool) -> int:
    return encoder_pb2.PRIORITY_INTERACTIVE if interactive else encoder_pb2.PRIORITY_BATCH


def _renames(plural: str, names: Sequence[str]) -> dict[str, str]:
    return {f"{plural}[{index}]": name for index, name in enumerate(names)}


def _embeddings(response, warnings: tuple[str, ...] = ()) -> Embeddings:
    rows = [embedding.vector for embedding in response.embeddings]
    vectors = (
        np.array(rows, dtype=np.float32) if rows else np.zeros((0, response.dimension), np.float32)
    )
    return Embeddings(
        model_id=response.model_id,
        vectors=vectors,
        truncated=tuple(embedding.truncated for embedding in response.embeddings),
        warnings=warnings,
    )


def _renamed(warning: str, renames: dict[str, str]) -> str:
    """The warning with the encoder's name of its item (`texts[0]`) replaced by the caller's."""
    item, sep, rest = warning.partition(" ")
    return f"{renames[item]}{sep}{rest}" if item in renames else warning
