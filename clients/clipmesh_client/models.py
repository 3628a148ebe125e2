"""What the SDK returns: frozen dataclasses, converted from the API's protobufs.

Enums become short lowercase strings (`"ingested"`, `"probing"`), timestamps become aware UTC
datetimes, unknown values become `None` or `""`, so callers never touch generated code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from clipmesh_api.common.v1 import access_pb2, common_pb2
from clipmesh_api.orchestrator.v1 import account_pb2, ingest_pb2, search_pb2

_SOURCES = {
    common_pb2.VIDEO_SOURCE_INGESTED: "ingested",
    common_pb2.VIDEO_SOURCE_GENERATED: "generated",
}
_STAGE_PREFIX = "INGEST_STAGE_"
FINAL_STAGES = frozenset({"done", "duplicate", "failed"})
"""The stages after which a video's progress does not change any more."""


@dataclass(frozen=True)
class Video:
    """One video of a collection.

    Attributes:
        video_id: Stable identifier inside its collection.
        collection: The collection (namespace) it belongs to.
        uri: Where its file lives (a local path or `file://` URI on the server).
        title: Human-readable title.
        duration_s: Duration in seconds.
        fps: Average frame rate.
        width: Frame width in pixels.
        height: Frame height in pixels.
        size_bytes: File size in bytes.
        source: How it entered the library: "ingested", "generated", or "" when unknown.
        created_at: When it was added (UTC), or None when the service did not say.
        labels: Free key/value metadata.
        content_sha256: SHA-256 of the file's content, hex encoded.
        segments: Number of indexed segments; only `get_video` reports it (None elsewhere).
    """

    video_id: str
    collection: str = ""
    uri: str = ""
    title: str = ""
    duration_s: float = 0.0
    fps: float = 0.0
    width: int = 0
    height: int = 0
    size_bytes: int = 0
    source: str = ""
    created_at: datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)
    content_sha256: str = ""
    segments: int | None = None


@dataclass(frozen=True)
class Moment:
    """A span of a video that matches the query.

    Attributes:
        start_s: Start of the span in seconds.
        end_s: End of the span in seconds.
        peak_s: Time of the best-matching keyframe in seconds.
        score: Similarity of that keyframe to the query (cosine; higher is closer).
        thumbnail_uri: Thumbnail of the peak keyframe, or "" when none was stored.
    """

    start_s: float
    end_s: float
    peak_s: float
    score: float
    thumbnail_uri: str = ""


@dataclass(frozen=True)
class VideoHit:
    """A matching video with its best moments.

    Attributes:
        video: The video's metadata.
        score: The score of its best moment.
        moments: Its best moments, highest score first.
    """

    video: Video
    score: float
    moments: tuple[Moment, ...] = ()


@dataclass(frozen=True)
class SearchResult:
    """The answer to a search.

    Attributes:
        hits: The matching videos, best first.
        degraded: True when the latency budget forced a cheaper, less exact search.
        timings_ms: Milliseconds spent per stage ("encode", "index.search", …).
        cache_hit: True when the answer came from the service's hot-query cache.
        model_id: The encoder model that embedded the query.
        warnings: Things the caller should know (for example "weights are random").
        hits_below_min_score: How many of the `top_k` best videos `min_score` left out.
    """

    hits: tuple[VideoHit, ...] = ()
    degraded: bool = False
    timings_ms: dict[str, float] = field(default_factory=dict)
    cache_hit: bool = False
    model_id: str = ""
    warnings: tuple[str, ...] = ()
    hits_below_min_score: int = 0


@dataclass(frozen=True)
class IngestProgress:
    """The state of one video of an ingest.

    Attributes:
        uri: The path or URI as given.
        video_id: The video's identifier, or "" until known.
        stage: "queued", "probing", "detecting_shots", "extracting", "encoding", "indexing",
            then one of the final stages "done", "duplicate" or "failed"; "" if unknown.
        fraction: Fraction of this video done, 0 to 1.
        eta_s: Estimated seconds until this video is done, or None when unknown.
        segments: Segments indexed so far.
        error_reason: Why it failed, machine-readable ("NOT_A_VIDEO", …); "" unless failed.
        error_message: Why it failed, for people; "" unless failed.
    """

    uri: str
    video_id: str = ""
    stage: str = ""
    fraction: float = 0.0
    eta_s: float | None = None
    segments: int = 0
    error_reason: str = ""
    error_message: str = ""

    @property
    def finished(self) -> bool:
        """True once the video is done, was a duplicate, or failed."""
        return self.stage in FINAL_STAGES


@dataclass(frozen=True)
class IngestSummary:
    """The totals of an ingest; always its last event.

    Attributes:
        ingested: Videos ingested and searchable.
        duplicates: Videos skipped because the same content was already there.
        failed: Videos that failed.
        segments: Segments indexed in total.
        video_seconds: Seconds of video ingested.
        wall_seconds: Wall-clock seconds the batch took.
    """

    ingested: int = 0
    duplicates: int = 0
    failed: int = 0
    segments: int = 0
    video_seconds: float = 0.0
    wall_seconds: float = 0.0


IngestEvent = IngestProgress | IngestSummary
"""One event of an ingest stream."""


class DeleteResult(NamedTuple):
    """What `delete_videos` removed; unpacks as `(deleted_count, not_found_ids)`.

    Attributes:
        deleted_count: Number of videos removed.
        not_found_ids: Requested identifiers that were not there.
    """

    deleted_count: int
    not_found_ids: list[str]


@dataclass(frozen=True)
class Grant:
    """One line of the caller's policy: roles, and the collections they apply to.

    Attributes:
        roles: "search", "ingest", "delete", "generate", "previs" or "admin".
        collections: Collection names and glob patterns ("team-a-*") the collection-scoped
            roles (search, ingest, delete, previs) apply to; empty for the others.
    """

    roles: tuple[str, ...]
    collections: tuple[str, ...] = ()


@dataclass(frozen=True)
class QuotaUsage:
    """One quota of the caller: its limit, what is used, and when it starts again from zero.

    Attributes:
        quota: "ingest_bytes_per_day", "provider_video_seconds_per_day" or "concurrent_jobs".
        limit: The limit, or None when the quota is unlimited.
        used: What is used now (today, for a daily quota).
        unit: The unit of `limit` and `used`: "bytes", "seconds" or "jobs".
        reset_time: When a daily quota resets (the next midnight, UTC); None for the others.
    """

    quota: str
    limit: float | None
    used: float
    unit: str
    reset_time: datetime | None = None


@dataclass(frozen=True)
class CallerInfo:
    """Who the API takes the caller for, and what it may do (`Client.whoami`).

    Attributes:
        caller: The identity the caller's token proves ("anonymous" when authentication is
            off).
        admin: True when the caller may do everything (also when no policy is set).
        authorization_enabled: True when a policy decides what callers may do; False means
            every caller may do everything.
        grants: What the policy grants the caller.
        quotas: The caller's quotas and their use.
        warnings: Things the caller should know (for example that generation quotas are
            unknown because the generator did not answer).
    """

    caller: str
    admin: bool
    authorization_enabled: bool
    grants: tuple[Grant, ...] = ()
    quotas: tuple[QuotaUsage, ...] = ()
    warnings: tuple[str, ...] = ()


def video_from_proto(video: common_pb2.Video, *, segments: int | None = None) -> Video:
    """The `Video` for its protobuf (and its segment count, where the response carries one)."""
    created_at = video.create_time.ToDatetime(tzinfo=UTC) if video.HasField("create_time") else None
    return Video(
        video_id=video.video_id,
        collection=video.collection,
        uri=video.uri,
        title=video.title,
        duration_s=video.duration_s,
        fps=video.fps,
        width=video.width,
        height=video.height,
        size_bytes=video.size_bytes,
        source=_SOURCES.get(video.source, ""),
        created_at=created_at,
        labels=dict(video.labels),
        content_sha256=video.content_sha256,
        segments=segments,
    )


def moment_from_proto(moment: common_pb2.Moment) -> Moment:
    """The `Moment` for its protobuf."""
    return Moment(
        start_s=moment.start_s,
        end_s=moment.end_s,
        peak_s=moment.peak_s,
        score=moment.score,
        thumbnail_uri=moment.thumbnail_uri,
    )


def hit_from_proto(hit: common_pb2.VideoHit) -> VideoHit:
    """The `VideoHit` for its protobuf."""
    return VideoHit(
        video=video_from_proto(hit.video),
        score=hit.score,
        moments=tuple(moment_from_proto(m) for m in hit.moments),
    )


def search_result_from_proto(response: search_pb2.SearchVideosResponse) -> SearchResult:
    """The `SearchResult` for a `SearchVideosResponse`; repeated stages add up."""
    timings_ms: dict[str, float] = {}
    for timing in response.timings:
        timings_ms[timing.stage] = timings_ms.get(timing.stage, 0.0) + timing.duration_ms
    return SearchResult(
        hits=tuple(hit_from_proto(h) for h in response.hits),
        degraded=response.degraded,
        timings_ms=timings_ms,
        cache_hit=response.cache_hit,
        model_id=response.model_id,
        warnings=tuple(response.warnings),
        hits_below_min_score=response.hits_below_min_score,
    )


def stage_name(stage: int) -> str:
    """ "probing" for `INGEST_STAGE_PROBING`; "" for unspecified or unknown stages."""
    if stage == ingest_pb2.INGEST_STAGE_UNSPECIFIED:
        return ""
    try:
        return ingest_pb2.IngestStage.Name(stage).removeprefix(_STAGE_PREFIX).lower()
    except ValueError:  # a stage newer than this SDK
        return ""


def ingest_event_from_proto(response: ingest_pb2.IngestVideosResponse) -> IngestEvent:
    """The `IngestProgress` or `IngestSummary` one ingest stream message carries."""
    if response.WhichOneof("event") == "summary":
        summary = response.summary
        return IngestSummary(
            ingested=summary.ingested,
            duplicates=summary.duplicates,
            failed=summary.failed,
            segments=summary.segments,
            video_seconds=summary.video_seconds,
            wall_seconds=summary.wall_seconds,
        )
    progress = response.progress
    return IngestProgress(
        uri=progress.uri,
        video_id=progress.video_id,
        stage=stage_name(progress.stage),
        fraction=progress.fraction,
        eta_s=progress.eta_s if progress.eta_s >= 0 else None,
        segments=progress.segments,
        error_reason=progress.error.reason,
        error_message=progress.error.message,
    )


def quota_usage_from_proto(usage: access_pb2.QuotaUsage) -> QuotaUsage:
    """The `QuotaUsage` for its protobuf."""
    reset_time = usage.reset_time.ToDatetime(tzinfo=UTC) if usage.HasField("reset_time") else None
    return QuotaUsage(
        quota=usage.quota,
        limit=usage.limit if usage.HasField("limit") else None,
        used=usage.used,
        unit=usage.unit,
        reset_time=reset_time,
    )


def caller_info_from_proto(response: account_pb2.GetCallerResponse) -> CallerInfo:
    """The `CallerInfo` for a `GetCallerResponse`."""
    return CallerInfo(
        caller=response.caller,
        admin=response.admin,
        authorization_enabled=response.authorization_enabled,
        grants=tuple(Grant(tuple(g.roles), tuple(g.collections)) for g in response.grants),
        quotas=tuple(quota_usage_from_proto(q) for q in response.quotas),
        warnings=tuple(response.warnings),
    )
