"""The blocking SDK `Client` against a real gRPC server on loopback: the fake orchestrator of
tests/fakes/orchestrator.py, served on a thread of its own, records what reaches it — search
and ingest round trips, deadlines and headers, lazy paging, typed errors, retries and waiting
until ready. `AsyncClient` is in test_client_sdk_async.py."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import grpc
import pytest

from clipmesh_client import (
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
from tests.fakes.orchestrator import DOMAIN, FakeOrchestrator, fake_orchestrator


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
