"""The work a bulk ingest's Ray actors do, in plain classes a test can run without Ray.

`VideoPreparer` is the CPU stage of one file: open it (a local path under the roots, or an
object streamed into the spool), hash it, skip it when the index already holds it, then probe,
plan segments, extract keyframes and write thumbnails with `media.analysis` — the steps
IngestVideos runs. `KeyframeEmbedder` embeds keyframes with the model in this process (the
encoder's own loading, preprocessing and forward pass) or through the encoder service.
Failures are per file: a bad file becomes a FAILED record with its reason, never an exception
that would fail the worker's whole batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import numpy as np
import torch

from clipmesh.bulk.config import BulkIngestConfig
from clipmesh.bulk.records import Outcome, PreparedVideo
from clipmesh.bulk.sources import MediaFetcher, SourceFile
from clipmesh.encoder.client import EncoderClient
from clipmesh.encoder.config import EncoderConfig
from clipmesh.encoder.encoding import ImagePreprocessor, image_limits
from clipmesh.encoder.model import load_configured_model
from clipmesh.index.client import IndexClient
from clipmesh.media.analysis import (
    ContentId,
    content_id,
    keyframes,
    plan_video,
    save_thumbnails,
    video_meta,
)
from clipmesh.media.probe import Deadline
from clipmesh.runtime.dependencies import DependencyChannels
from clipmesh.runtime.errors import ServiceError

log = logging.getLogger(__name__)

T = TypeVar("T")
ENCODER_REQUEST_LIMIT = 256  # the encoder's max_items_per_request default
INFERENCE_THREADS = 1


class ServiceCalls:
    """The mesh's typed clients, called from synchronous worker code on a private event loop
    (Ray runs a plain actor's methods on one thread, one call at a time)."""

    def __init__(self, config: BulkIngestConfig) -> None:
        self._loop = asyncio.new_event_loop()
        self._channels = self.run(self._open(config))
        self.index = IndexClient(self._channels, config.index_target)
        self.encoder = (
            EncoderClient(self._channels, config.encoder_target) if config.encoder_target else None
        )

    @staticmethod
    async def _open(config: BulkIngestConfig) -> DependencyChannels:
        return DependencyChannels(config)  # on the loop: it watches the TLS files from there

    def run(self, call: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(call)

    def close(self) -> None:
        self.run(self._channels.close())
        self._loop.close()


class VideoPreparer:
    """The CPU stage of one listed file.

    Args:
        config: Bounds, thumbnails directory, collection, segment window.
        roots: Directories local paths must resolve under.
        labels: Stored with every video.
        calls: Asks the index which videos it holds.
    """

    def __init__(
        self,
        config: BulkIngestConfig,
        roots: Sequence[Path],
        labels: Mapping[str, str],
        calls: ServiceCalls,
    ) -> None:
        self._config = config
        self._limits = config.media_limits()
        self._fetcher = MediaFetcher(config, roots)
        self._labels = dict(labels)
        self._calls = calls

    def prepare(self, file: SourceFile) -> PreparedVideo:
        """Everything of `file` but its vectors; a FAILED or DUPLICATE record when there is
        nothing to write."""
        started = time.monotonic()
        video = PreparedVideo(uri=file.uri, size_bytes=file.size_bytes)
        try:
            with self._fetcher.local_path(file) as path:
                identity = content_id(path, self._limits)
                video = msgspec.structs.replace(
                    video, video_id=identity.video_id, size_bytes=path.stat().st_size
                )
                video = self._analyse(file, path, identity, video)
        except ServiceError as error:
            video = video.failed(error.reason, error.message)
        except Exception as error:  # a defect, not the file: logged with its traceback
            log.exception("preparing %s failed", file.uri)
            video = video.failed("INTERNAL", f"internal error: {type(error).__name__}")
        return msgspec.structs.replace(video, worker_s=time.monotonic() - started)

    def _analyse(
        self, file: SourceFile, path: Path, identity: ContentId, video: PreparedVideo
    ) -> PreparedVideo:
        """Skips a video the index holds; plans, cuts and extracts the others."""
        config, limits = self._config, self._limits
        held = self._calls.index.has_video(
            config.collection, identity.video_id, timeout_s=config.call_timeout_s
        )
        if self._calls.run(held):
            return msgspec.structs.replace(video, outcome=Outcome.DUPLICATE)
        # One budget for every pass over the file, so a hostile one cannot hold a worker.
        deadline = Deadline(path, limits.max_decode_s)
        plan = plan_video(path, limits, deadline, max_window_s=config.max_window_s)
        images = keyframes(path, plan, limits, deadline)
        written = save_thumbnails(config.thumbnails_dir, identity.video_id, images)
        uri = file.uri if file.in_object_storage else path.as_uri()
        # The metadata exactly as IngestVideos writes it; the vectors come later.
        meta = video_meta(
            identity, plan.info, uri=uri, title=file.title, source="ingested", labels=self._labels
        )
        return msgspec.structs.replace(
            video,
            ready=True,
            outcome=Outcome.DONE,
            meta=meta,
            start_s=[s.start_s for s in plan.segments],
            end_s=[s.end_s for s in plan.segments],
            keyframe_s=[s.keyframe_s for s in plan.segments],
            thumbnails=[thumbnail for thumbnail, _ in written],
            keyframes=[jpeg for _, jpeg in written],
        )


class KeyframeEmbedder:
    """Embeds keyframes: with the model in this process, or through the encoder service.

    In this process the model is loaded by the encoder's own code from the encoder's settings
    (`CLIPMESH_ENCODER_*`), its images preprocessed by the encoder's own `ImagePreprocessor`,
    so a keyframe gets the vector the encoder service would give it.

    Each actor holds one CPU, so CPU inference runs on one thread (`INFERENCE_THREADS`): a
    worker per CPU scales further than threads inside one forward pass.

    Args:
        config: Batch size, the encoder's address when it is used.
        encoder: The model's settings (unused with an encoder address).
        calls: The encoder client, with an encoder address.
    """

    def __init__(
        self, config: BulkIngestConfig, encoder: EncoderConfig | None, calls: ServiceCalls
    ) -> None:
        self._config = config
        self._calls = calls
        self._model = None
        if calls.encoder is None:
            assert encoder is not None, "no encoder address, so the model's settings are needed"
            self._model = load_configured_model(encoder, threads=INFERENCE_THREADS)
            self._preprocess = ImagePreprocessor(self._model, image_limits(encoder))

    def embed_videos(self, videos: Iterable[PreparedVideo]) -> list[PreparedVideo]:
        """The videos with their vectors; the ready ones' keyframes are embedded together, in
        batches of `embed_batch`. When embedding fails, the ready videos fail with its reason
        (the rest of the run goes on; a re-run retries them)."""
        videos = list(videos)
        ready = [video for video in videos if video.ready]
        images = [jpeg for video in ready for jpeg in video.keyframes]
        if not images:
            return videos
        try:
            vectors = self.embed(images)
        except ServiceError as error:
            failed = {id(v): v.failed(error.reason, error.message) for v in ready}
            return [failed.get(id(video), video) for video in videos]
        embedded, start = {}, 0
        for video in ready:
            count = len(video.keyframes)
            embedded[id(video)] = video.embedded(vectors[start : start + count])
            start += count
        return [embedded.get(id(video), video) for video in videos]

    def embed(self, images: Sequence[bytes]) -> np.ndarray:
        """L2-normalised float32 vectors of JPEG images, in order."""
        size = self._config.embed_batch
        if self._model is None:
            size = min(size, ENCODER_REQUEST_LIMIT)
        parts = [self._embed_batch(images[i : i + size]) for i in range(0, len(images), size)]
        return np.concatenate(parts)

    def _embed_batch(self, images: Sequence[bytes]) -> np.ndarray:
        if self._model is None:
            assert self._calls.encoder is not None
            call = self._calls.encoder.embed_images(
                images, interactive=False, timeout_s=self._config.call_timeout_s
            )
            return self._calls.run(call).vectors
        pixels = self._preprocess(images)
        return self._model.embed_images(torch.from_numpy(np.stack(pixels)))
