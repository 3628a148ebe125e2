"""A fake orchestrator for the SDK's tests: search and ingest services with canned answers
that record what reaches them (requests, deadlines, headers), and the standard health service,
served on a free loopback port by `fake_orchestrator()`."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from clipmesh.runtime.errors import InvalidArgument, trailing_metadata_for
from clipmesh_api.common.v1 import common_pb2
from clipmesh_api.orchestrator.v1 import ingest_pb2, ingest_pb2_grpc, search_pb2, search_pb2_grpc

DOMAIN = "orchestrator.clipmesh"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
LIBRARY = [common_pb2.Video(video_id=f"v{i}", title=f"Video {i}") for i in range(7)]


class FakeSearch(search_pb2_grpc.SearchServiceServicer):
    """Answers as the first part's text says; records requests, deadlines and headers."""

    def __init__(self) -> None:
        self.requests: list[search_pb2.SearchVideosRequest] = []
        self.time_remaining_s: list[float] = []
        self.headers: list[dict[str, str]] = []
        self.unavailable_left = 0  # "flaky" queries fail UNAVAILABLE this many times

    async def SearchVideos(self, request, context):
        self.requests.append(request)
        self.time_remaining_s.append(context.time_remaining())
        self.headers.append(dict(context.invocation_metadata()))
        command = request.parts[0].text
        if command == "invalid":
            error = InvalidArgument(
                "top_k: 500 is above the limit of 100", field="top_k", reason="TOP_K_TOO_LARGE"
            )
            await context.abort(
                error.code, error.message, trailing_metadata_for(error, domain=DOMAIN)
            )
        if command == "slow":
            await asyncio.sleep(2)
        if command == "flaky" and self.unavailable_left > 0:
            self.unavailable_left -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "warming up")
        hit = common_pb2.VideoHit(
            video=LIBRARY[0],
            score=0.8,
            moments=[common_pb2.Moment(start_s=1, end_s=4, peak_s=2, score=0.8)],
        )
        return search_pb2.SearchVideosResponse(
            hits=[hit],
            timings=[common_pb2.StageTiming(stage="encode", duration_ms=3.0)],
            model_id="fake-clip",
        )


class FakeIngest(ingest_pb2_grpc.IngestServiceServicer):
    """Ingests any path but `bad.mp4` (fails) and `hang.mp4` (never ends); lists `LIBRARY`
    by offset page tokens; records requests."""

    def __init__(self) -> None:
        self.requests: list[object] = []
        self.time_remaining_s: list[float] = []
        self.cancelled = threading.Event()  # set when a caller abandons an ingest stream

    async def IngestVideos(self, request, context):
        self.requests.append(request)
        self.time_remaining_s.append(context.time_remaining())
        for index, item in enumerate(request.items):
            if item.uri.endswith("hang.mp4"):
                yield ingest_pb2.IngestVideosResponse(
                    progress=ingest_pb2.VideoProgress(uri=item.uri)
                )
                try:
                    await asyncio.sleep(30)
                except asyncio.CancelledError:
                    self.cancelled.set()
                    raise
            if item.uri.endswith("bad.mp4"):
                failed = ingest_pb2.VideoProgress(
                    uri=item.uri,
                    stage=ingest_pb2.INGEST_STAGE_FAILED,
                    error=ingest_pb2.IngestError(reason="NOT_A_VIDEO", message="no video stream"),
                )
                yield ingest_pb2.IngestVideosResponse(progress=failed)
                continue
            for stage, fraction in (
                (ingest_pb2.INGEST_STAGE_PROBING, 0.1),
                (ingest_pb2.INGEST_STAGE_DONE, 1.0),
            ):
                progress = ingest_pb2.VideoProgress(
                    uri=item.uri, video_id=f"new{index}", stage=stage, fraction=fraction
                )
                yield ingest_pb2.IngestVideosResponse(progress=progress)
        yield ingest_pb2.IngestVideosResponse(
            summary=ingest_pb2.IngestSummary(ingested=1, failed=1, segments=12)
        )

    async def ListVideos(self, request, context):
        self.requests.append(request)
        start = int(request.page.page_token or 0)
        end = start + request.page.page_size
        token = str(end) if end < len(LIBRARY) else ""
        return ingest_pb2.ListVideosResponse(
            videos=LIBRARY[start:end], page=common_pb2.PageResponse(next_page_token=token)
        )

    async def GetVideo(self, request, context):
        for video in LIBRARY:
            if video.video_id == request.video_id:
                return ingest_pb2.GetVideoResponse(video=video, segments=5)
        await context.abort(grpc.StatusCode.NOT_FOUND, f"no video {request.video_id}")

    async def DeleteVideos(self, request, context):
        known = {v.video_id for v in LIBRARY}
        return ingest_pb2.DeleteVideosResponse(
            deleted_count=sum(i in known for i in request.video_ids),
            not_found_ids=[i for i in request.video_ids if i not in known],
        )


@dataclass
class FakeOrchestrator:
    """The fakes serving on one loopback port, with the standard health service."""

    target: str
    search: FakeSearch
    ingest: FakeIngest
    health: health.aio.HealthServicer

    async def serve_after(self, delay_s: float) -> None:
        """Reports NOT_SERVING now and SERVING after `delay_s`."""
        await self.health.set("", NOT_SERVING)
        await asyncio.sleep(delay_s)
        await self.health.set("", SERVING)


@contextlib.asynccontextmanager
async def fake_orchestrator() -> AsyncIterator[FakeOrchestrator]:
    """Serves the fakes on a free loopback port until the block exits."""
    server = grpc.aio.server()
    fake_search, fake_ingest, health_servicer = (
        FakeSearch(),
        FakeIngest(),
        health.aio.HealthServicer(),
    )
    search_pb2_grpc.add_SearchServiceServicer_to_server(fake_search, server)
    ingest_pb2_grpc.add_IngestServiceServicer_to_server(fake_ingest, server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await health_servicer.set("", SERVING)
    try:
        yield FakeOrchestrator(f"127.0.0.1:{port}", fake_search, fake_ingest, health_servicer)
    finally:
        await server.stop(grace=None)
