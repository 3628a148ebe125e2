"""One video file into the index: hash, probe, plan segments, keyframes, thumbnails, vectors,
one durable write. The steps themselves are `media.analysis`'s, shared with the bulk ingest;
this module runs them on the event loop with spans, progress and the encoder and index clients.

The video id comes from the content hash, so the same bytes twice are a duplicate, not a copy.
Probing and decoding share one time budget per file and every decoder has a pixel cap
(`MediaLimits`), so a hostile file cannot hold a worker. Keyframes are embedded as background
work (search goes first on the encoder) and the video becomes visible only with all its
segments, in one upsert. Each step runs in its own span (`ingest.video`, `.plan`,
`.keyframes`, `.embed`, `.upsert`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from opentelemetry import trace

from clipmesh.encoder.client import EncoderClient
from clipmesh.index.client import IndexClient
from clipmesh.index.records import VideoWrite
from clipmesh.media.analysis import (
    content_id,
    keyframes,
    plan_video,
    save_thumbnails,
    video_meta,
    video_write,
)
from clipmesh.media.paths import resolve_media_path
from clipmesh.media.probe import Deadline, MediaLimits
from clipmesh.media.records import IngestItem, IngestOutcome, IngestStage

ENCODE_BATCH = 16
CALL_TIMEOUT_S = 120.0

tracer = trace.get_tracer(__name__)

Report = Callable[..., None]
"""`report(stage, fraction, **fields)`: progress of one video (fields: video_id, eta_s,
segments)."""
Admit = Callable[[int], Awaitable[None]]
"""`await admit(size_bytes)`: lets a new (not duplicate) video of that size go on, or raises
the ServiceError that fails it (a caller's ingest quota)."""


def _ignore(*_: Any, **__: Any) -> None:
    return None


class VideoIngester:
    """Ingests one file at a time into the index through the encoder.

    Args:
        encoder: Embeds the keyframes.
        index: Stores the video and its segments.
        limits: Bounds on each file's bytes, duration, frame size and decode time.
        thumbnails_dir: Where each video's keyframe thumbnails are written.
        max_window_s: Longest segment inside one shot; longer shots are split.
        allowed_roots: Directories an item's URI may name (after resolving symlinks).
    """

    def __init__(
        self,
        encoder: EncoderClient,
        index: IndexClient,
        *,
        limits: MediaLimits,
        thumbnails_dir: Path,
        max_window_s: float,
        allowed_roots: Sequence[Path] = (),
    ) -> None:
        self._encoder, self._index = encoder, index
        self._limits = limits
        self._thumbnails = thumbnails_dir
        self._max_window_s = max_window_s
        self._roots = list(allowed_roots)
        # (collection, video id) → done when the ingest of those bytes that is under way ends.
        # The same bytes twice at once (a file listed twice, or a copy under another name)
        # would both pass the index's duplicate check; the second waits for the first instead,
        # then finds it there.
        self._in_flight: dict[tuple[str, str], asyncio.Future[None]] = {}

    async def ingest(
        self,
        item: IngestItem,
        collection: str,
        *,
        report: Report = _ignore,
        path: Path | None = None,
        source: str = "ingested",
        admit: Admit | None = None,
    ) -> IngestOutcome:
        """Ingests one video inside an `ingest.video` span.

        Args:
            item: What to ingest: its URI (resolved under the allowed roots unless `path` is
                given), title and labels.
            collection: Where it goes.
            report: Told of every stage.
            path: A file this service wrote itself (a previs clip): no allowed-roots check.
            source: "ingested" or "generated".
            admit: Asked before a new video is decoded (duplicates are never asked).

        Raises:
            ServiceError: The file cannot be ingested (outside the roots, corrupt, too large or
                slow, the encoder or the index failing); the reason says which.
        """
        attributes = {"clipmesh.collection": collection}
        with tracer.start_as_current_span("ingest.video", attributes=attributes) as span:
            outcome = await self._stages(
                item, collection, report, path=path, source=source, admit=admit
            )
            span.set_attributes(
                {
                    "clipmesh.video_id": outcome.video_id,
                    "clipmesh.media.outcome": f"INGEST_STAGE_{outcome.stage.name}",
                    "clipmesh.media.segments": outcome.segments,
                }
            )
        return outcome

    async def _stages(
        self,
        item: IngestItem,
        collection: str,
        report: Report,
        *,
        path: Path | None,
        source: str,
        admit: Admit | None,
    ) -> IngestOutcome:
        started = time.monotonic()
        report(IngestStage.PROBING, 0.0)
        if path is None:
            path = await asyncio.to_thread(resolve_media_path, item.uri, self._roots)
        limits = self._limits
        identity = await asyncio.to_thread(content_id, path, limits)
        video_id = identity.video_id
        report(IngestStage.PROBING, 0.05, video_id=video_id)
        key = (collection, video_id)
        while key in self._in_flight:
            await asyncio.shield(self._in_flight[key])
        # Claimed before the next await, so no other ingest of these bytes passes the loop
        # above until this one has ended.
        with self._ingesting(key):
            if await self._index.has_video(collection, video_id, timeout_s=CALL_TIMEOUT_S):
                report(IngestStage.DUPLICATE, 1.0)
                return IngestOutcome(IngestStage.DUPLICATE, video_id=video_id)
            if admit is not None:
                await admit(path.stat().st_size)
            # One budget for every pass over the file, so a hostile one cannot hold a worker.
            deadline = Deadline(path, limits.max_decode_s)
            with tracer.start_as_current_span("ingest.plan") as span:
                report(IngestStage.DETECTING_SHOTS, 0.1)
                plan = await asyncio.to_thread(
                    plan_video, path, limits, deadline, max_window_s=self._max_window_s
                )
                span.set_attribute("clipmesh.media.ingest_seconds", plan.info.duration_s)
                span.set_attribute("clipmesh.media.segments", len(plan.segments))
            elapsed = time.monotonic() - started
            report(IngestStage.EXTRACTING, 0.4, eta_s=elapsed * 1.5)
            with tracer.start_as_current_span(
                "ingest.keyframes", attributes={"clipmesh.media.keyframes": len(plan.segments)}
            ):
                images = await asyncio.to_thread(keyframes, path, plan, limits, deadline)
                encoded = await asyncio.to_thread(
                    save_thumbnails, self._thumbnails, video_id, images
                )
            report(IngestStage.ENCODING, 0.6)
            vectors: list[np.ndarray] = []
            for start in range(0, len(encoded), ENCODE_BATCH):
                vectors.append(
                    await self._embed([jpeg for _, jpeg in encoded[start : start + ENCODE_BATCH]])
                )
                done = sum(len(v) for v in vectors)
                report(IngestStage.ENCODING, 0.6 + 0.3 * done / len(encoded))
            report(IngestStage.INDEXING, 0.9)
            meta = video_meta(
                identity,
                plan.info,
                uri=path.as_uri(),
                title=item.title or path.stem,
                source=source,
                labels=item.labels,
            )
            write = video_write(
                meta,
                plan,
                thumbnails=[thumbnail for thumbnail, _ in encoded],
                vectors=np.concatenate(vectors) if vectors else np.zeros((0, 0), np.float32),
            )
            await self._upsert(collection, write)
            segments = len(write.segments)
            report(IngestStage.DONE, 1.0, segments=segments, eta_s=0)
            return IngestOutcome(
                IngestStage.DONE, segments, plan.info.duration_s, video_id=video_id
            )

    @contextlib.contextmanager
    def _ingesting(self, key: tuple[str, str]) -> Iterator[None]:
        """Marks the bytes `key` names as under way until the block ends, however it ends."""
        done = self._in_flight[key] = asyncio.get_running_loop().create_future()
        try:
            yield
        finally:
            del self._in_flight[key]
            done.set_result(None)

    async def _embed(self, images: list[bytes]) -> np.ndarray:
        attributes = {"clipmesh.media.images": len(images)}
        with tracer.start_as_current_span("ingest.embed", attributes=attributes):
            embeddings = await self._encoder.embed_images(
                images, interactive=False, timeout_s=CALL_TIMEOUT_S
            )
        return embeddings.vectors

    async def _upsert(self, collection: str, write: VideoWrite) -> None:
        """Writes the video and its segments to the index in one durable write."""
        attributes = {"clipmesh.media.segments": len(write.segments)}
        with tracer.start_as_current_span("ingest.upsert", attributes=attributes):
            await self._index.upsert_video(collection, write, timeout_s=CALL_TIMEOUT_S)
