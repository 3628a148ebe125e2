"""The driver of a bulk ingest: list, run the pipeline window by window, write, report.

The source is listed twice: once to count (for the ETA and `--dry-run`), then window by
window into the pipeline, so the driver never holds the whole listing — a window of
`listing_window` files, the writes in flight, and the ids of the current window's videos.
Between windows every write is flushed, which is also what makes a re-run cheap: a killed
driver loses at most the window it was in, and a re-run skips every video the index holds.

Resuming needs no state of its own: ids are content hashes, a video is written whole or not
at all, and a worker asks the index before it decodes. Killing the driver, a worker or the
whole cluster and running the same command again finishes the job with no duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import prometheus_client

from clipmesh.bulk import metrics, pipeline
from clipmesh.bulk.config import BulkIngestConfig
from clipmesh.bulk.progress import Census, ProgressLedger, Totals
from clipmesh.bulk.sources import Source, SourceFile
from clipmesh.bulk.writer import IndexWriter
from clipmesh.encoder.config import EncoderConfig
from clipmesh.index.client import IndexClient
from clipmesh.runtime.dependencies import DependencyChannels

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 10.0
T = TypeVar("T")


@dataclass(frozen=True)
class BulkIngestJob:
    """One bulk ingest, as asked for.

    Attributes:
        source: What to read.
        ray_address: `local`, `auto`, `ray://host:port` or a head's `host:port`.
        labels: Stored with every video.
        report_path: Where the JSON-lines report goes (None: no report).
        local_cpus: CPUs of a `local` cluster (None: this machine's).
    """

    source: Source
    ray_address: str = pipeline.LOCAL
    labels: Mapping[str, str] = field(default_factory=dict)
    report_path: Path | None = None
    local_cpus: int | None = None


def census(source: Source, config: BulkIngestConfig) -> Census:
    """Counts the source's files and known bytes without keeping the listing."""
    files = known = 0
    for file in source.files(config):
        files += 1
        known += max(file.size_bytes, 0)
    return Census(files, known)


async def check_index(config: BulkIngestConfig) -> None:
    """Asks the index about one video, to prove it answers (and takes this client's TLS).

    Raises:
        ServiceError: the index cannot be reached or refuses the caller.
    """
    channels = DependencyChannels(config)
    try:
        index = IndexClient(channels, config.index_target)
        await index.has_video(config.collection, "v0", timeout_s=config.call_timeout_s)
    finally:
        await channels.close()


def windows(files: Iterator[SourceFile], size: int) -> Iterator[list[SourceFile]]:
    while window := list(itertools.islice(files, size)):
        yield window


async def run_bulk_ingest(
    job: BulkIngestJob,
    config: BulkIngestConfig,
    encoder: EncoderConfig,
    *,
    on_progress: Callable[[Totals], None] = lambda totals: None,
    progress_every_s: float = PROGRESS_EVERY_S,
) -> Totals:
    """Runs the job to its end; returns its totals (each file's outcome is in the report).

    Raises:
        ServiceError: the source cannot be listed (a missing bucket, refused credentials).
        RayUnavailable: Ray is missing or its cluster cannot be reached.
    """
    counted = await asyncio.to_thread(census, job.source, config)
    resources = await asyncio.to_thread(
        pipeline.connect, job.ray_address, config, cpus=job.local_cpus
    )
    workers = pipeline.plan_workers(config, resources)
    log.info(
        "bulk ingest of %s: %d files, %d CPU workers, %d embedding workers, cluster %s",
        job.source.spec,
        counted.files,
        *workers,
        dict(resources),
    )
    if config.metrics_port:
        metrics.create_series()
        prometheus_client.start_http_server(config.metrics_port, addr=config.metrics_host)
    ledger = ProgressLedger(job.report_path, counted)
    channels = DependencyChannels(config)
    writer = IndexWriter(
        IndexClient(channels, config.index_target),
        config.collection,
        batch_videos=config.write_batch_videos,
        max_in_flight=config.max_writes_in_flight,
        timeout_s=config.call_timeout_s,
        report=ledger.record,
    )
    reporter = asyncio.create_task(_report_every(ledger, on_progress, progress_every_s))
    try:
        listing = job.source.files(config)
        for window in windows(listing, config.listing_window):
            batches = pipeline.prepared_videos(
                window,
                config,
                roots=job.source.roots,
                labels=job.labels,
                encoder=encoder,
                workers=workers,
            )
            async for videos in _in_thread(batches):
                await writer.add(videos)
            await writer.flush()
    finally:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
        await writer.flush()
        await channels.close()
        ledger.close()
    totals = ledger.totals()
    on_progress(totals)
    return totals


async def _report_every(
    ledger: ProgressLedger, on_progress: Callable[[Totals], None], every_s: float
) -> None:
    while True:
        await asyncio.sleep(every_s)
        on_progress(ledger.totals())


async def _in_thread(iterator: Iterator[T]) -> AsyncIterator[T]:
    """Iterates a blocking iterator (Ray's) on a thread, one item at a time, so the event loop
    keeps writing while the next batch is awaited."""
    stop = object()
    while (item := await asyncio.to_thread(next, iterator, stop)) is not stop:
        yield item
