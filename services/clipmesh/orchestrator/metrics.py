"""Orchestrator metrics (Prometheus), with latency buckets around the 500 ms search budget."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from clipmesh.runtime.metrics import LATENCY_BUCKETS_S

SEARCH_SECONDS = Histogram(
    "clipmesh_search_seconds",
    "End-to-end SearchVideos latency, by query kind.",
    ["kind"],
    buckets=LATENCY_BUCKETS_S,
)
SEARCH_STAGE_SECONDS = Histogram(
    "clipmesh_search_stage_seconds",
    "Latency of each stage of a search.",
    ["stage"],
    buckets=LATENCY_BUCKETS_S,
)
BUDGET_EXCEEDED = Counter(
    "clipmesh_search_budget_exceeded_total", "Searches that ran past their budget or failed for it."
)
CACHE_LOOKUPS = Counter(
    "clipmesh_search_cache_lookups_total", "Hot-query cache lookups, by result.", ["result"]
)
INGESTED_VIDEOS = Counter(
    "clipmesh_ingest_videos_total", "Videos through ingest, by outcome.", ["outcome"]
)
INGESTED_SEGMENTS = Counter("clipmesh_ingest_segments_total", "Segments indexed by ingest.")
INGESTED_VIDEO_SECONDS = Counter(
    "clipmesh_ingest_video_seconds_total", "Seconds of video ingested."
)
INGEST_FAILURES = Counter(
    "clipmesh_ingest_failures_total", "Videos that failed to ingest, by reason.", ["reason"]
)
