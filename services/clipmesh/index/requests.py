"""Turning IndexService requests into validated domain objects.

Every check names the offending field (`videos[2].segments[5].vector`) and nothing is applied
unless the whole request is valid. Vectors must be finite and non-zero; vectors whose norm is
off 1 are normalised (callers may send raw model outputs), and the stored vector is the
normalised one.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from clipmesh.index.convert import video_from_proto
from clipmesh.index.filters import parse_filter
from clipmesh.index.records import SearchQuery, Segments, VideoWrite, collection_name
from clipmesh.runtime.errors import InvalidArgument
from clipmesh_api.index.v1 import index_pb2


@dataclass(frozen=True)
class Limits:
    """Caps on one request."""

    max_videos_per_upsert: int = 1000
    max_segments_per_video: int = 20_000
    max_segments_per_upsert: int = 200_000
    max_dimension: int = 4096
    max_top_k: int = 1000
    max_moments: int = 20
    default_moments: int = 3
    max_query_vectors: int = 16
    max_id_chars: int = 256
    max_label_chars: int = 4096


def video_id(value: str, where: str, limits: Limits) -> str:
    """A checked video id: non-empty, bounded, no control characters."""
    if not value:
        raise InvalidArgument(f"{where} is empty", field=where, reason="EMPTY_ID")
    if len(value) > limits.max_id_chars or any(ord(c) < 32 for c in value):
        raise InvalidArgument(
            f"{where} must be at most {limits.max_id_chars} characters without control characters",
            field=where,
            reason="BAD_ID",
        )
    return value


def unit_vectors(values: np.ndarray, where: str) -> np.ndarray:
    """Rows checked finite and non-zero, then L2-normalised (float32)."""
    if not np.isfinite(values).all():
        row = int(np.argwhere(~np.isfinite(values))[0][0]) if values.ndim == 2 else 0
        at = f"{where}[{row}]" if values.ndim == 2 else where
        raise InvalidArgument(f"{at} contains NaN or infinity", field=at, reason="BAD_VECTOR")
    norms = np.linalg.norm(values, axis=-1, keepdims=True)
    if (norms == 0).any():
        row = int(np.argwhere(norms.ravel() == 0)[0][0])
        at = f"{where}[{row}]" if values.ndim == 2 else where
        raise InvalidArgument(f"{at} is all zeros", field=at, reason="BAD_VECTOR")
    return (values / norms).astype(np.float32)


def parse_upsert(
    request: index_pb2.UpsertSegmentsRequest, limits: Limits
) -> tuple[str, list[VideoWrite]]:
    """Validates an upsert; returns (collection, videos)."""
    collection = collection_name(request.collection)
    if not request.videos:
        raise InvalidArgument("videos is empty", field="videos", reason="EMPTY_REQUEST")
    if len(request.videos) > limits.max_videos_per_upsert:
        raise InvalidArgument(
            f"videos has {len(request.videos)} entries; the limit is "
            f"{limits.max_videos_per_upsert}",
            field="videos",
            reason="TOO_MANY_ITEMS",
        )
    total = sum(len(v.segments) for v in request.videos)
    if total > limits.max_segments_per_upsert:
        raise InvalidArgument(
            f"the request holds {total} segments; the limit is {limits.max_segments_per_upsert}",
            field="videos",
            reason="TOO_MANY_ITEMS",
        )
    seen: set[str] = set()
    writes = []
    for index, entry in enumerate(request.videos):
        write = _parse_video(entry, f"videos[{index}]", limits)
        if write.meta.video_id in seen:
            raise InvalidArgument(
                f"videos[{index}].video.video_id {write.meta.video_id!r} appears twice",
                field=f"videos[{index}].video.video_id",
                reason="DUPLICATE_ID",
            )
        seen.add(write.meta.video_id)
        writes.append(write)
    dimensions = {w.segments.vectors.shape[1] for w in writes if len(w.segments)}
    if len(dimensions) > 1:
        raise InvalidArgument(
            f"vectors of one request differ in dimension: {sorted(dimensions)}",
            field="videos",
            reason="DIMENSION_MISMATCH",
        )
    return collection, writes


def _parse_video(entry: index_pb2.VideoSegments, where: str, limits: Limits) -> VideoWrite:
    video = entry.video
    identifier = video_id(video.video_id, f"{where}.video.video_id", limits)
    for key, value in video.labels.items():
        if len(key) > 128 or len(value) > limits.max_label_chars:
            raise InvalidArgument(
                f"{where}.video.labels[{key[:40]!r}] is too long",
                field=f"{where}.video.labels",
                reason="LABEL_TOO_LONG",
            )
    for name in ("duration_s", "fps"):
        value = getattr(video, name)
        if not math.isfinite(value) or value < 0:
            raise InvalidArgument(
                f"{where}.video.{name} must be a finite number ≥ 0",
                field=f"{where}.video.{name}",
                reason="BAD_METADATA",
            )
    meta = dataclasses.replace(video_from_proto(video), video_id=identifier)
    return VideoWrite(meta, _parse_segments(entry.segments, f"{where}.segments", limits))


def _parse_segments(segments, where: str, limits: Limits) -> Segments:
    if len(segments) > limits.max_segments_per_video:
        raise InvalidArgument(
            f"{where} has {len(segments)} segments; the limit is {limits.max_segments_per_video}",
            field=where,
            reason="TOO_MANY_ITEMS",
        )
    if not segments:
        empty = np.zeros(0)
        return Segments(empty, empty, empty, np.zeros((0, 0), np.float32), ())
    dimension = len(segments[0].vector)
    if not 1 <= dimension <= limits.max_dimension:
        raise InvalidArgument(
            f"{where}[0].vector has dimension {dimension}; it must be 1 to {limits.max_dimension}",
            field=f"{where}[0].vector",
            reason="DIMENSION_MISMATCH",
        )
    for index, segment in enumerate(segments):
        if len(segment.vector) != dimension:
            raise InvalidArgument(
                f"{where}[{index}].vector has dimension {len(segment.vector)}, not {dimension}",
                field=f"{where}[{index}].vector",
                reason="DIMENSION_MISMATCH",
            )
    times = np.array([(s.start_s, s.end_s, s.keyframe_s) for s in segments], dtype=np.float64)
    for index, (start, end, keyframe) in enumerate(times):
        if not (math.isfinite(start) and math.isfinite(end) and math.isfinite(keyframe)):
            raise InvalidArgument(
                f"{where}[{index}] has a non-finite time",
                field=f"{where}[{index}]",
                reason="BAD_TIME",
            )
        if not 0 <= start < end or not start <= keyframe <= end:
            raise InvalidArgument(
                f"{where}[{index}] needs 0 ≤ start_s < end_s and start_s ≤ keyframe_s ≤ end_s "
                f"(got {start}, {end}, {keyframe})",
                field=f"{where}[{index}]",
                reason="BAD_TIME",
            )
    vectors = np.array([s.vector for s in segments], dtype=np.float32)
    vectors = unit_vectors(vectors, f"{where}[].vector")
    return Segments(
        times[:, 0].copy(),
        times[:, 1].copy(),
        times[:, 2].copy(),
        vectors,
        tuple(s.thumbnail_uri for s in segments),
    )


def parse_search(
    request: index_pb2.SearchRequest, limits: Limits, *, deadline: float | None
) -> SearchQuery:
    """Validates a search; combines its weighted vectors into one query vector."""
    collection = collection_name(request.collection)
    if not request.queries:
        raise InvalidArgument("queries is empty", field="queries", reason="EMPTY_REQUEST")
    if len(request.queries) > limits.max_query_vectors:
        raise InvalidArgument(
            f"queries has {len(request.queries)} entries; the limit is {limits.max_query_vectors}",
            field="queries",
            reason="TOO_MANY_ITEMS",
        )
    if not 1 <= request.top_k <= limits.max_top_k:
        raise InvalidArgument(
            f"top_k must be 1 to {limits.max_top_k}, not {request.top_k}",
            field="top_k",
            reason="BAD_TOP_K",
        )
    moments = request.max_moments_per_video or limits.default_moments
    if not 1 <= moments <= limits.max_moments:
        raise InvalidArgument(
            f"max_moments_per_video must be 0 (default) to {limits.max_moments}",
            field="max_moments_per_video",
            reason="BAD_MOMENTS",
        )
    dimension = len(request.queries[0].vector)
    combined = np.zeros(dimension, dtype=np.float64)
    positive = 0.0
    for index, part in enumerate(request.queries):
        where = f"queries[{index}]"
        if len(part.vector) != dimension or dimension == 0:
            raise InvalidArgument(
                f"{where}.vector has dimension {len(part.vector)}, not {dimension}",
                field=f"{where}.vector",
                reason="DIMENSION_MISMATCH",
            )
        if not math.isfinite(part.weight) or part.weight == 0:
            raise InvalidArgument(
                f"{where}.weight must be a non-zero finite number",
                field=f"{where}.weight",
                reason="BAD_WEIGHT",
            )
        vector = unit_vectors(np.array(part.vector, dtype=np.float32), f"{where}.vector")
        combined += part.weight * vector
        positive += max(part.weight, 0.0)
    if positive == 0:
        raise InvalidArgument(
            "at least one query needs a positive weight", field="queries", reason="BAD_WEIGHT"
        )
    return SearchQuery(
        collection=collection,
        vector=(combined / positive).astype(np.float32),
        top_k=request.top_k,
        max_moments=moments,
        filter=parse_filter(request.filter) if request.HasField("filter") else None,
        deadline=deadline,
    )


def parse_delete(request: index_pb2.DeleteVideosRequest, limits: Limits) -> tuple[str, list[str]]:
    """Validates a delete; returns (collection, ids)."""
    collection = collection_name(request.collection)
    if not request.video_ids:
        raise InvalidArgument("video_ids is empty", field="video_ids", reason="EMPTY_REQUEST")
    if len(request.video_ids) > limits.max_videos_per_upsert:
        raise InvalidArgument(
            f"video_ids has {len(request.video_ids)} entries; the limit is "
            f"{limits.max_videos_per_upsert}",
            field="video_ids",
            reason="TOO_MANY_ITEMS",
        )
    return collection, [
        video_id(v, f"video_ids[{i}]", limits) for i, v in enumerate(request.video_ids)
    ]


# Replaying the log must accept whatever was accepted when it was written, whatever the
# limits are today.
REPLAY_LIMITS = Limits(
    max_videos_per_upsert=1 << 30,
    max_segments_per_video=1 << 30,
    max_segments_per_upsert=1 << 30,
    max_dimension=1 << 20,
    max_id_chars=1 << 20,
    max_label_chars=1 << 30,
)
