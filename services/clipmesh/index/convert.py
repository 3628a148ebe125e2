"""The index's domain records in their API form and back, with nothing checked or lost.

Both directions live here because both sides of the index use them: the servicer answers with
`*_to_proto`, the typed client (`client.py`) reads answers with `*_from_proto` and writes
requests with `*_to_proto`. Checking a request is `requests.py`'s job, before any of this.
The orchestrator answers with the same `common.v1` messages (videos, hits, moments).
"""

from __future__ import annotations

import numpy as np

from clipmesh.index.filters import Clause, VideoFilter
from clipmesh.index.records import (
    MomentHit,
    SearchResult,
    Segments,
    VideoMeta,
    VideoResult,
    VideoWrite,
)
from clipmesh.runtime.messages import field_names, from_message, to_message
from clipmesh_api.common.v1 import common_pb2
from clipmesh_api.index.v1 import index_pb2

SOURCE_NAMES = {
    common_pb2.VIDEO_SOURCE_UNSPECIFIED: "",
    common_pb2.VIDEO_SOURCE_INGESTED: "ingested",
    common_pb2.VIDEO_SOURCE_GENERATED: "generated",
}
SOURCE_VALUES = {name: value for value, name in SOURCE_NAMES.items()}
_MOMENT = field_names({MomentHit: {"thumbnail": "thumbnail_uri"}})


def video_to_proto(collection: str, meta: VideoMeta) -> common_pb2.Video:
    """The API form of a video's metadata."""
    source = SOURCE_VALUES.get(meta.source, 0)
    return to_message(meta, common_pb2.Video, collection=collection, source=source)


def video_from_proto(video: common_pb2.Video) -> VideoMeta:
    """A video's metadata from its API form (the collection is the caller's to keep)."""
    return from_message(video, VideoMeta, source=SOURCE_NAMES.get(video.source, ""))


def segments_to_proto(segments: Segments) -> list[index_pb2.Segment]:
    """The API form of a video's segments."""
    return [
        index_pb2.Segment(
            start_s=float(segments.start_s[i]),
            end_s=float(segments.end_s[i]),
            keyframe_s=float(segments.keyframe_s[i]),
            vector=segments.vectors[i].tolist(),
            thumbnail_uri=segments.thumbnails[i],
        )
        for i in range(len(segments))
    ]


def segments_from_proto(segments) -> Segments:
    """Segments from their API form (vectors as they came: the index stores them unit-length)."""
    if not segments:
        empty = np.zeros(0)
        return Segments(empty, empty, empty, np.zeros((0, 0), np.float32), ())
    times = np.array([(s.start_s, s.end_s, s.keyframe_s) for s in segments], dtype=np.float64)
    return Segments(
        start_s=times[:, 0].copy(),
        end_s=times[:, 1].copy(),
        keyframe_s=times[:, 2].copy(),
        vectors=np.array([s.vector for s in segments], dtype=np.float32),
        thumbnails=tuple(s.thumbnail_uri for s in segments),
    )


def upsert_to_proto(collection: str, writes: list[VideoWrite]) -> index_pb2.UpsertSegmentsRequest:
    """The request that writes `writes` (also the write-ahead log's record of an upsert)."""
    request = index_pb2.UpsertSegmentsRequest(collection=collection)
    for write in writes:
        request.videos.add(
            video=video_to_proto(collection, write.meta),
            segments=segments_to_proto(write.segments),
        )
    return request


def hit_to_proto(collection: str, result: VideoResult) -> common_pb2.VideoHit:
    """The API form of one matching video and its moments."""
    return common_pb2.VideoHit(
        video=video_to_proto(collection, result.meta),
        score=result.score,
        moments=[to_message(m, common_pb2.Moment, renames=_MOMENT) for m in result.moments],
    )


def hit_from_proto(hit: common_pb2.VideoHit) -> VideoResult:
    """One matching video from its API form."""
    moments = tuple(from_message(m, MomentHit, renames=_MOMENT) for m in hit.moments)
    return VideoResult(video_from_proto(hit.video), hit.score, moments)


def search_result_to_proto(collection: str, result: SearchResult) -> index_pb2.SearchResponse:
    """The API form of a search result."""
    return index_pb2.SearchResponse(
        hits=[hit_to_proto(collection, r) for r in result.videos],
        degraded=result.degraded,
        degraded_reason=result.degraded_reason,
        index_type=result.index_type,
        timings=[
            common_pb2.StageTiming(stage=s, duration_ms=ms) for s, ms in result.timings_ms.items()
        ],
    )


def search_result_from_proto(response: index_pb2.SearchResponse) -> SearchResult:
    """A search result from its API form."""
    return SearchResult(
        videos=[hit_from_proto(hit) for hit in response.hits],
        index_type=response.index_type,
        degraded=response.degraded,
        degraded_reason=response.degraded_reason,
        timings_ms={t.stage: t.duration_ms for t in response.timings},
    )


def filter_to_proto(video_filter: VideoFilter | None) -> common_pb2.MetadataFilter | None:
    """The API form of a checked filter (the inverse of `filters.parse_filter`)."""
    if video_filter is None:
        return None
    return common_pb2.MetadataFilter(clauses=[_clause_to_proto(c) for c in video_filter.clauses])


def _clause_to_proto(clause: Clause) -> common_pb2.FilterClause:
    message = common_pb2.FilterClause(field=clause.field, negate=clause.negate)
    if clause.kind == "equals":
        message.equals = clause.values[0]
    elif clause.kind == "any_of":
        message.any_of.values.extend(clause.values)
    else:
        bounds = message.range
        bounds.SetInParent()
        if clause.low is not None:
            bounds.min = clause.low
        if clause.high is not None:
            bounds.max = clause.high
        bounds.min_exclusive = not clause.low_inclusive
        bounds.max_exclusive = not clause.high_inclusive
    return message
