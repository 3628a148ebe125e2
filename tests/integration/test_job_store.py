"""The generator's job store contract, on SQLite and on a real PostgreSQL server alike: jobs,
idempotency keys per caller, claims under each backend's limits across replicas, leases and
take-over, fenced writes, the provider's submission slots, the webhook outbox's holds, the
content cache (hot, cold, bounded), and the submission rate limit. SQLite's upgrades from
earlier releases are at the end."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import sqlite3
import time

import pytest

from clipmesh.generator import ratelimit
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
from clipmesh.generator.outbox import OutboxEvent
from clipmesh.generator.outputs import OutputStore
from clipmesh.generator.ratelimit import SubmissionRate
from clipmesh.generator.schema import SCHEMA_VERSION, open_job_database
from clipmesh.generator.store import Charge, ClaimRules, JobStore, LeaseLost
from clipmesh.runtime.errors import ResourceExhausted
from clipmesh.runtime.policy import CallerPolicy, Quota


def open_store(tmp_path, target=None) -> JobStore:
    return JobStore(open_job_database(tmp_path, target, pool_size=4))


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request):
    """None for SQLite, else a fresh PostgreSQL database."""
    return None if request.param == "sqlite" else request.getfixturevalue("postgres_database")


@pytest.fixture
def store(tmp_path, target):
    store = open_store(tmp_path, target)
    yield store
    store.close()


@pytest.fixture
def stores(store, tmp_path):
    yield store, OutputStore(tmp_path / "outputs"), tmp_path


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


def test_a_job_record_survives_a_reopen_field_for_field(tmp_path, target) -> None:
    store = open_store(tmp_path, target)
    job = _job(
        "j1",
        state=JobState.FAILED,
        error=JobError("CONTENT_REJECTED", "refused", "DataInspectionFailed"),
        create_time_s=1_700_000_000.25,
        idempotency_key="shot-1",
    )
    store.insert(job, request_sha256=request_digest(job.spec))
    store.close()
    reopened = open_store(tmp_path, target)
    stored = reopened.get("j1")
    assert stored.job == job
    assert reopened.earlier("team-a", "shot-1").job.job_id == "j1"
    assert reopened.earlier("team-b", "shot-1") is None  # keys are each caller's
    assert [
        s.job.job_id
        for s in reopened.page(states=(JobState.FAILED,), backend="", before_seq=None, limit=10)
    ] == ["j1"]
    reopened.close()


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
    store = open_store(tmp_path)
    converted = store.get("j1")
    assert converted.job == old
    # The idempotency key now answers to the digest of the record's spec.
    assert converted.request_sha256 == request_digest(old.spec)
    assert store.cache.get("c1") == result
    assert store.earlier("team-a", "k1").job.job_id == "j1"
    assert store.get("j1").owner == ""
    store.close()
    (version,) = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()
    assert version == SCHEMA_VERSION


# --- claims, leases, fencing (two "replicas" are two owners on one store) -----------------

ACCOUNT = ClaimRules(limit=2, per_replica=False)


def _queued(store: JobStore, count: int, *, caller: str = "team-a", backend: str = "dashscope"):
    jobs = []
    for n in range(count):
        job = dataclasses.replace(_job(f"{caller}-{backend}-{n}"), backend=backend, caller=caller)
        store.insert(job, request_sha256="r")
        jobs.append(job)
    return jobs


def test_claims_keep_an_account_limit_across_replicas(store: JobStore) -> None:
    _queued(store, 5)
    first = store.claim("dashscope", "replica-a", ACCOUNT, 10)
    second = store.claim("dashscope", "replica-b", ACCOUNT, 10)
    assert [s.job.job_id for s in first] == ["team-a-dashscope-0", "team-a-dashscope-1"]
    assert second == []  # the account's two slots are taken, whoever took them
    assert all(s.job.state == JobState.RUNNING and s.owner == "replica-a" for s in first)
    done = first[0].job
    done.state = JobState.SUCCEEDED
    store.end(done, "replica-a")
    (third,) = store.claim("dashscope", "replica-b", ACCOUNT, 10)
    assert third.job.job_id == "team-a-dashscope-2" and third.owner == "replica-b"


def test_a_per_replica_limit_counts_each_replica_alone(store: JobStore) -> None:
    _queued(store, 5, backend="animatic")
    local = ClaimRules(limit=2, per_replica=True)
    assert len(store.claim("animatic", "replica-a", local, 10)) == 2
    assert len(store.claim("animatic", "replica-b", local, 10)) == 2
    assert len(store.claim("animatic", "replica-a", local, 10)) == 0


def test_a_per_caller_bound_lets_other_callers_through(store: JobStore) -> None:
    _queued(store, 3, caller="team-a")
    _queued(store, 2, caller="team-b")
    fair = ClaimRules(limit=10, per_replica=False, per_caller=1)
    claimed = store.claim("dashscope", "replica-a", fair, 10)
    assert sorted(s.job.caller for s in claimed) == ["team-a", "team-b"]


def test_a_lapsed_lease_hands_running_jobs_over_and_fences_the_old_owner(store: JobStore) -> None:
    _queued(store, 2)
    store.heartbeat("replica-a", "host-a", 0.2)
    store.heartbeat("replica-b", "host-b", 60)
    (claimed, _) = store.claim("dashscope", "replica-a", ACCOUNT, 10)
    assert store.take_over("replica-b") == []  # replica-a's lease holds
    time.sleep(0.3)
    taken = store.take_over("replica-b")
    assert [s.job.job_id for s in taken] == ["team-a-dashscope-0", "team-a-dashscope-1"]
    assert {s.owner for s in taken} == {"replica-b"}
    job = claimed.job
    job.provider_task_id = "late"
    with pytest.raises(LeaseLost):
        store.update(job, "replica-a")  # the old owner's write is refused
    assert store.get(job.job_id).job.provider_task_id == ""
    store.update(job, "replica-b")
    assert store.get(job.job_id).job.provider_task_id == "late"


def test_a_released_replica_hands_its_jobs_over_at_once(store: JobStore) -> None:
    _queued(store, 1)
    store.heartbeat("replica-a", "host-a", 60)
    store.heartbeat("replica-b", "host-b", 60)
    store.claim("dashscope", "replica-a", ACCOUNT, 10)
    assert store.release("replica-a") == 1
    (taken,) = store.take_over("replica-b")
    assert taken.owner == "replica-b"


def test_a_queued_job_is_cancelled_only_while_nobody_has_claimed_it(store: JobStore) -> None:
    first, second = _queued(store, 2)
    store.claim("dashscope", "replica-a", ClaimRules(limit=1, per_replica=False), 1)
    first.state = second.state = JobState.CANCELLED
    with pytest.raises(LeaseLost):
        store.end(first, None)  # claimed: it is cancelled where it runs
    store.end(second, None)
    assert store.get(second.job_id).job.state == JobState.CANCELLED
    assert store.request_cancel(first.job_id) and store.get(first.job_id).cancel_requested
    assert not store.request_cancel(second.job_id)


def test_positions_count_the_jobs_queued_ahead_on_the_same_backend(store: JobStore) -> None:
    jobs = _queued(store, 3)
    _queued(store, 2, backend="animatic")
    store.claim("dashscope", "replica-a", ClaimRules(limit=1, per_replica=False), 1)
    positions = store.positions([job.job_id for job in jobs])
    assert positions == {"team-a-dashscope-1": 0, "team-a-dashscope-2": 1}


def test_provider_slots_are_shared_by_every_replica(store: JobStore) -> None:
    store.heartbeat("replica-a", "host-a", 60)
    store.heartbeat("replica-b", "host-b", 60)
    first, wait_s = store.provider_calls.open("dashscope", "replica-a", 2, 0.5)
    second, _ = store.provider_calls.open("dashscope", "replica-b", 2, 0.5)
    third, wait_s = store.provider_calls.open("dashscope", "replica-a", 2, 0.5)
    assert first and second and third is None and 0 < wait_s <= 0.5
    store.provider_calls.close(first)
    assert store.provider_calls.open("dashscope", "replica-b", 2, 0.5)[0] is None  # windowed
    time.sleep(0.55)
    assert store.provider_calls.open("dashscope", "replica-b", 2, 0.5)[0] is not None
    assert store.provider_calls.open("animatic", "replica-a", 2, 0.5)[0] is not None


def test_a_call_in_flight_counts_until_it_can_no_longer_arrive(
    store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """replica-a dies (or is starved past its lease) with a submission in flight: the call
    counts while it may still reach the provider, then stops counting."""
    monkeypatch.setattr(ratelimit, "SUBMISSION_MAX_FLIGHT_S", 0.5)
    store.heartbeat("replica-a", "host-a", 0.1)
    store.heartbeat("replica-b", "host-b", 60)
    assert store.provider_calls.open("dashscope", "replica-a", 1, 0.3)[0] is not None
    time.sleep(0.2)  # replica-a's lease has lapsed, but its request may still be on its way
    assert store.provider_calls.open("dashscope", "replica-b", 1, 0.3)[0] is None
    time.sleep(0.7)  # past the flight time and a window
    assert store.provider_calls.open("dashscope", "replica-b", 1, 0.3)[0] is not None


def test_an_interrupted_submission_holds_an_account_slot_for_a_while(store: JobStore) -> None:
    job, _, third = _queued(store, 3)
    store.claim("dashscope", "replica-a", ACCOUNT, 1)
    job.state, job.error = JobState.FAILED, JobError("SUBMISSION_INTERRUPTED", "cut off")
    store.end(job, "replica-a", orphaned_task_s=0.4)
    # The provider may still run its task: of the two slots, one stays taken for 0.4 s.
    assert len(store.claim("dashscope", "replica-b", ACCOUNT, 10)) == 1
    assert store.claim("dashscope", "replica-b", ACCOUNT, 10) == []
    time.sleep(0.45)
    (claimed,) = store.claim("dashscope", "replica-b", ACCOUNT, 10)
    assert claimed.job.job_id == third.job_id


def test_a_due_webhook_is_held_for_one_replica_at_a_time(store: JobStore) -> None:
    event = OutboxEvent("evt_1", "j1", "team-a", "https://hooks.example/h", b"{}", 1.0)
    store.outbox.add(event)
    store.outbox.add(event)  # the same event id again is ignored
    now = time.time()
    assert [e.event_id for e in store.outbox.due(now, 10, hold_s=60)] == ["evt_1"]
    assert store.outbox.due(now, 10, hold_s=60) == []  # held for the first taker
    assert [e.event_id for e in store.outbox.due(now + 61, 10, hold_s=60)] == ["evt_1"]


def test_a_charge_and_its_job_commit_together(store: JobStore) -> None:
    seconds = Quota.PROVIDER_VIDEO_SECONDS_PER_DAY
    limited = CallerPolicy("team-a", quotas={seconds: 10.0})
    store.insert(_job("paid-1"), request_sha256="r", charge=Charge(limited, seconds, 8))
    with pytest.raises(ResourceExhausted):
        store.insert(_job("paid-2"), request_sha256="r", charge=Charge(limited, seconds, 8))
    assert store.get("paid-2") is None  # refused: nothing written
    assert store.charges.used("team-a", seconds) == 8
