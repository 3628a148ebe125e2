"""IngestVideos: a batch of files under the allowed roots → the ingest core, with progress.

Every item is announced QUEUED at once; up to `ingest_concurrency` videos then go through
`VideoIngester` at the same time, each reporting its stages. A file that fails — outside the
roots, not a video, truncated, too big or too slow to decode, an encoder outage — is reported
with its reason and the batch goes on. The stream ends with the batch's totals; a caller that
goes away stops the work nobody would hear about.

Each new video is charged to the caller's `ingest_bytes_per_day` (runtime/usage.py) before it is
decoded, and refunded unless it ends DONE; a video that does not fit fails alone with
QUOTA_EXCEEDED, and a request from a caller whose quota is already used up is refused whole,
RESOURCE_EXHAUSTED, before any work.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import AsyncIterator

from clipmesh.media.ingest import VideoIngester
from clipmesh.media.records import (
    IngestError,
    IngestItem,
    IngestOutcome,
    IngestStage,
    IngestSummary,
    VideoProgress,
)
from clipmesh.orchestrator import metrics
from clipmesh.orchestrator.cache import QueryCache
from clipmesh.orchestrator.records import IngestRequest
from clipmesh.runtime.access import Principal
from clipmesh.runtime.errors import ServiceError
from clipmesh.runtime.policy import Quota
from clipmesh.runtime.usage import QuotaLedger

log = logging.getLogger(__name__)

IngestEvent = VideoProgress | IngestSummary


class IngestPipeline:
    """Runs ingest requests through the ingest core.

    Args:
        ingester: Ingests one video.
        cache: Cleared for a collection that gained videos.
        quotas: Where ingest bytes are charged.
        concurrency: Videos of one request processed at the same time.
    """

    def __init__(
        self,
        ingester: VideoIngester,
        cache: QueryCache,
        quotas: QuotaLedger,
        *,
        concurrency: int,
    ) -> None:
        self._ingester = ingester
        self._cache = cache
        self._quotas = quotas
        self._concurrency = concurrency

    async def run(self, request: IngestRequest, principal: Principal) -> AsyncIterator[IngestEvent]:
        """Streams progress for every item, then one summary.

        Raises:
            ResourceExhausted: The caller's ingest quota is used up for today (before any
                event).
        """
        await self._quotas.check_left(principal.policy, Quota.INGEST_BYTES_PER_DAY)
        events: asyncio.Queue[VideoProgress] = asyncio.Queue()
        started = time.monotonic()
        gate = asyncio.Semaphore(self._concurrency)

        async def one(item: IngestItem) -> IngestOutcome:
            async with gate:
                return await self._ingest_one(
                    item, request.collection, events.put_nowait, principal
                )

        for item in request.items:
            # eta 0, not -1: what the stream has always said of a queued video.
            yield VideoProgress(item.uri, IngestStage.QUEUED, eta_s=0.0)
        workers = asyncio.gather(*(one(item) for item in request.items))
        try:
            while not workers.done() or not events.empty():
                getter = asyncio.ensure_future(events.get())
                done, _ = await asyncio.wait({getter, workers}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    yield getter.result()
                else:
                    getter.cancel()
            outcomes = workers.result()
        finally:
            workers.cancel()  # the caller went away: stop work nobody will hear about
        if any(o.stage == IngestStage.DONE for o in outcomes):
            self._cache.invalidate(request.collection)
        yield IngestSummary(
            ingested=sum(o.stage == IngestStage.DONE for o in outcomes),
            duplicates=sum(o.stage == IngestStage.DUPLICATE for o in outcomes),
            failed=sum(o.stage == IngestStage.FAILED for o in outcomes),
            segments=sum(o.segments for o in outcomes),
            video_seconds=sum(o.video_seconds for o in outcomes),
            wall_seconds=time.monotonic() - started,
        )

    async def _ingest_one(
        self, item: IngestItem, collection: str, emit, principal: Principal
    ) -> IngestOutcome:
        progress = VideoProgress(item.uri, IngestStage.QUEUED)
        charge_id = f"ingest:{uuid.uuid4().hex}"

        async def admit(size_bytes: int) -> None:
            quota = Quota.INGEST_BYTES_PER_DAY
            await self._quotas.charge(charge_id, principal.policy, quota, size_bytes)

        def report(stage: IngestStage, fraction: float, **fields) -> None:
            nonlocal progress
            progress = dataclasses.replace(progress, stage=stage, fraction=fraction, **fields)
            emit(progress)

        try:
            outcome = await self._ingester.ingest(item, collection, report=report, admit=admit)
            if outcome.stage != IngestStage.DONE:
                await self._quotas.refund(charge_id)
        except asyncio.CancelledError:  # the caller went away: what was not ingested is free
            await asyncio.shield(self._quotas.refund(charge_id))
            raise
        except ServiceError as error:
            reason, message = error.reason, error.message
        except Exception:
            log.exception("ingest of one video failed", extra={"uri": item.uri})
            reason, message = "INTERNAL", "internal error; details are in the orchestrator log"
        else:
            metrics.INGESTED_VIDEOS.labels(outcome.stage.value).inc()
            if outcome.stage == IngestStage.DONE:
                metrics.INGESTED_SEGMENTS.inc(outcome.segments)
                metrics.INGESTED_VIDEO_SECONDS.inc(outcome.video_seconds)
            return outcome
        await self._quotas.refund(charge_id)
        metrics.INGEST_FAILURES.labels(reason).inc()
        metrics.INGESTED_VIDEOS.labels("failed").inc()
        report(IngestStage.FAILED, progress.fraction, error=IngestError(reason, message))
        return IngestOutcome(IngestStage.FAILED, reason=reason)
