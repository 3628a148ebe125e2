"""IngestVideos: files under the allowed roots → shot-aware segments → vectors → the index.

Per video: resolve the path (symlinks included) inside the allowed roots; check its size; hash
the content (the video id comes from it, so re-ingesting the same bytes is recognised as a
duplicate); probe; plan segments from a low-resolution analysis pass (shots, windows inside
long shots, near-identical keyframes collapsed); decode just the keyframes; write thumbnails;
embed the keyframes on the encoder as background work (search goes first); upsert the video's
segments in one durable write. Probing and decoding share one time budget per file and every
decoder has a pixel cap (`MediaLimits`). A file that fails — outside the roots, not a video,
truncated, too big or too slow to decode, an encoder outage — is reported with its reason and
the batch goes on.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from opentelemetry import trace

from clipmesh.orchestrator import metrics
from clipmesh.orchestrator.cache import QueryCache
from clipmesh.orchestrator.config import OrchestratorConfig
from clipmesh.orchestrator.dependencies import Dependencies, translate
from clipmesh.orchestrator.frames import analysis_frames, frames_at
from clipmesh.orchestrator.media import Deadline, MediaLimits, check_file_size, probe
from clipmesh.orchestrator.paths import resolve_media_path, sha256_file
from clipmesh.orchestrator.shots import plan_segments
from clipmesh.runtime.errors import ClipmeshError, InvalidArgument
from clipmesh_api.common.v1 import common_pb2
from clipmesh_api.encoder.v1 import encoder_pb2
from clipmesh_api.index.v1 import index_pb2
from clipmesh_api.orchestrator.v1 import ingest_pb2

log = logging.getLogger(__name__)

KEYFRAME_SIDE = 384  # enough for the model's 224 px input after a centre crop, and thumbnails
ENCODE_BATCH = 16
CALL_TIMEOUT_S = 120.0
Stage = ingest_pb2.IngestStage

tracer = trace.get_tracer(__name__)


@dataclass
class IngestOutcome:
    """How ingesting one video ended."""

    stage: int
    segments: int = 0
    video_seconds: float = 0.0
    reason: str = ""
    video_id: str = ""


class IngestPipeline:
    """Runs ingest requests over the encoder and the index."""

    def __init__(self, deps: Dependencies, config: OrchestratorConfig, cache: QueryCache) -> None:
        self._deps = deps
        self._config = config
        self._cache = cache
        self._roots = [Path(root) for root in config.allowed_roots]
        self._limits = MediaLimits(
            max_file_bytes=int(config.ingest_max_file_gb * (1 << 30)),
            max_duration_s=config.ingest_max_duration_s,
            max_side=config.ingest_max_frame_side,
            max_frame_pixels=int(config.ingest_max_frame_megapixels * 1_000_000),
            max_decode_s=config.ingest_max_decode_s,
        )
        self._thumbnails = config.data_dir / "thumbnails"

    async def run(
        self, request: ingest_pb2.IngestVideosRequest
    ) -> AsyncIterator[ingest_pb2.IngestVideosResponse]:
        """Streams progress for every item, then one summary."""
        if not request.items:
            raise InvalidArgument("items is empty", field="items", reason="EMPTY_REQUEST")
        if len(request.items) > self._config.max_ingest_items:
            raise InvalidArgument(
                f"items has {len(request.items)} entries; the limit is "
                f"{self._config.max_ingest_items}",
                field="items",
                reason="TOO_MANY_ITEMS",
            )
        collection = request.collection or self._config.default_collection
        events: asyncio.Queue[ingest_pb2.VideoProgress] = asyncio.Queue()
        started = time.monotonic()
        gate = asyncio.Semaphore(self._config.ingest_concurrency)

        async def one(item: ingest_pb2.IngestItem) -> IngestOutcome:
            async with gate:
                return await self._ingest_one(item, collection, events.put_nowait)

        for item in request.items:
            yield _progress(ingest_pb2.VideoProgress(uri=item.uri, stage=Stage.INGEST_STAGE_QUEUED))
        workers = asyncio.gather(*(one(item) for item in request.items))
        try:
            while not workers.done() or not events.empty():
                getter = asyncio.ensure_future(events.get())
                done, _ = await asyncio.wait({getter, workers}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    yield _progress(getter.result())
                else:
                    getter.cancel()
            outcomes = workers.result()
        finally:
            workers.cancel()  # the caller went away: stop work nobody will hear about
        if any(o.stage == Stage.INGEST_STAGE_DONE for o in outcomes):
            self._cache.invalidate(collection)
        yield ingest_pb2.IngestVideosResponse(
            summary=ingest_pb2.IngestSummary(
                ingested=sum(o.stage == Stage.INGEST_STAGE_DONE for o in outcomes),
                duplicates=sum(o.stage == Stage.INGEST_STAGE_DUPLICATE for o in outcomes),
                failed=sum(o.stage == Stage.INGEST_STAGE_FAILED for o in outcomes),
                segments=sum(o.segments for o in outcomes),
                video_seconds=sum(o.video_seconds for o in outcomes),
                wall_seconds=time.monotonic() - started,
            )
        )

    async def _ingest_one(
        self, item: ingest_pb2.IngestItem, collection: str, emit
    ) -> IngestOutcome:
        progress = ingest_pb2.VideoProgress(uri=item.uri, eta_s=-1)

        def report(stage: int, fraction: float, **fields) -> None:
            progress.stage, progress.fraction = stage, fraction
            for name, value in fields.items():
                if isinstance(value, ingest_pb2.IngestError):
                    progress.error.CopyFrom(value)
                else:
                    setattr(progress, name, value)
            snapshot = ingest_pb2.VideoProgress()
            snapshot.CopyFrom(progress)
            emit(snapshot)

        try:
            outcome = await self._stages(item, collection, report)
        except ClipmeshError as error:
            metrics.INGEST_FAILURES.labels(error.reason).inc()
            metrics.INGESTED_VIDEOS.labels("failed").inc()
            report(
                Stage.INGEST_STAGE_FAILED,
                progress.fraction,
                error=ingest_pb2.IngestError(reason=error.reason, message=error.message),
            )
            return IngestOutcome(Stage.INGEST_STAGE_FAILED, reason=error.reason)
        except Exception:
            log.exception("ingest of one video failed", extra={"uri": item.uri})
            metrics.INGEST_FAILURES.labels("INTERNAL").inc()
            report(
                Stage.INGEST_STAGE_FAILED,
                progress.fraction,
                error=ingest_pb2.IngestError(
                    reason="INTERNAL", message="internal error; details are in the orchestrator log"
                ),
            )
            return IngestOutcome(Stage.INGEST_STAGE_FAILED, reason="INTERNAL")
        metrics.INGESTED_VIDEOS.labels(
            "done" if outcome.stage == Stage.INGEST_STAGE_DONE else "duplicate"
        ).inc()
        return outcome

    async def ingest_own_file(
        self,
        path: Path,
        *,
        collection: str,
        title: str,
        labels: dict[str, str],
        source: int = common_pb2.VIDEO_SOURCE_GENERATED,
    ) -> IngestOutcome:
        """Ingests a file this service wrote itself (a previs clip): no allowed-roots check.

        Raises:
            ClipmeshError: The file cannot be ingested (corrupt, encoder or index down).
        """
        item = ingest_pb2.IngestItem(uri=path.as_uri(), title=title, labels=labels)
        outcome = await self._stages(item, collection, lambda *_, **__: None, path, source)
        if outcome.stage == Stage.INGEST_STAGE_DONE:
            self._cache.invalidate(collection)
        return outcome

    async def _stages(
        self,
        item,
        collection: str,
        report,
        path: Path | None = None,
        source: int = common_pb2.VIDEO_SOURCE_INGESTED,
    ) -> IngestOutcome:
        """Ingests one video inside an `ingest.video` span (a failure is recorded on it)."""
        attributes = {"clipmesh.collection": collection}
        with tracer.start_as_current_span("ingest.video", attributes=attributes) as span:
            outcome = await self._run_stages(item, collection, report, path, source)
            span.set_attributes(
                {
                    "clipmesh.video_id": outcome.video_id,
                    "clipmesh.ingest.outcome": Stage.Name(outcome.stage),
                    "clipmesh.ingest.segments": outcome.segments,
                }
            )
        return outcome

    async def _run_stages(
        self, item, collection: str, report, path: Path | None, source: int
    ) -> IngestOutcome:
        started = time.monotonic()
        report(Stage.INGEST_STAGE_PROBING, 0.0)
        if path is None:
            path = await asyncio.to_thread(resolve_media_path, item.uri, self._roots)
        limits = self._limits
        check_file_size(path, limits)
        digest = await asyncio.to_thread(sha256_file, path)
        video_id = f"v{digest[:20]}"
        report(Stage.INGEST_STAGE_PROBING, 0.05, video_id=video_id)
        if await self._exists(collection, video_id):
            report(Stage.INGEST_STAGE_DUPLICATE, 1.0)
            return IngestOutcome(Stage.INGEST_STAGE_DUPLICATE, video_id=video_id)
        # One budget for every pass over the file, so a hostile one cannot hold a worker.
        deadline = Deadline(path, limits.max_decode_s)
        with tracer.start_as_current_span("ingest.plan") as span:
            info = await asyncio.to_thread(probe, path, limits, deadline)
            report(Stage.INGEST_STAGE_DETECTING_SHOTS, 0.1)
            plan = await asyncio.to_thread(
                lambda: plan_segments(
                    analysis_frames(path, limits=limits, deadline=deadline),
                    info.duration_s,
                    max_window_s=self._config.max_window_s,
                )
            )
            span.set_attribute("clipmesh.ingest.video_seconds", info.duration_s)
            span.set_attribute("clipmesh.ingest.segments", len(plan))
        elapsed = time.monotonic() - started
        report(Stage.INGEST_STAGE_EXTRACTING, 0.4, eta_s=elapsed * 1.5)
        with tracer.start_as_current_span(
            "ingest.keyframes", attributes={"clipmesh.ingest.keyframes": len(plan)}
        ):
            keyframes = await asyncio.to_thread(
                lambda: frames_at(
                    path,
                    [s.keyframe_s for s in plan],
                    max_side=KEYFRAME_SIDE,
                    limits=limits,
                    deadline=deadline,
                )
            )
            encoded = await asyncio.to_thread(self._write_thumbnails, video_id, keyframes)
        report(Stage.INGEST_STAGE_ENCODING, 0.6)
        vectors = []
        for start in range(0, len(encoded), ENCODE_BATCH):
            vectors += await self._embed(
                [jpeg for _, jpeg in encoded[start : start + ENCODE_BATCH]]
            )
            report(Stage.INGEST_STAGE_ENCODING, 0.6 + 0.3 * len(vectors) / len(encoded))
        report(Stage.INGEST_STAGE_INDEXING, 0.9)
        video = common_pb2.Video(
            video_id=video_id,
            collection=collection,
            uri=path.as_uri(),
            title=item.title or path.stem,
            duration_s=info.duration_s,
            fps=info.fps,
            width=info.width,
            height=info.height,
            size_bytes=info.size_bytes,
            source=source,
            labels=item.labels,
            content_sha256=digest,
        )
        video.create_time.GetCurrentTime()
        segments = [
            index_pb2.Segment(
                start_s=s.start_s,
                end_s=s.end_s,
                keyframe_s=s.keyframe_s,
                vector=vector,
                thumbnail_uri=thumbnail,
            )
            for s, vector, (thumbnail, _) in zip(plan, vectors, encoded, strict=True)
        ]
        await self._upsert(collection, video, segments)
        metrics.INGESTED_SEGMENTS.inc(len(segments))
        metrics.INGESTED_VIDEO_SECONDS.inc(info.duration_s)
        report(Stage.INGEST_STAGE_DONE, 1.0, segments=len(segments), eta_s=0)
        return IngestOutcome(
            Stage.INGEST_STAGE_DONE, len(segments), info.duration_s, video_id=video_id
        )

    async def _exists(self, collection: str, video_id: str) -> bool:
        try:
            await self._deps.index.GetVideo(
                index_pb2.GetVideoRequest(collection=collection, video_id=video_id),
                timeout=CALL_TIMEOUT_S,
            )
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise translate(error, "index") from error
        return True

    async def _embed(self, images: list[bytes]) -> list[list[float]]:
        attributes = {"clipmesh.ingest.images": len(images)}
        with tracer.start_as_current_span("ingest.embed", attributes=attributes):
            try:
                response = await self._deps.encoder.EmbedImages(
                    encoder_pb2.EmbedImagesRequest(
                        images=images, priority=encoder_pb2.PRIORITY_BATCH
                    ),
                    timeout=CALL_TIMEOUT_S,
                )
            except grpc.RpcError as error:
                raise translate(error, "encoder") from error
        return [list(e.vector) for e in response.embeddings]

    async def _upsert(
        self, collection: str, video: common_pb2.Video, segments: list[index_pb2.Segment]
    ) -> None:
        """Writes the video and its segments to the index in one durable write."""
        attributes = {"clipmesh.ingest.segments": len(segments)}
        with tracer.start_as_current_span("ingest.upsert", attributes=attributes):
            try:
                await self._deps.index.UpsertSegments(
                    index_pb2.UpsertSegmentsRequest(
                        collection=collection,
                        videos=[index_pb2.VideoSegments(video=video, segments=segments)],
                    ),
                    timeout=CALL_TIMEOUT_S,
                )
            except grpc.RpcError as error:
                raise translate(error, "index") from error

    def _write_thumbnails(self, video_id: str, images) -> list[tuple[str, bytes]]:
        """Saves each keyframe as a JPEG thumbnail; returns (thumbnail URI, JPEG bytes)."""
        directory = self._thumbnails / video_id
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for number, image in enumerate(images):
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=90)
            path = directory / f"{number:05d}.jpg"
            path.write_bytes(buffer.getvalue())
            written.append((path.resolve().as_uri(), buffer.getvalue()))
        return written


def _progress(progress: ingest_pb2.VideoProgress) -> ingest_pb2.IngestVideosResponse:
    return ingest_pb2.IngestVideosResponse(progress=progress)
