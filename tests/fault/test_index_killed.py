"""SIGKILL the index process while upserts are in flight, start it again on the same data
directory, and ask the restarted service itself: every acknowledged write is there in full,
no write is half-applied, and new writes continue after the old ones.

tests/integration/test_index_durability.py kills the index the same way and inspects the files
with the backend in-process; this test judges only by what the restarted service answers.
"""

from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest

from clipmesh_api.common.v1 import common_pb2
from clipmesh_api.index.v1 import index_pb2, index_pb2_grpc

DIMENSION = 512  # a real CLIP width, so the log rotates into snapshots within a few seconds
WRITERS = 4
KILL_AFTER_WRITES = 150
COLLECTION = "fault"


def _write(number: int) -> index_pb2.UpsertSegmentsRequest:
    """Write `number`: two new videos of 1-8 segments, every segment tagged with the write."""
    rng = np.random.default_rng(number)
    request = index_pb2.UpsertSegmentsRequest(collection=COLLECTION)
    for video_id, count in _videos_of(number).items():
        entry = request.videos.add()
        entry.video.video_id = video_id
        entry.video.duration_s = count
        vectors = rng.normal(size=(count, DIMENSION))
        for j, vector in enumerate(vectors / np.linalg.norm(vectors, axis=1, keepdims=True)):
            entry.segments.add(
                start_s=j,
                end_s=j + 1,
                keyframe_s=j + 0.5,
                vector=vector.tolist(),
                thumbnail_uri=f"write-{number}/{j}",
            )
    return request


def _videos_of(number: int) -> dict[str, int]:
    """The videos write `number` holds, with their segment counts."""
    return {f"w{number}-a": 1 + number % 8, f"w{number}-b": 1 + (number * 3) % 5}


class UpsertStream:
    """Upserts writes 0, 1, 2, … from several threads until the index stops answering."""

    def __init__(self, stub: index_pb2_grpc.IndexServiceStub) -> None:
        self.stub = stub
        self.numbers = itertools.count()
        self.attempted: set[int] = set()
        self.acknowledged: dict[int, int] = {}  # write number → its log sequence
        self.stop = threading.Event()

    def writer(self) -> None:
        while not self.stop.is_set():
            number = next(self.numbers)
            self.attempted.add(number)
            try:
                response = self.stub.UpsertSegments(_write(number), timeout=10)
            except grpc.RpcError:
                return  # the index died with this write in flight: it was never acknowledged
            self.acknowledged[number] = response.sequence


def _stored_writes(stub, video_id: str) -> list[str] | None:
    """For each segment the index holds of the video, the write it came from; None when the
    index does not hold the video. Its reported segment count must agree with the segments."""
    try:
        video = stub.GetVideo(
            index_pb2.GetVideoRequest(collection=COLLECTION, video_id=video_id), timeout=10
        )
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.NOT_FOUND, error
        return None
    request = index_pb2.GetSegmentsRequest(collection=COLLECTION, video_id=video_id)
    segments = stub.GetSegments(request, timeout=10).segments
    assert video.segments == len(segments), f"{video_id}: GetVideo and GetSegments disagree"
    return [segment.thumbnail_uri.split("/")[0] for segment in segments]


def _listed_video_ids(stub) -> set[str]:
    ids, token = set(), ""
    while True:
        page = common_pb2.PageRequest(page_size=1000, page_token=token)
        response = stub.ListVideos(
            index_pb2.ListVideosRequest(collection=COLLECTION, page=page), timeout=10
        )
        ids |= {video.video_id for video in response.videos}
        if not (token := response.page.next_page_token):
            return ids


@pytest.mark.timeout(90)
def test_acknowledged_upserts_survive_a_sigkill_and_none_is_half_applied(start_services) -> None:
    (index,) = start_services("index", env={"CLIPMESH_INDEX_SNAPSHOT_WAL_MB": "1"})
    with grpc.insecure_channel(index.target) as channel:
        stream = UpsertStream(index_pb2_grpc.IndexServiceStub(channel))
        with ThreadPoolExecutor(WRITERS) as pool:
            writers = [pool.submit(stream.writer) for _ in range(WRITERS)]
            while len(stream.acknowledged) < KILL_AFTER_WRITES:
                time.sleep(0.01)
            index.kill()  # WRITERS upserts are in flight right now
            stream.stop.set()
        for writer in writers:
            writer.result()  # a writer's own failure, if any, is raised here
    acknowledged = dict(stream.acknowledged)
    unacknowledged = stream.attempted - acknowledged.keys()  # in flight, or sent to no one

    index.start()
    index.wait_serving()
    with grpc.insecure_channel(index.target) as channel:
        stub = index_pb2_grpc.IndexServiceStub(channel)
        survived = lost = half_applied = unacknowledged_applied = 0
        for number in sorted(stream.attempted):
            for video_id, count in _videos_of(number).items():
                writes = _stored_writes(stub, video_id)
                if writes is None:
                    lost += number in acknowledged
                    continue
                if writes != [f"write-{number}"] * count:
                    half_applied += 1
                elif number in acknowledged:
                    survived += 1
                else:
                    unacknowledged_applied += 1
        listed = _listed_video_ids(stub)
        after = stub.UpsertSegments(_write(10**6), timeout=10)

    expected_ids = {v for n in stream.attempted for v in _videos_of(n)}
    print(
        f"acknowledged writes: {len(acknowledged)} ({2 * len(acknowledged)} videos), "
        f"survived: {survived}, lost: {lost}, half-applied: {half_applied}, "
        f"unacknowledged writes: {len(unacknowledged)}, of their videos applied whole: "
        f"{unacknowledged_applied}"
    )
    assert unacknowledged, "the kill did not land while upserts were in flight"
    assert lost == 0
    assert half_applied == 0
    assert survived == 2 * len(acknowledged)
    assert listed <= expected_ids, f"videos nobody wrote: {sorted(listed - expected_ids)[:5]}"
    assert len(listed) == survived + unacknowledged_applied
    assert after.sequence > max(acknowledged.values()), "the log reused an acknowledged position"
