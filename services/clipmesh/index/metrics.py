"""Index metrics (Prometheus)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from clipmesh.runtime.metrics import create_zero_series

SEARCH_SECONDS = Histogram(
    "clipmesh_index_search_seconds",
    "Index search latency, by backend.",
    ["backend"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
)
DEGRADED_SEARCHES = Counter(
    "clipmesh_index_degraded_searches_total", "Searches answered with reduced effort.", ["backend"]
)
VECTORS = Gauge("clipmesh_index_segments", "Segments (vectors) per collection.", ["collection"])
VIDEOS = Gauge("clipmesh_index_videos", "Videos per collection.", ["collection"])
INDEX_TYPE = Gauge(
    "clipmesh_index_type_info",
    "The index type a collection uses (value 1).",
    ["collection", "index_type"],
)
REBUILDS = Counter("clipmesh_index_rebuilds_total", "Index rebuilds finished.", ["collection"])
REBUILD_SECONDS = Histogram(
    "clipmesh_index_rebuild_seconds",
    "Duration of index rebuilds.",
    ["collection"],
    buckets=(0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800),
)
WAL_BYTES = Gauge("clipmesh_index_wal_bytes", "Bytes of write-ahead log not yet snapshotted.")
SNAPSHOT_FAILURES = Counter(
    "clipmesh_index_snapshot_failures_total", "Snapshots that failed (the WAL keeps the writes)."
)
SNAPSHOT_INTERVAL_SECONDS = Gauge(
    "clipmesh_index_snapshot_interval_seconds",
    "Longest unsnapshotted writes wait before a snapshot (snapshot_interval_s; 0: no snapshots).",
)
SNAPSHOT_AGE_SECONDS = Gauge(
    "clipmesh_index_snapshot_age_seconds", "Seconds since the last snapshot (-1: none yet)."
)


def create_series(backend: str) -> None:
    """The search series of the index's backend at 0 (its start); collections' series appear
    as collections do."""
    for metric in (SEARCH_SECONDS, DEGRADED_SEARCHES):
        create_zero_series(metric, backend=[backend])
