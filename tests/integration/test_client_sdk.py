"""The SDK against a real gRPC server on loopback: fake orchestrator services with canned
answers record what reaches them, for `Client` (server on its own thread) and `AsyncClient`."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from clipmesh.runtime.errors import InvalidArgument, trailing_metadata_for
from clipmesh_api.common.v1 import common_pb2
from clipmesh_api.orchestrator.v1 import ingest_pb2, ingest_pb2_grpc, search_pb2, search_pb2_grpc
from clipmesh_client import (
    AsyncClient,
    Client,
    DeadlineExceededError,
    DeleteResult,
    IngestProgress,
    IngestSummary,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
    equals,
)

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


class ServerThread:
    """Runs the fake orchestrator on an event loop of its own, for the blocking `Client`."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)

    async def _serve(self) -> None:
        self.loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with fake_orchestrator() as fake:
            self.fake = fake
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> FakeOrchestrator:
        self._thread.start()
        if not self._ready.wait(5):
            raise TimeoutError("the fake orchestrator did not start")
        return self.fake

    def __exit__(self, *exc_info: object) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)

    def submit(self, coroutine) -> None:
        """Starts `coroutine` on the server's loop without waiting for it."""
        asyncio.run_coroutine_threadsafe(coroutine, self.loop)


@pytest.fixture
def server_thread() -> Iterator[ServerThread]:
    thread = ServerThread()
    with thread:
        yield thread


@pytest.fixture
def served(server_thread: ServerThread) -> FakeOrchestrator:
    return server_thread.fake


@pytest.fixture
def client(served: FakeOrchestrator) -> Iterator[Client]:
    with Client(served.target, metadata=[("x-team", "vision")]) as blocking:
        yield blocking


@pytest.fixture
async def orchestrator() -> AsyncIterator[FakeOrchestrator]:
    async with fake_orchestrator() as fake:
        yield fake


@pytest.fixture
async def aclient(orchestrator: FakeOrchestrator) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(orchestrator.target, metadata=[("x-team", "vision")]) as client:
        yield client


# --- Client (blocking) -------------------------------------------------------------------


def test_search_round_trip_sends_weighted_parts_a_deadline_and_headers(client, served) -> None:
    result = client.search(text="beach", not_text="night", top_k=3, filter=equals("fps", 25))
    (hit,) = result.hits
    assert (hit.video.video_id, hit.moments[0].start_s) == ("v0", 1.0)
    assert (result.model_id, result.timings_ms) == ("fake-clip", {"encode": 3.0})
    (request,) = served.search.requests
    assert [(p.text, p.weight) for p in request.parts] == [("beach", 1.0), ("night", -1.0)]
    assert request.top_k == 3
    assert request.filter == equals("fps", 25)
    # The client's default deadline; gRPC rounds the timeout header up a little.
    assert 4.0 < served.search.time_remaining_s[0] < 5.1
    assert served.search.headers[0]["x-team"] == "vision"


def test_a_per_call_timeout_becomes_the_deadline(client, served) -> None:
    client.search(text="beach", timeout_s=1.5)
    assert 1.0 < served.search.time_remaining_s[0] < 1.6


def test_ingest_streams_progress_then_a_summary_under_a_long_deadline(client, served) -> None:
    events = list(client.ingest(["clips/a.mp4", "clips/bad.mp4"], labels={"take": "1"}))
    assert [type(e) for e in events] == [IngestProgress] * 3 + [IngestSummary]
    assert [e.stage for e in events[:3]] == ["probing", "done", "failed"]
    assert (events[2].uri, events[2].error_reason) == ("clips/bad.mp4", "NOT_A_VIDEO")
    assert events[-1] == IngestSummary(ingested=1, failed=1, segments=12)
    (request,) = served.ingest.requests
    assert [i.uri for i in request.items] == ["clips/a.mp4", "clips/bad.mp4"]
    assert served.ingest.time_remaining_s[0] > 3000  # the ingest default, not 5 s


def test_leaving_an_ingest_loop_early_cancels_the_stream(client, served) -> None:
    events = client.ingest(["clips/hang.mp4"])
    assert next(events).uri == "clips/hang.mp4"
    events.close()  # what `break` out of a for loop does
    assert served.ingest.cancelled.wait(2)


def test_list_videos_follows_three_pages_lazily(client, served) -> None:
    videos = client.list_videos(page_size=3)
    assert served.ingest.requests == []  # nothing is fetched before iteration
    assert next(videos).video_id == "v0"
    assert len(served.ingest.requests) == 1
    rest = [v.video_id for v in videos]
    assert rest == [f"v{i}" for i in range(1, 7)]
    assert [r.page.page_token for r in served.ingest.requests] == ["", "3", "6"]


def test_get_and_delete_videos(client) -> None:
    video = client.get_video("v2")
    assert (video.title, video.segments) == ("Video 2", 5)
    assert next(iter(client.list_videos())).segments is None  # listings do not count them
    with pytest.raises(NotFoundError):
        client.get_video("nope")
    assert client.delete_videos(["v1", "nope"]) == DeleteResult(1, ["nope"])


def test_a_rich_invalid_argument_becomes_a_typed_error(client) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        client.search(text="invalid")
    error = raised.value
    assert (error.reason, error.domain, error.metadata) == (
        "TOP_K_TOO_LARGE",
        DOMAIN,
        {"field": "top_k"},
    )
    assert isinstance(error.__cause__, grpc.RpcError)


def test_a_call_past_its_deadline_raises_deadline_exceeded(client) -> None:
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError):
        client.search(text="slow", timeout_s=0.2)
    assert time.monotonic() - started < 1.5


def test_unavailable_is_retried_up_to_max_attempts(served) -> None:
    served.search.unavailable_left = 2
    with Client(served.target, max_attempts=3) as retrying:
        assert retrying.search(text="flaky").hits
    assert len(served.search.requests) == 3
    served.search.unavailable_left = 2
    with Client(served.target, max_attempts=2) as too_few, pytest.raises(UnavailableError):
        too_few.search(text="flaky")
    assert len(served.search.requests) == 5


def test_wait_until_ready_waits_for_serving(client, server_thread, served) -> None:
    server_thread.submit(served.serve_after(0.3))
    time.sleep(0.05)  # let NOT_SERVING land first
    started = time.monotonic()
    client.wait_until_ready(5)
    assert 0.15 < time.monotonic() - started < 3


def test_wait_until_ready_times_out_when_nothing_listens(free_ports) -> None:
    started = time.monotonic()
    with Client(f"127.0.0.1:{free_ports()}") as nobody, pytest.raises(UnavailableError) as raised:
        nobody.wait_until_ready(0.5)
    assert time.monotonic() - started < 2
    assert raised.value.reason == "NOT_READY"


# --- AsyncClient ---------------------------------------------------------------------------


async def test_async_search_round_trip(aclient, orchestrator) -> None:
    result = await aclient.search(text="beach", like=("v3", 1.0, 2.0), timeout_s=2)
    assert result.hits[0].video.title == "Video 0"
    (request,) = orchestrator.search.requests
    assert [p.WhichOneof("kind") for p in request.parts] == ["text", "clip"]
    assert 1.5 < orchestrator.search.time_remaining_s[0] < 2.1
    assert orchestrator.search.headers[0]["x-team"] == "vision"


async def test_async_ingest_stream(aclient, orchestrator) -> None:
    events = [e async for e in aclient.ingest(["clips/a.mp4", "clips/bad.mp4"])]
    assert [getattr(e, "stage", "summary") for e in events] == [
        "probing",
        "done",
        "failed",
        "summary",
    ]
    assert orchestrator.ingest.time_remaining_s[0] > 3000


async def test_async_list_videos_pages(aclient, orchestrator) -> None:
    ids = [v.video_id async for v in aclient.list_videos(page_size=3)]
    assert ids == [v.video_id for v in LIBRARY]
    assert [r.page.page_token for r in orchestrator.ingest.requests] == ["", "3", "6"]


async def test_async_get_and_delete(aclient) -> None:
    assert (await aclient.get_video("v6")).video_id == "v6"
    with pytest.raises(NotFoundError):
        await aclient.get_video("nope")
    deleted, not_found = await aclient.delete_videos(["v0", "v1"])
    assert (deleted, not_found) == (2, [])


async def test_async_rich_errors_and_deadlines(aclient) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        await aclient.search(text="invalid")
    assert (raised.value.reason, raised.value.metadata["field"]) == ("TOP_K_TOO_LARGE", "top_k")
    assert isinstance(raised.value.__cause__, grpc.RpcError)
    with pytest.raises(DeadlineExceededError):
        await aclient.search(text="slow", timeout_s=0.2)


async def test_async_local_validation_makes_no_call(aclient, orchestrator) -> None:
    with pytest.raises(InvalidArgumentError):
        await aclient.search(not_image=b"png")
    assert orchestrator.search.requests == []


async def test_async_wait_until_ready(aclient, orchestrator, free_ports) -> None:
    flip = asyncio.create_task(orchestrator.serve_after(0.3))
    await asyncio.sleep(0.05)  # let NOT_SERVING land first
    started = time.monotonic()
    await aclient.wait_until_ready(5)
    assert 0.15 < time.monotonic() - started < 3
    await flip
    async with AsyncClient(f"127.0.0.1:{free_ports()}") as nobody:
        started = time.monotonic()
        with pytest.raises(UnavailableError):
            await nobody.wait_until_ready(0.5)
        assert time.monotonic() - started < 2
