"""The SDK's `AsyncClient` against a real gRPC server on loopback: the fake orchestrator of
tests/fakes/orchestrator.py, served on the test's own loop, records what reaches it — search
and ingest round trips, paging, typed errors and deadlines, local validation and waiting until
ready. The blocking `Client` is in test_client_sdk_blocking.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
import pytest

from clipmesh_client import (
    AsyncClient,
    DeadlineExceededError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)
from tests.fakes.orchestrator import LIBRARY, FakeOrchestrator, fake_orchestrator


@pytest.fixture
async def orchestrator() -> AsyncIterator[FakeOrchestrator]:
    async with fake_orchestrator() as fake:
        yield fake


@pytest.fixture
async def aclient(orchestrator: FakeOrchestrator) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(orchestrator.target, metadata=[("x-team", "vision")]) as client:
        yield client


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
