"""Bulk ingest metrics (Prometheus), served by the driver on `metrics_port` when set: what a
dashboard needs to watch a long job — outcomes, throughput, and whether the index keeps up."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from clipmesh.bulk.records import Outcome
from clipmesh.runtime.metrics import LATENCY_BUCKETS_S, create_zero_series

VIDEOS = Counter(
    "clipmesh_bulk_ingest_videos_total", "Files through the bulk ingest, by outcome.", ["outcome"]
)
FAILURES = Counter(
    "clipmesh_bulk_ingest_failures_total", "Files that failed, by reason.", ["reason"]
)
VIDEO_SECONDS = Counter(
    "clipmesh_bulk_ingest_video_seconds_total", "Seconds of video written to the index."
)
WRITE_SEGMENTS = Counter("clipmesh_bulk_ingest_segments_total", "Segments written to the index.")
WRITE_SECONDS = Histogram(
    "clipmesh_bulk_ingest_index_write_seconds",
    "Latency of one batched UpsertSegments call.",
    buckets=LATENCY_BUCKETS_S,
)
WRITES_IN_FLIGHT = Gauge(
    "clipmesh_bulk_ingest_index_writes_in_flight",
    "Index writes outstanding; at max_writes_in_flight the pipeline is held back by the index.",
)
FILES_LISTED = Gauge("clipmesh_bulk_ingest_files_listed", "Files the source lists.")


def create_series() -> None:
    """Every outcome's series at 0 (the driver's start); failure reasons appear as they
    happen."""
    create_zero_series(VIDEOS, outcome=[outcome.value for outcome in Outcome])
