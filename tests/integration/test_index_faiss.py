"""The FAISS backend's own promises: index choice by size, rebuilds that never block searches
or writes, and refusal to serve from a damaged log or snapshot."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from prometheus_client import REGISTRY

from clipmesh.index.collection import AnnSettings
from clipmesh.index.faiss_backend import FaissBackend
from clipmesh.index.records import SearchQuery
from clipmesh.index.snapshot import SnapshotCorruption
from clipmesh.index.wal import HEADER, WalCorruption
from tests.index_data import random_unit, video

SMALL = AnnSettings(exact_max_segments=300, nprobe=16)


def _query(vector, top_k=3, deadline=None) -> SearchQuery:
    return SearchQuery("default", vector, top_k, 2, deadline=deadline)


async def test_the_index_grows_from_exact_to_ivf_while_searches_and_writes_go_on(tmp_path) -> None:
    backend = FaissBackend(tmp_path, SMALL)
    await backend.open()
    rng = np.random.default_rng(7)
    vectors = {f"v{i:03d}": random_unit(rng, 5) for i in range(200)}  # 1000 segments
    kinds_seen = set()
    for start in range(0, 200, 10):
        batch = [video(vid, vectors[vid]) for vid in list(vectors)[start : start + 10]]
        await backend.upsert("default", batch)
        probe = batch[0].meta.video_id
        result = await backend.search(_query(vectors[probe][2]))
        kinds_seen.add(result.index_type)
        assert result.videos[0].meta.video_id == probe  # fresh writes are searchable at once
    await backend.wait_for_maintenance()
    stats = (await backend.stats())[0]
    assert stats.index_type == "ivf_sq8"
    assert "flat" in kinds_seen
    found = 0
    for vid, vecs in vectors.items():
        result = await backend.search(_query(vecs[1]))
        found += result.videos[0].meta.video_id == vid
    assert found / len(vectors) >= 0.98
    assert stats.segments == 1000
    await backend.close()


async def test_a_short_deadline_lowers_effort_and_says_so(tmp_path) -> None:
    backend = FaissBackend(tmp_path, SMALL)
    await backend.open()
    rng = np.random.default_rng(3)
    await backend.upsert("default", [video(f"v{i}", random_unit(rng, 5)) for i in range(100)])
    await backend.wait_for_maintenance()
    assert backend.collections["default"].plan.kind == "ivf_sq8"
    hurried = await backend.search(_query(random_unit(rng, 1)[0], deadline=time.monotonic() + 1e-6))
    relaxed = await backend.search(_query(random_unit(rng, 1)[0]))
    assert hurried.degraded and "nprobe" in hurried.degraded_reason
    assert not relaxed.degraded
    await backend.close()


async def test_a_search_that_finds_a_write_holding_the_collection_waits_off_the_event_loop(
    tmp_path,
) -> None:
    backend = FaissBackend(tmp_path, SMALL)
    await backend.open()
    rng = np.random.default_rng(4)
    vectors = {f"v{i}": random_unit(rng, 5) for i in range(100)}
    await backend.upsert("default", [video(vid, vecs) for vid, vecs in vectors.items()])
    await backend.wait_for_maintenance()  # an IVF index: a quick search may run on the loop
    collection = backend.collections["default"]
    holding, release = threading.Event(), threading.Event()

    def write() -> None:
        with collection.lock.writing():
            holding.set()
            release.wait(10)

    writer = threading.Thread(target=write)
    writer.start()
    holding.wait(10)
    search = asyncio.create_task(backend.search(_query(vectors["v7"][1])))
    await asyncio.sleep(0.1)  # the loop turns while the search waits for the write
    assert not search.done()
    release.set()
    assert (await search).videos[0].meta.video_id == "v7"
    writer.join()
    await backend.close()


async def test_a_torn_tail_of_the_log_is_cut_and_the_rest_replayed(tmp_path) -> None:
    backend = FaissBackend(tmp_path)
    await backend.open()
    rng = np.random.default_rng(0)
    await backend.upsert("default", [video("a", random_unit(rng, 2))])
    await backend.upsert("default", [video("b", random_unit(rng, 2))])
    backend.wal.close()  # a crash: no snapshot, no clean close
    segment = backend.wal.segments()[-1]
    data = segment.read_bytes()
    segment.write_bytes(data + HEADER.pack(b"CMW1", 3, 1000, 0) + b"partial")
    reopened = FaissBackend(tmp_path)
    await reopened.open()
    assert sorted(reopened.collections["default"].videos) == ["a", "b"]
    assert segment.read_bytes() == data
    await reopened.close()


async def test_damage_inside_the_log_refuses_start_up(tmp_path) -> None:
    backend = FaissBackend(tmp_path)
    await backend.open()
    rng = np.random.default_rng(0)
    await backend.upsert("default", [video("a", random_unit(rng, 2))])
    await backend.upsert("default", [video("b", random_unit(rng, 2))])
    backend.wal.close()
    segment = backend.wal.segments()[-1]
    data = bytearray(segment.read_bytes())
    data[HEADER.size + 10] ^= 0xFF  # inside the first record's payload
    segment.write_bytes(bytes(data))
    with pytest.raises(WalCorruption, match="checksum mismatch"):
        await FaissBackend(tmp_path).open()


async def test_a_damaged_snapshot_refuses_start_up(tmp_path) -> None:
    backend = FaissBackend(tmp_path)
    await backend.open()
    rng = np.random.default_rng(0)
    await backend.upsert("default", [video("a", random_unit(rng, 3))])
    await backend.close()  # writes a snapshot
    vectors = next((tmp_path / "snapshots").glob("*/default.vectors.npy"))
    data = bytearray(vectors.read_bytes())
    data[-1] ^= 0x01
    vectors.write_bytes(bytes(data))
    with pytest.raises(SnapshotCorruption, match="does not match its checksum"):
        await FaissBackend(tmp_path).open()


async def test_a_snapshot_drops_the_log_it_covers(tmp_path) -> None:
    backend = FaissBackend(tmp_path, snapshot_wal_bytes=1)
    await backend.open()
    rng = np.random.default_rng(0)
    for i in range(5):
        await backend.upsert("default", [video(f"v{i}", random_unit(rng, 2))])
        await backend.wait_for_maintenance()
    await backend.close()
    reopened = FaissBackend(tmp_path)
    await reopened.open()
    assert len(reopened.collections["default"].videos) == 5
    assert reopened.snapshot_sequence == reopened.applied_sequence == 5
    await reopened.close()


async def test_writes_older_than_the_interval_are_snapshotted_by_maintenance(tmp_path) -> None:
    # An interval a loaded CI machine cannot overrun between the write and the first look.
    backend = FaissBackend(tmp_path, snapshot_interval_s=1.0)
    await backend.open()
    await backend.maintain()  # nothing written: nothing to snapshot
    assert backend.last_snapshot_time_s is None
    await backend.upsert("default", [video("v0", random_unit(np.random.default_rng(0), 2))])
    await backend.maintain()  # the write is younger than the interval
    assert backend.snapshot_sequence == 0
    await asyncio.sleep(1.05)
    await backend.maintain()
    assert backend.snapshot_sequence == backend.applied_sequence == 1
    await backend.close()


async def test_a_failed_snapshot_is_counted_and_keeps_the_log(tmp_path) -> None:
    backend = FaissBackend(tmp_path, snapshot_interval_s=0.01)
    await backend.open()
    await backend.upsert("default", [video("v0", random_unit(np.random.default_rng(0), 2))])
    failures = REGISTRY.get_sample_value("clipmesh_index_snapshot_failures_total")
    blocker = tmp_path / "snapshots"
    blocker.write_bytes(b"")  # a file where the snapshot directory goes: writing one fails
    await asyncio.sleep(0.02)
    await backend.maintain()  # fails, is counted, does not raise
    blocker.unlink()
    assert REGISTRY.get_sample_value("clipmesh_index_snapshot_failures_total") == failures + 1
    assert backend.snapshot_sequence == 0
    await backend.close()
    reopened = FaissBackend(tmp_path)
    await reopened.open()
    assert "v0" in reopened.collections["default"].videos
    await reopened.close()
