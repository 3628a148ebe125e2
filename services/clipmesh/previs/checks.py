"""The quality check of one clip, with the encoder's help, as a `QualityScores` message.

Sharpness, flicker and smoothness come from the pixels (`quality.score_clip`, in a worker
thread). Text–video match is the mean cosine between the prompt's text embedding and the
embeddings of frames spread over the clip, both from the encoder service, so it is measured in
the same space the library is searched in.

When the encoder runs with random weights (tests, the offline demo) the cosine means nothing:
it is still computed and returned, but not enforced, and the project says so in its notices.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
from pathlib import Path

import numpy as np
from PIL import Image

from clipmesh.encoder.client import EncoderClient
from clipmesh.previs.quality import (
    QualityThresholds,
    sample_frames,
    score_clip,
    text_video_match,
)
from clipmesh.previs.records import QualityScores

MATCH_FRAMES = 4
MATCH_FRAME_SIDE = 384  # the encoder centre-crops to its input size (224 px for ViT-B-32)
CALL_TIMEOUT_S = 60.0
RANDOM_WEIGHTS_NOTICE = (
    "text_match is reported but not enforced: the encoder's weights are random ({ref}), so "
    "text–video cosines carry no meaning"
)


class ClipChecker:
    """Scores clips against thresholds.

    Args:
        encoder: Embeds prompts and frames.
        thresholds: The limits a clip must meet.
    """

    def __init__(self, encoder: EncoderClient, thresholds: QualityThresholds) -> None:
        self._encoder = encoder
        self.thresholds = thresholds

    async def weights_notice(self) -> str:
        """A notice when the encoder's weights are random (text match not enforced), else ""."""
        info = await self._encoder.model_info(timeout_s=CALL_TIMEOUT_S)
        return RANDOM_WEIGHTS_NOTICE.format(ref=info.weights_ref) if info.random_weights else ""

    async def embed_text(self, text: str) -> np.ndarray:
        """The encoder's embedding of `text` (a prompt)."""
        embeddings = await self._encoder.embed_texts(
            [text], interactive=False, timeout_s=CALL_TIMEOUT_S
        )
        return embeddings.vectors[0]

    async def embed_images(self, images: list[bytes]) -> np.ndarray:
        """The encoder's embeddings of encoded images, one row each."""
        embeddings = await self._encoder.embed_images(
            images, interactive=False, timeout_s=CALL_TIMEOUT_S
        )
        return embeddings.vectors

    async def check(
        self, clip: Path, text_vector: np.ndarray, *, enforce_text_match: bool
    ) -> QualityScores:
        """Scores `clip`; `passed` says whether every enforced score met its threshold.

        Raises:
            InvalidArgument: The clip does not decode.
            ServiceError: The encoder failed.
        """
        pixels, frames = await asyncio.gather(
            asyncio.to_thread(score_clip, clip),
            asyncio.to_thread(_match_frames, clip),
        )
        match = text_video_match(text_vector, await self.embed_images(frames))
        limits = self.thresholds
        if not enforce_text_match:
            limits = dataclasses.replace(limits, min_text_match=float("-inf"))
        scored = dataclasses.replace(pixels, text_match=match)
        passed, failures = limits.passes(scored)
        return QualityScores(
            sharpness=scored.sharpness,
            flicker=scored.flicker,
            smoothness=scored.smoothness,
            text_match=match,
            passed=passed,
            failures=list(failures),
            text_match_enforced=enforce_text_match,
        )


def _match_frames(clip: Path) -> list[bytes]:
    """JPEGs of frames spread over the clip, for the text–video match."""
    encoded = []
    for frame in sample_frames(clip, max_frames=MATCH_FRAMES, max_side=MATCH_FRAME_SIDE):
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=90)
        encoded.append(buffer.getvalue())
    return encoded
