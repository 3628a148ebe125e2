"""The API form of the orchestrator's answers (the servicer's side of the boundary)."""

from __future__ import annotations

from clipmesh.index.client import StoredVideo, VideoPage
from clipmesh.index.convert import hit_to_proto, video_to_proto
from clipmesh.media.records import IngestStage, IngestSummary, VideoProgress
from clipmesh.orchestrator.records import SearchResponse
from clipmesh_api.common.v1 import common_pb2
from clipmesh_api.orchestrator.v1 import ingest_pb2, search_pb2


def search_response_to_proto(response: SearchResponse) -> search_pb2.SearchVideosResponse:
    """The API form of a search's answer."""
    return search_pb2.SearchVideosResponse(
        hits=[hit_to_proto(response.collection, hit) for hit in response.hits],
        degraded=response.degraded,
        timings=[
            common_pb2.StageTiming(stage=t.stage, duration_ms=t.duration_ms)
            for t in response.timings
        ],
        cache_hit=response.cache_hit,
        model_id=response.model_id,
        warnings=response.warnings,
    )


def stage_to_proto(stage: IngestStage) -> int:
    """The `IngestStage` enum value of a stage."""
    return ingest_pb2.IngestStage.Value(f"INGEST_STAGE_{stage.name}")


def progress_to_proto(progress: VideoProgress) -> ingest_pb2.IngestVideosResponse:
    """One video's progress as a stream message."""
    message = ingest_pb2.VideoProgress(
        uri=progress.uri,
        video_id=progress.video_id,
        stage=stage_to_proto(progress.stage),
        fraction=progress.fraction,
        eta_s=progress.eta_s,
        segments=progress.segments,
    )
    if progress.error is not None:
        message.error.reason, message.error.message = progress.error.reason, progress.error.message
    return ingest_pb2.IngestVideosResponse(progress=message)


def summary_to_proto(summary: IngestSummary) -> ingest_pb2.IngestVideosResponse:
    """A request's totals as the stream's last message."""
    return ingest_pb2.IngestVideosResponse(
        summary=ingest_pb2.IngestSummary(
            ingested=summary.ingested,
            duplicates=summary.duplicates,
            failed=summary.failed,
            segments=summary.segments,
            video_seconds=summary.video_seconds,
            wall_seconds=summary.wall_seconds,
        )
    )


def video_response(collection: str, stored: StoredVideo) -> ingest_pb2.GetVideoResponse:
    """The API form of one stored video."""
    return ingest_pb2.GetVideoResponse(
        video=video_to_proto(collection, stored.meta), segments=stored.segment_count
    )


def videos_response(collection: str, page: VideoPage) -> ingest_pb2.ListVideosResponse:
    """The API form of a page of videos."""
    return ingest_pb2.ListVideosResponse(
        videos=[video_to_proto(collection, meta) for meta in page.videos],
        page=common_pb2.PageResponse(
            next_page_token=page.next_page_token, total_size=page.total_size
        ),
    )
