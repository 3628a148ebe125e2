"""Orchestrator metrics (Prometheus), with latency buckets around the 500 ms search budget."""

from __future__ import annotations

from typing import get_args

from prometheus_client import Counter, Histogram

from clipmesh.media.records import IngestStage
from clipmesh.orchestrator.records import PartKind
from clipmesh.runtime.metrics import LATENCY_BUCKETS_S, create_zero_series

# A query's kind is its parts' kind, or "mixed"; the stages are those search.py times.
SEARCH_KINDS = (*get_args(PartKind), "mixed")
SEARCH_STAGES = ("encode", "index")
INGEST_OUTCOMES = (IngestStage.DONE.value, IngestStage.DUPLICATE.value, IngestStage.FAILED.value)

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


def create_series() -> None:
    """Every search and ingest series whose labels are known in advance, at 0 (the
    orchestrator's start); failure reasons appear as they happen."""
    create_zero_series(SEARCH_SECONDS, kind=SEARCH_KINDS)
    create_zero_series(SEARCH_STAGE_SECONDS, stage=SEARCH_STAGES)
    create_zero_series(CACHE_LOOKUPS, result=("hit", "miss"))
    create_zero_series(INGESTED_VIDEOS, outcome=INGEST_OUTCOMES)
