"""The generator's content cache (hot, cold, bounded) and its submission rate limit."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import sqlite3
import time

import pytest

from clipmesh.generator.cache import ContentCache, cache_key
from clipmesh.generator.convert import job_to_proto, result_to_proto
from clipmesh.generator.jobs import (
    GenerationResult,
    GenerationSpec,
    Job,
    JobError,
    JobState,
    request_digest,
)
from clipmesh.generator.outputs import OutputStore
from clipmesh.generator.ratelimit import SubmissionRate
from clipmesh.generator.store import SCHEMA_VERSION, JobStore


@pytest.fixture
def stores(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    yield store, OutputStore(tmp_path / "outputs"), tmp_path
    store.close()


def _stored_result(outputs: OutputStore, scratch, payload: bytes):
    source = scratch / f"{len(payload)}-{payload[:4].hex()}.mp4"
    source.write_bytes(payload)
    sha256, path, size = outputs.put(source)
    return GenerationResult(
        uri=path.as_uri(),
        duration_s=1.0,
        fps=12.0,
        width=256,
        height=144,
        size_bytes=size,
        sha256=sha256,
    )


def test_only_seeded_specs_have_a_key_and_every_field_counts() -> None:
    spec = GenerationSpec(
        prompt="p", backend="animatic", model="m", width=256, height=144, duration_s=1, fps=12
    )
    assert cache_key(spec) == ""
    spec = dataclasses.replace(spec, seed=1)
    keys = {cache_key(spec)}
    for change in ({"prompt": "q"}, {"seed": 2}, {"fps": 24}, {"negative_prompt": "n"}):
        keys.add(cache_key(dataclasses.replace(spec, **change)))
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
    job = Job(job_id="j1", spec=GenerationSpec("p"), backend="animatic", caller="c", result=held)
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


def _job(job_id: str, **fields) -> Job:
    spec = GenerationSpec(
        prompt="一座灯塔 at dusk",
        backend="animatic",
        model="m",
        seed=7,
        labels={"b": "2", "a": "1"},
    )
    return Job(job_id=job_id, spec=spec, backend="animatic", caller="team-a", **fields)


def test_a_job_record_survives_a_reopen_field_for_field(tmp_path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite3")
    job = _job(
        "j1",
        state=JobState.FAILED,
        error=JobError("CONTENT_REJECTED", "refused", "DataInspectionFailed"),
        create_time_s=1_700_000_000.25,
        idempotency_key="shot-1",
    )
    store.insert(job, request_sha256=request_digest(job.spec))
    store.close()
    reopened = JobStore(tmp_path / "jobs.sqlite3")
    stored = reopened.get("j1")
    assert stored.job == job
    assert reopened.by_idempotency_key("team-a", "shot-1").job.job_id == "j1"
    assert reopened.by_idempotency_key("team-b", "shot-1") is None  # keys are each caller's
    assert [
        s.job.job_id
        for s in reopened.page(states=(JobState.FAILED,), backend="", before_seq=None, limit=10)
    ] == ["j1"]


def test_a_store_written_by_the_protobuf_release_is_converted_once(tmp_path) -> None:
    path = tmp_path / "jobs.sqlite3"
    # What releases up to 0.1 wrote: the API's protobuf bytes, schema version 0.
    result = GenerationResult("file:///o.mp4", 2.0, 12.0, 256, 144, 10, "ab" * 32)
    old = _job("j1", state=JobState.SUCCEEDED, result=result, create_time_s=1_700_000_000.5)
    legacy = sqlite3.connect(path)
    legacy.executescript(
        """
        CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL UNIQUE,
            idempotency_key TEXT UNIQUE, request_sha256 TEXT NOT NULL, backend TEXT NOT NULL,
            state INTEGER NOT NULL, caller TEXT NOT NULL, submitting INTEGER NOT NULL DEFAULT 0,
            output_sha256 TEXT, job BLOB NOT NULL);
        CREATE TABLE cache (cache_key TEXT PRIMARY KEY, sha256 TEXT NOT NULL,
            size_bytes INTEGER NOT NULL, result BLOB NOT NULL, last_used REAL NOT NULL);
        """
    )
    legacy.execute(
        "INSERT INTO jobs (job_id, idempotency_key, request_sha256, backend, state, caller, job)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        ("j1", "k1", "old-digest", "animatic", 3, "team-a", job_to_proto(old).SerializeToString()),
    )
    legacy.execute(
        "INSERT INTO cache VALUES (?, ?, ?, ?, ?)",
        ("c1", result.sha256, 10, result_to_proto(result).SerializeToString(), 1.0),
    )
    legacy.commit()
    legacy.close()
    store = JobStore(path)
    converted = store.get("j1")
    assert converted.job == old
    # The idempotency key now answers to the digest of the record's spec.
    assert converted.request_sha256 == request_digest(old.spec)
    assert store.cache_get("c1") == result
    assert store.by_idempotency_key("team-a", "k1").job.job_id == "j1"
    store.close()
    (version,) = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()
    assert version == SCHEMA_VERSION
