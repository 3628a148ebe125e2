"""The API form of the orchestrator's answers (the servicer's side of the boundary)."""

from __future__ import annotations

from clipmesh.index.client import StoredVideo, VideoPage
from clipmesh.index.convert import hit_to_proto, video_to_proto
from clipmesh.media.records import IngestSummary, VideoProgress
from clipmesh.orchestrator.account import CallerInfo
from clipmesh.orchestrator.records import SearchResponse
from clipmesh.runtime.messages import to_message
from clipmesh.runtime.usage import quota_use_to_proto
from clipmesh_api.common.v1 import common_pb2
from clipmesh_api.orchestrator.v1 import account_pb2, ingest_pb2, search_pb2


def search_response_to_proto(response: SearchResponse) -> search_pb2.SearchVideosResponse:
    """The API form of a search's answer."""
    hits = [hit_to_proto(response.collection, hit) for hit in response.hits]
    return to_message(response, search_pb2.SearchVideosResponse, hits=hits)


def progress_to_proto(progress: VideoProgress) -> ingest_pb2.IngestVideosResponse:
    """One video's progress as a stream message."""
    return ingest_pb2.IngestVideosResponse(progress=to_message(progress, ingest_pb2.VideoProgress))


def summary_to_proto(summary: IngestSummary) -> ingest_pb2.IngestVideosResponse:
    """A request's totals as the stream's last message."""
    return ingest_pb2.IngestVideosResponse(summary=to_message(summary, ingest_pb2.IngestSummary))


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


def caller_info_to_proto(info: CallerInfo) -> account_pb2.GetCallerResponse:
    """The API form of who the caller is."""
    return account_pb2.GetCallerResponse(
        caller=info.caller,
        admin=info.admin,
        authorization_enabled=info.authorization_enabled,
        grants=[
            account_pb2.Grant(roles=sorted(g.roles), collections=list(g.collections))
            for g in info.grants
        ],
        quotas=[quota_use_to_proto(use) for use in info.quotas],
        warnings=info.warnings,
    )
