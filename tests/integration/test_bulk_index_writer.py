"""The bulk ingest's index writer against a real index service: never more writes in flight
than allowed, and the pipeline held back (`add` waits) while the index is slow; a video the
index refuses fails alone while the rest of its batch goes in; the same bytes twice in one
window are written once."""

from __future__ import annotations

import asyncio

import msgspec
import numpy as np
import pytest
import pytest_asyncio

from clipmesh.bulk.records import FileOutcome, Outcome, PreparedVideo
from clipmesh.bulk.writer import IndexWriter
from clipmesh.index.client import IndexClient
from clipmesh.index.records import VideoMeta
from clipmesh.runtime.config import ServiceConfig
from clipmesh.runtime.dependencies import DependencyChannels
from tests.bulk import held_videos

pytestmark = pytest.mark.asyncio(loop_scope="module")
DIMENSION = 8


class GatedIndex(IndexClient):
    """The real index client, with each write waiting at a gate the test opens, and the
    number of writes in flight recorded."""

    def __init__(self, channels, target) -> None:
        super().__init__(channels, target)
        self.gate = asyncio.Event()
        self.in_flight = 0
        self.most_in_flight = 0

    async def upsert_videos(self, collection, writes, *, timeout_s):
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.gate.wait()
            await super().upsert_videos(collection, writes, timeout_s=timeout_s)
        finally:
            self.in_flight -= 1


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(mesh_factory):
    async with mesh_factory.in_process("index") as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def index(mesh):
    channels = DependencyChannels(ServiceConfig())
    yield GatedIndex(channels, mesh.target("index"))
    await channels.close()


def video(number: int, *, dimension: int = DIMENSION, segments: int = 2) -> PreparedVideo:
    vectors = np.random.default_rng(number).normal(size=(segments, dimension))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return PreparedVideo(
        uri=f"/media/{number}.mp4",
        ready=True,
        outcome=Outcome.DONE,
        video_id=f"v{number:020d}",
        meta=VideoMeta(
            video_id=f"v{number:020d}",
            uri=f"file:///media/{number}.mp4",
            content_sha256=f"{number:064x}",
        ),
        start_s=[float(i) for i in range(segments)],
        end_s=[float(i + 1) for i in range(segments)],
        keyframe_s=[i + 0.5 for i in range(segments)],
        thumbnails=[""] * segments,
    ).embedded(vectors)


def writer(index, collection: str, outcomes: list[FileOutcome], **options) -> IndexWriter:
    settings = {"batch_videos": 2, "max_in_flight": 2, "timeout_s": 30, **options}
    return IndexWriter(index, collection, report=outcomes.append, **settings)


async def test_writes_in_flight_are_bounded_and_hold_the_pipeline_back(mesh, index) -> None:
    outcomes: list[FileOutcome] = []
    bounded = writer(index, "bounded", outcomes)
    await bounded.add([video(n) for n in range(4)])  # two batches: both slots taken
    third = asyncio.ensure_future(bounded.add([video(n) for n in range(4, 6)]))
    await asyncio.sleep(0.3)
    assert not third.done(), "a third batch was taken while two writes were outstanding"
    assert index.in_flight == 2
    index.gate.set()
    await third
    await bounded.add([video(n) for n in range(6, 20)])
    await bounded.flush()
    assert index.most_in_flight == 2
    assert [o.outcome for o in outcomes] == [Outcome.DONE] * 20
    assert len(await held_videos(mesh, "bounded")) == 20


async def test_a_refused_video_fails_alone_and_its_batch_goes_in(mesh, index) -> None:
    index.gate.set()
    outcomes: list[FileOutcome] = []
    refusing = writer(index, "refusing", outcomes, batch_videos=8)
    await refusing.add([video(1), video(2)])
    await refusing.flush()  # the collection's vectors are 8 wide from now on
    await refusing.add([video(3), video(4, dimension=DIMENSION * 2), video(5)])
    await refusing.flush()
    by_uri = {o.uri: o for o in outcomes}
    assert by_uri["/media/4.mp4"].outcome == Outcome.FAILED
    assert by_uri["/media/4.mp4"].reason and by_uri["/media/4.mp4"].message
    assert all(by_uri[f"/media/{n}.mp4"].outcome == Outcome.DONE for n in (1, 2, 3, 5))
    assert len(await held_videos(mesh, "refusing")) == 4


async def test_the_same_bytes_twice_in_a_window_are_written_once(mesh, index) -> None:
    index.gate.set()
    outcomes: list[FileOutcome] = []
    deduplicating = writer(index, "once", outcomes, batch_videos=1)
    copy = msgspec.structs.replace(video(7), uri="/media/copy.mp4")
    await deduplicating.add([video(7), copy, video(8)])
    await deduplicating.flush()
    by_uri = {o.uri: o.outcome for o in outcomes}
    assert by_uri == {
        "/media/7.mp4": Outcome.DONE,
        "/media/copy.mp4": Outcome.DUPLICATE,
        "/media/8.mp4": Outcome.DONE,
    }
    assert len(await held_videos(mesh, "once")) == 2
