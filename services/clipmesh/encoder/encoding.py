"""The encoder's core: validated requests in, L2-normalised vectors out, batched across callers.

Requests are validated and preprocessed as they arrive (on a small thread pool, so decoding
the next request overlaps the current batch's inference), then their items join the image or
text batcher. Bad input fails the whole request, naming the first bad item: an embedding
request is all or nothing, so callers never have to match partial results to inputs.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from clipmesh.encoder import metrics
from clipmesh.encoder.batcher import DynamicBatcher
from clipmesh.encoder.config import EncoderConfig
from clipmesh.encoder.images import ImageLimits, PixelTransform, decode_image
from clipmesh.encoder.model import EncoderModel
from clipmesh.encoder.texts import tokenize_texts
from clipmesh.runtime.errors import InvalidArgument
from clipmesh.runtime.languages import language_warning

_MIB = 1024 * 1024


@dataclass(frozen=True)
class TextEmbeddings:
    """Vectors of a batch of texts, which texts were cut to the model's context, and warnings
    naming texts in a script the text tower was not trained on."""

    vectors: np.ndarray
    truncated: list[bool]
    warnings: list[str] = field(default_factory=list)


class ImagePreprocessor:
    """Encoded images → the model's input pixels: the one way every embedding of an image
    starts, in the encoder service and in bulk ingest's embedding actors alike.

    Args:
        model: The loaded model (its input size and preprocessing configuration).
        limits: Caps on each image's bytes and pixels.
    """

    def __init__(self, model: EncoderModel, limits: ImageLimits) -> None:
        self._side = model.info.image_size
        self._limits = limits
        transform = PixelTransform.from_config(model.preprocess_config)
        # Exotic preprocessing (squash, letterbox) falls back to open_clip's own pipeline.
        self._to_pixels = transform or (lambda image: model.preprocess(image).numpy())

    def __call__(self, images: Sequence[bytes]) -> list[np.ndarray]:
        """One (3, H, W) float32 array per image, in order.

        Raises:
            InvalidArgument: naming the first bad image (`images[i]`).
        """
        return [
            self._to_pixels(decode_image(data, index, self._limits, self._side))
            for index, data in enumerate(images)
        ]


def inference_thread() -> ThreadPoolExecutor:
    """The one thread on which the encoder loads its model and runs every batch.

    One thread, not just one at a time: PyTorch's CPU kernels run on GNU OpenMP, which gives
    each thread that starts parallel work a team of worker threads of its own. Once the
    process holds more such workers than it has cores (a model loaded on one thread and run
    on another is enough), OpenMP "throttles" them: a worker waiting for the next parallel
    region sleeps almost at once instead of spinning, and each of the hundreds of regions in
    a forward pass pays for waking it. Measured on 2 cores: ViT-B-32 at batch 1 took 58–70 ms
    loaded on one thread and run on another, against 41–51 ms in a bare process, 24,000
    context switches in 10 s; loaded and run on this one thread, served matches bare
    (docs/benchmarks.md, "Encoder: served against bare").
    """
    return ThreadPoolExecutor(1, "encoder-inference")


def image_limits(config: EncoderConfig) -> ImageLimits:
    """The caps on one image that `config` sets."""
    return ImageLimits(
        max_bytes=int(config.max_image_mb * _MIB),
        max_pixels=int(config.max_image_megapixels * 1_000_000),
    )


class Encoder:
    """Embeds images and texts with one model, batching across concurrent requests.

    Args:
        model: The loaded model.
        config: Limits and batching settings.
        inference: The thread the model was loaded on (`inference_thread()`), where its
            batches run; the encoder shuts it down on close.
    """

    def __init__(
        self, model: EncoderModel, config: EncoderConfig, inference: ThreadPoolExecutor
    ) -> None:
        self.model = model
        self.config = config
        self._preprocess = ImagePreprocessor(model, image_limits(config))
        self._preprocess_pool = ThreadPoolExecutor(config.preprocess_threads, "encoder-preprocess")
        self._inference_pool = inference
        batching = {
            "max_batch": config.max_batch,
            "max_queue_delay_s": config.max_queue_delay_ms / 1000,
            "max_queue_items": config.max_queue_items,
            # At least one place while the share is above 0, never the whole batch.
            "background_slots": min(
                config.max_batch - 1,
                math.ceil(config.max_batch * config.background_min_share),
            ),
        }
        self.images = DynamicBatcher("image", self._run_images, self._inference_pool, **batching)
        # Images accepted and not yet queued (decoding), and the time one takes: admission
        # counts them, or a burst would wait in the decode pool past its deadline unrefused.
        self._decoding = 0
        self._decode_s_per_image = 0.0
        self.texts = DynamicBatcher("text", self._run_texts, self._inference_pool, **batching)

    def start(self) -> None:
        """Starts both batchers on the running event loop."""
        self.images.start()
        self.texts.start()

    async def close(self) -> None:
        """Stops batching and releases the worker threads."""
        await self.images.close()
        await self.texts.close()
        self._preprocess_pool.shutdown(wait=False, cancel_futures=True)
        self._inference_pool.shutdown(wait=True)

    async def embed_images(
        self, images: Sequence[bytes], *, deadline: float | None = None, interactive: bool = True
    ) -> np.ndarray:
        """Embeds encoded images; returns an (N, D) float32 array in request order.

        Raises:
            InvalidArgument: no images, too many, too many bytes, or a bad image (named).
            ResourceExhausted: the queue is full.
            DeadlineExceeded: the deadline passed while queued.
        """
        self._check_count("images", len(images))
        total = sum(len(image) for image in images)
        if total > self.config.max_request_mb * _MIB:
            raise InvalidArgument(
                f"images total {total} bytes; the limit per request is "
                f"{self.config.max_request_mb} MiB",
                field="images",
                reason="REQUEST_TOO_LARGE",
            )
        admitted = None
        if deadline is not None:
            decode_s = (self._decoding + len(images)) * self._decode_s_per_image
            admitted = self.images.admit(
                len(images),
                interactive=interactive,
                deadline=deadline,
                now=time.monotonic(),
                pending=self._decoding,
                before_s=decode_s / self.config.preprocess_threads,
            )
        loop = asyncio.get_running_loop()
        self._decoding += len(images)
        try:
            pixels, decode_s = await loop.run_in_executor(
                self._preprocess_pool, self._timed_preprocess, images
            )
        except InvalidArgument:
            metrics.REJECTED.labels("image", "invalid").inc(len(images))
            raise
        finally:
            self._decoding -= len(images)
        metrics.PREPROCESS_SECONDS.labels("image").observe(decode_s)
        self._decode_s_per_image = 0.8 * self._decode_s_per_image + 0.2 * decode_s / len(images)
        # Admitted before decoding: measured from there, and not asked again once decoded.
        return await self.images.submit(
            pixels, deadline=deadline, interactive=interactive, admitted=admitted
        )

    async def embed_texts(
        self, texts: Sequence[str], *, deadline: float | None = None, interactive: bool = True
    ) -> TextEmbeddings:
        """Embeds texts; longer than the model's context they are truncated and flagged.

        Raises:
            InvalidArgument: no texts, too many, or an empty or overlong text (named).
            ResourceExhausted: the queue is full.
            DeadlineExceeded: the deadline passed while queued.
        """
        self._check_count("texts", len(texts))
        try:
            tokens, truncated = tokenize_texts(
                texts,
                self.model.tokenizer,
                context_length=self.model.info.context_length,
                max_chars=self.config.max_text_chars,
            )
        except InvalidArgument:
            metrics.REJECTED.labels("text", "invalid").inc(len(texts))
            raise
        vectors = await self.texts.submit(list(tokens), deadline=deadline, interactive=interactive)
        languages = self.model.info.text_languages
        warnings = [
            warning
            for index, text in enumerate(texts)
            if (warning := language_warning(index, text, languages)) is not None
        ]
        if warnings:
            metrics.TEXT_LANGUAGE_WARNINGS.inc(len(warnings))
        return TextEmbeddings(vectors, truncated, warnings)

    def _check_count(self, field: str, count: int) -> None:
        if count == 0:
            raise InvalidArgument(
                f"{field} is empty; send at least one item", field=field, reason="EMPTY_REQUEST"
            )
        if count > self.config.max_items_per_request:
            raise InvalidArgument(
                f"{field} has {count} items; the limit per request is "
                f"{self.config.max_items_per_request}",
                field=field,
                reason="TOO_MANY_ITEMS",
            )

    def _timed_preprocess(self, images: Sequence[bytes]) -> tuple[list[np.ndarray], float]:
        """The images' pixels, and the seconds decoding them took (not waiting for the pool)."""
        started = time.perf_counter()
        pixels = self._preprocess(images)
        return pixels, time.perf_counter() - started

    def _run_images(self, pixels: list[np.ndarray]) -> np.ndarray:
        return self.model.embed_images(torch.from_numpy(np.stack(pixels)))

    def _run_texts(self, tokens: list[torch.Tensor]) -> np.ndarray:
        return self.model.embed_tokens(torch.stack(tokens))
