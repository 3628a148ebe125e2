"""SIGKILL in the middle of a stream of upserts: after a restart every acknowledged write is
there, and no video is half-applied (all its segments come from one write)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import grpc
import numpy as np

from clipmesh.cli.probe import health_status
from clipmesh.index.faiss_backend import FaissBackend
from clipmesh_api.index.v1 import index_pb2, index_pb2_grpc
from clipmesh_client.wire import ChannelPolicy, open_aio_channel

VIDEOS = 12
D = 32


def _request(version: int) -> index_pb2.UpsertSegmentsRequest:
    """Version `version` of video v{version % VIDEOS}: 1-5 segments, each tagged with it."""
    video_id, count = f"v{version % VIDEOS}", 1 + version % 5
    rng = np.random.default_rng(version)
    request = index_pb2.UpsertSegmentsRequest(collection="default")
    entry = request.videos.add()
    entry.video.video_id = video_id
    for j in range(count):
        vector = rng.normal(size=D)
        entry.segments.add(
            start_s=j,
            end_s=j + 1,
            keyframe_s=j + 0.5,
            vector=(vector / np.linalg.norm(vector)).tolist(),
            thumbnail_uri=f"{video_id}/{version}/{j}",
        )
    return request


async def _stream_upserts(target: str, acknowledged: dict[str, int], stop: asyncio.Event) -> None:
    async with open_aio_channel(target, ChannelPolicy(timeout_s=5, max_attempts=1)) as channel:
        stub = index_pb2_grpc.IndexServiceStub(channel)
        next_version = 0

        async def writer() -> None:
            nonlocal next_version
            while not stop.is_set():
                version, next_version = next_version, next_version + 1
                try:
                    await stub.UpsertSegments(_request(version))
                except grpc.aio.AioRpcError:
                    return  # the server died mid-call: this write was never acknowledged
                video_id = f"v{version % VIDEOS}"
                acknowledged[video_id] = max(acknowledged.get(video_id, -1), version)

        await asyncio.gather(*(writer() for _ in range(4)))


async def test_acknowledged_upserts_survive_sigkill_and_none_is_half_applied(tmp_path, free_ports):
    port = free_ports()
    env = {
        **os.environ,
        "CLIPMESH_INDEX_HOST": "127.0.0.1",
        "CLIPMESH_INDEX_PORT": str(port),
        "CLIPMESH_INDEX_METRICS_HOST": "127.0.0.1",
        "CLIPMESH_INDEX_METRICS_PORT": str(free_ports()),
        "CLIPMESH_INDEX_DATA_DIR": str(tmp_path),
        "CLIPMESH_INDEX_SNAPSHOT_WAL_MB": "1",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "clipmesh", "serve", "index"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    target = f"127.0.0.1:{port}"
    try:
        while await asyncio.to_thread(health_status, target) != "SERVING":
            assert server.poll() is None, "index did not start"
            await asyncio.sleep(0.1)
        acknowledged: dict[str, int] = {}
        stop = asyncio.Event()
        streaming = asyncio.create_task(_stream_upserts(target, acknowledged, stop))
        while sum(1 for _ in acknowledged) < VIDEOS or max(acknowledged.values()) < 400:
            await asyncio.sleep(0.02)  # enough writes for several snapshots and log rotations
        server.send_signal(signal.SIGKILL)  # writes are in flight right now
        server.wait()
        stop.set()
        await streaming
    finally:
        if server.poll() is None:
            server.kill()

    restarted = FaissBackend(tmp_path)
    await restarted.open()
    collection = restarted.collections["default"]
    survived = lost = 0
    for video_id, version in acknowledged.items():
        entry = collection.videos.get(video_id)
        if entry is None:
            lost += 1
            continue
        tags = {collection.columns.thumbnails[s].split("/")[1] for s in entry.slots}
        assert len(tags) == 1, f"{video_id} mixes segments of writes {tags}"
        stored = int(tags.pop())
        assert stored >= version, f"{video_id}: acknowledged write {version}, found {stored}"
        assert len(entry.slots) == 1 + stored % 5, f"{video_id}: half-applied write {stored}"
        survived += 1
    print(
        f"acknowledged videos: {len(acknowledged)}, survived: {survived}, lost: {lost}, "
        f"last acknowledged write: {max(acknowledged.values())}"
    )
    assert lost == 0
    await restarted.close()
