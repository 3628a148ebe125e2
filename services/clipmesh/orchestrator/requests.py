"""Turning the orchestrator's requests into checked domain requests.

Every check names the offending field (`parts[2].image`); a search is refused before any
dependency is called, so a bad request costs no encoder time. Checks of what only the
dependencies know (a corrupt image, an unknown video) stay with them and come back with the
caller's field names.
"""

from __future__ import annotations

import math

from clipmesh.index.filters import parse_filter
from clipmesh.index.records import collection_name
from clipmesh.media.records import IngestItem
from clipmesh.orchestrator.config import OrchestratorConfig
from clipmesh.orchestrator.records import ClipRef, IngestRequest, QueryPart, SearchRequest
from clipmesh.runtime.errors import InvalidArgument
from clipmesh_api.orchestrator.v1 import ingest_pb2, search_pb2

MAX_PARTS = 16
MAX_MOMENTS = 20
MAX_BUDGET_MS = 60_000
DEFAULT_TOP_K = 10
DEFAULT_MOMENTS = 3


def parse_search(
    request: search_pb2.SearchVideosRequest, config: OrchestratorConfig
) -> SearchRequest:
    """Checks a search; fills in the service's defaults.

    Raises:
        InvalidArgument: Naming the first field at fault.
    """
    top_k = request.top_k or DEFAULT_TOP_K
    moments = request.max_moments_per_video or DEFAULT_MOMENTS
    parts = _parts(request, config)
    if all(p.weight < 0 for p in parts):
        raise InvalidArgument(
            "at least one part needs a positive weight", field="parts", reason="BAD_WEIGHT"
        )
    if not 0 <= request.budget_ms <= MAX_BUDGET_MS:
        raise InvalidArgument(
            f"budget_ms must be 0 (the service default) to {MAX_BUDGET_MS}",
            field="budget_ms",
            reason="BAD_BUDGET",
        )
    if not 1 <= top_k <= config.max_top_k:
        raise InvalidArgument(
            f"top_k must be 0 (default 10) to {config.max_top_k}", field="top_k", reason="BAD_TOP_K"
        )
    if not 1 <= moments <= MAX_MOMENTS:
        raise InvalidArgument(
            f"max_moments_per_video must be 0 (default 3) to {MAX_MOMENTS}",
            field="max_moments_per_video",
            reason="BAD_MOMENTS",
        )
    min_score = request.min_score if request.HasField("min_score") else None
    if min_score is not None and not -1 <= min_score <= 1:  # NaN fails too
        raise InvalidArgument(
            f"min_score is {min_score:g}; scores are weighted cosine similarities, -1 to 1",
            field="min_score",
            reason="BAD_MIN_SCORE",
        )
    for index, part in enumerate(parts):
        if part.clip is not None and part.clip.span is not None:
            _check_span(part.clip.span, f"parts[{index}].clip")
    kinds = {part.kind for part in parts}
    return SearchRequest(
        parts=parts,
        collection=collection_name(request.collection or config.default_collection),
        top_k=top_k,
        max_moments=moments,
        video_filter=parse_filter(request.filter) if request.HasField("filter") else None,
        budget_s=(request.budget_ms or config.search_budget_ms) / 1000,
        skip_cache=request.skip_cache,
        kind=kinds.pop() if len(kinds) == 1 else "mixed",
        min_score=min_score,
    )


def _parts(
    request: search_pb2.SearchVideosRequest, config: OrchestratorConfig
) -> tuple[QueryPart, ...]:
    max_image_bytes = int(config.max_query_image_mb * 1024 * 1024)
    if not request.parts:
        raise InvalidArgument(
            "parts is empty: give an image, a text or a clip", field="parts", reason="EMPTY_QUERY"
        )
    if len(request.parts) > MAX_PARTS:
        raise InvalidArgument(
            f"parts has {len(request.parts)} entries; the limit is {MAX_PARTS}",
            field="parts",
            reason="TOO_MANY_ITEMS",
        )
    parts = []
    for index, part in enumerate(request.parts):
        where = f"parts[{index}]"
        kind = part.WhichOneof("kind")
        if kind is None:
            raise InvalidArgument(
                f"{where} sets none of image, text or clip", field=where, reason="EMPTY_PART"
            )
        # The encoder refuses these too, but only after the bytes crossed to it: on a busy
        # machine a 17 MiB image could spend the whole budget on the way there.
        if kind == "image" and not part.image:
            raise InvalidArgument(
                f"{where}.image is empty", field=f"{where}.image", reason="EMPTY_IMAGE"
            )
        if kind == "image" and len(part.image) > max_image_bytes:
            raise InvalidArgument(
                f"{where}.image is {len(part.image)} bytes; the limit is {max_image_bytes}",
                field=f"{where}.image",
                reason="IMAGE_TOO_LARGE",
            )
        if not math.isfinite(part.weight):
            raise InvalidArgument(
                f"{where}.weight must be finite", field=f"{where}.weight", reason="BAD_WEIGHT"
            )
        weight = part.weight or 1.0  # 0 is the proto default: an unweighted part
        if kind == "image":
            parts.append(QueryPart("image", image=part.image, weight=weight))
        elif kind == "text":
            parts.append(QueryPart("text", text=part.text, weight=weight))
        else:
            parts.append(QueryPart("clip", clip=_clip(part.clip), weight=weight))
    return tuple(parts)


def _clip(clip: search_pb2.ClipReference) -> ClipRef:
    span = (clip.span.start_s, clip.span.end_s) if clip.HasField("span") else None
    return ClipRef(clip.video_id, span)


def _check_span(span: tuple[float, float], where: str) -> None:
    start_s, end_s = span
    if not (math.isfinite(start_s) and math.isfinite(end_s) and 0 <= start_s < end_s):
        raise InvalidArgument(
            f"{where}.span needs 0 ≤ start_s < end_s", field=f"{where}.span", reason="BAD_TIME"
        )


def parse_ingest(
    request: ingest_pb2.IngestVideosRequest, config: OrchestratorConfig
) -> IngestRequest:
    """Checks the size of an ingest; each item's URI is checked as it is ingested (a bad one
    fails alone)."""
    if not request.items:
        raise InvalidArgument("items is empty", field="items", reason="EMPTY_REQUEST")
    if len(request.items) > config.max_ingest_items:
        raise InvalidArgument(
            f"items has {len(request.items)} entries; the limit is {config.max_ingest_items}",
            field="items",
            reason="TOO_MANY_ITEMS",
        )
    return IngestRequest(
        items=tuple(
            IngestItem(uri=item.uri, title=item.title, labels=dict(item.labels))
            for item in request.items
        ),
        collection=collection_name(request.collection or config.default_collection),
    )
