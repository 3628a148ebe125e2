"""The generator's content cache (hot, cold, bounded) and its submission rate limit."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from clipmesh.generator.cache import ContentCache, cache_key
from clipmesh.generator.outputs import OutputStore
from clipmesh.generator.ratelimit import SubmissionRate
from clipmesh.generator.store import JobStore
from clipmesh_api.generator.v1 import generator_pb2


@pytest.fixture
def stores(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    yield store, OutputStore(tmp_path / "outputs"), tmp_path
    store.close()


def _stored_result(outputs: OutputStore, scratch, payload: bytes):
    source = scratch / f"{len(payload)}-{payload[:4].hex()}.mp4"
    source.write_bytes(payload)
    sha256, path, size = outputs.put(source)
    return generator_pb2.GenerationResult(uri=path.as_uri(), sha256=sha256, size_bytes=size)


def test_only_seeded_specs_have_a_key_and_every_field_counts() -> None:
    spec = generator_pb2.GenerationSpec(
        prompt="p", backend="animatic", model="m", width=256, height=144, duration_s=1, fps=12
    )
    assert cache_key(spec) == ""
    spec.seed = 1
    keys = {cache_key(spec)}
    for change in ({"prompt": "q"}, {"seed": 2}, {"fps": 24}, {"negative_prompt": "n"}):
        changed = generator_pb2.GenerationSpec()
        changed.CopyFrom(spec)
        for name, value in change.items():
            setattr(changed, name, value)
        keys.add(cache_key(changed))
    assert len(keys) == 5


def test_the_cache_survives_a_restart_and_forgets_missing_files(stores) -> None:
    store, outputs, scratch = stores
    cache = ContentCache(store, outputs, memory_entries=0, max_bytes=1 << 20)
    result = _stored_result(outputs, scratch, b"video-a" * 10)
    cache.put("k1", result)
    reopened = ContentCache(store, outputs, memory_entries=4, max_bytes=1 << 20)
    assert reopened.get("k1") == result  # from the cold (SQLite) side
    outputs.delete(result.sha256)
    assert reopened.get("k1") is None  # a hit without its file is no hit


def test_past_its_byte_bound_the_least_recently_used_entry_and_its_file_go(stores) -> None:
    store, outputs, scratch = stores
    cache = ContentCache(store, outputs, memory_entries=8, max_bytes=250)
    first = _stored_result(outputs, scratch, b"a" * 100)
    second = _stored_result(outputs, scratch, b"b" * 100)
    cache.put("first", first)
    cache.put("second", second)
    time.sleep(0.01)
    assert cache.get("first") is not None  # now the most recently used
    third = _stored_result(outputs, scratch, b"c" * 100)
    cache.put("third", third)
    assert cache.get("second") is None and not outputs.exists(second.sha256)
    assert cache.get("first") is not None and cache.get("third") is not None


def test_an_evicted_entry_keeps_a_file_a_job_still_holds(stores) -> None:
    store, outputs, scratch = stores
    cache = ContentCache(store, outputs, memory_entries=8, max_bytes=150)
    held = _stored_result(outputs, scratch, b"h" * 100)
    job = generator_pb2.Job(job_id="j1", backend="animatic", caller="c", result=held)
    store.insert(job, request_sha256="r", output_sha256=held.sha256)
    cache.put("held", held)
    cache.put("other", _stored_result(outputs, scratch, b"o" * 100))
    assert cache.get("held") is None and outputs.exists(held.sha256)


async def test_a_submission_holds_its_slot_until_it_lands() -> None:
    rate = SubmissionRate(2, backend="test", window_s=0.2)
    landed: list[float] = []

    async def submit(delay_s: float) -> None:
        async with rate.slot():
            await asyncio.sleep(delay_s)  # the request in flight
            landed.append(time.monotonic())

    started = time.monotonic()
    await asyncio.gather(submit(0.3), submit(0.0), submit(0.0))
    # Capacity is int(2 × 0.5 s window) = 1 here (the window stretches to 1 / rate): each
    # submission lands a full window after the previous one *landed*, even the slow first.
    gaps = [b - a for a, b in itertools.pairwise(landed)]
    assert all(gap >= 0.5 - 0.01 for gap in gaps)
    assert landed[0] - started >= 0.3
