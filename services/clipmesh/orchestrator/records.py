"""The orchestrator's domain: a checked search, its answer, and a checked ingest request.

Videos, hits and filters are the index's records (`clipmesh.index.records`,
`clipmesh.index.filters`); ingest progress is the ingest core's (`clipmesh.media.records`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from clipmesh.index.filters import VideoFilter
from clipmesh.index.records import VideoResult
from clipmesh.media.records import IngestItem

PartKind = Literal["image", "text", "clip"]


@dataclass(frozen=True)
class ClipRef:
    """A span of an indexed video used as a query (None span: the whole video)."""

    video_id: str
    span: tuple[float, float] | None = None


@dataclass(frozen=True)
class QueryPart:
    """One weighted part of a query; exactly the field of its `kind` is set.

    Attributes:
        kind: "image", "text" or "clip".
        image: An encoded image.
        text: A description.
        clip: A moment of an indexed video.
        weight: Its weight; negative weights push away.
    """

    kind: PartKind
    image: bytes = b""
    text: str = ""
    clip: ClipRef | None = None
    weight: float = 1.0


@dataclass(frozen=True)
class SearchRequest:
    """A checked search.

    Attributes:
        parts: The query's parts, in request order.
        collection: Where to search.
        top_k: Videos to return.
        max_moments: Moments per video.
        video_filter: Only videos passing it (None: all).
        budget_s: The latency budget.
        skip_cache: Bypass the hot-query cache.
        kind: "image", "text", "clip" or "mixed", for metrics.
        min_score: Leave out videos and moments scoring below it (None: keep all).
    """

    parts: tuple[QueryPart, ...]
    collection: str
    top_k: int
    max_moments: int
    video_filter: VideoFilter | None
    budget_s: float
    skip_cache: bool = False
    kind: str = "mixed"
    min_score: float | None = None


@dataclass(frozen=True)
class StageTiming:
    """How long one stage of a search took."""

    stage: str
    duration_ms: float


@dataclass(frozen=True)
class SearchResponse:
    """What a search found, what it cost, and what the caller should know.

    Attributes:
        collection: The collection searched.
        hits: Videos, best first, with their moments.
        degraded: The index answered with less effort to meet the budget.
        timings: Per-stage latency.
        cache_hit: Served from the hot-query cache.
        model_id: The encoder's model ("" when no part needed it).
        warnings: Things the caller should know (random weights, degraded results).
        hits_below_min_score: Videos among the best `top_k` that the threshold left out.
    """

    collection: str
    hits: tuple[VideoResult, ...]
    degraded: bool = False
    timings: tuple[StageTiming, ...] = ()
    cache_hit: bool = False
    model_id: str = ""
    warnings: tuple[str, ...] = ()
    hits_below_min_score: int = 0


@dataclass(frozen=True)
class IngestRequest:
    """A checked ingest: its items, and the collection they go to."""

    items: tuple[IngestItem, ...]
    collection: str
