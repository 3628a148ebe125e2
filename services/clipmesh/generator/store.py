"""The durable job record: one SQLite database under the gateway's data dir.

Each job is stored as JSON of its `Job` record plus the columns the gateway queries by (state,
backend, idempotency key, caller, submission order). A state change, a provider task id and a
result are committed (fsynced, WAL mode, `synchronous=FULL`) before any watcher hears of them,
so after a crash or SIGKILL the gateway resumes exactly the jobs it had promised: queued jobs
stay queued, provider tasks are polled again, never submitted twice.

Progress fractions are not written (they change many times a second and are worthless after a
restart); everything else is.

The content cache's index lives in the same database (`cache` table) so a cache entry and the
job that made it commit together.

The same database holds the webhook outbox (outbox.py) and the callers' quota charges
(runtime/usage.py), so a job's insert and its charge, and its end, its refund and its webhook
event, each commit together.

The schema's version is SQLite's `user_version`. Version 0 (releases up to 0.1) kept the API's
protobuf bytes; version 1 held an idempotency key unique across callers, version 2 per caller.
Opening an older database brings it up to date once, in one transaction. A database newer than
this code is refused rather than misread.

All methods are synchronous; the gateway calls them from one dedicated thread.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec

from clipmesh.generator.convert import STATE_CODES, job_from_proto, result_from_proto
from clipmesh.generator.jobs import GenerationResult, Job, JobState, request_digest
from clipmesh.generator.outbox import OUTBOX_SCHEMA, OutboxEvent, WebhookOutbox
from clipmesh.runtime.policy import CallerPolicy, Quota
from clipmesh.runtime.sqlite import open_store
from clipmesh.runtime.usage import USAGE_SCHEMA, ChargeBook, Clock
from clipmesh_api.generator.v1 import generator_pb2

SCHEMA_VERSION = 2

_JOBS_TABLE = """
CREATE TABLE IF NOT EXISTS {name} (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL UNIQUE,
    idempotency_key TEXT,
    request_sha256 TEXT NOT NULL,
    backend TEXT NOT NULL,
    state INTEGER NOT NULL,
    caller TEXT NOT NULL,
    submitting INTEGER NOT NULL DEFAULT 0,
    output_sha256 TEXT,
    job BLOB NOT NULL,
    UNIQUE (caller, idempotency_key)
)"""
_JOBS_INDEXES = """
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, backend, seq);
CREATE INDEX IF NOT EXISTS jobs_by_caller ON jobs (caller, seq);
CREATE INDEX IF NOT EXISTS jobs_by_output ON jobs (output_sha256)
"""
_SCHEMA = (
    _JOBS_TABLE.format(name="jobs")
    + ";"
    + _JOBS_INDEXES
    + ";"
    + OUTBOX_SCHEMA
    + ";"
    + USAGE_SCHEMA
    + ";"
    + """
CREATE TABLE IF NOT EXISTS cache (
    cache_key TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    result BLOB NOT NULL,
    last_used REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS cache_by_use ON cache (last_used);
"""
)


@dataclass(frozen=True)
class StoredJob:
    """A job as the store holds it.

    Attributes:
        job: The job.
        seq: Submission order (higher is newer).
        request_sha256: Digest of the idempotent request (spec), to compare a repeated key.
        submitting: True while a submission to a billing provider was in flight and its task
            id not yet recorded.
    """

    job: Job
    seq: int
    request_sha256: str
    submitting: bool


@dataclass(frozen=True)
class Charge:
    """What a new job costs its caller (charged under the job's id)."""

    caller: CallerPolicy
    quota: Quota
    amount: float


class JobStore:
    """Jobs, the content cache's index, the webhook outbox and quota charges, in SQLite.

    Args:
        path: The database file.
        clock: Unix seconds now, for quota days.
    """

    def __init__(self, path: Path, clock: Clock = time.time) -> None:
        upgrades = [_convert_protobuf_rows, _scope_idempotency_keys_by_caller]
        self._db = open_store(path, "job store", _SCHEMA, SCHEMA_VERSION, upgrades)
        self.outbox = WebhookOutbox(self._db)
        self.charges = ChargeBook(self._db, clock)
        self.charges.prune()

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Commits everything inside the block together, or nothing."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def insert(
        self,
        job: Job,
        *,
        request_sha256: str,
        output_sha256: str = "",
        charge: Charge | None = None,
    ) -> None:
        """Adds a new job and its charge together. Raises the quota's ResourceExhausted when
        the charge does not fit, and sqlite3.IntegrityError when the caller's idempotency key
        is taken; then nothing is written."""
        with self.transaction():
            if charge is not None:
                self.charges.charge(job.job_id, charge.caller, charge.quota, charge.amount)
            self._insert(job, request_sha256, output_sha256)

    def _insert(self, job: Job, request_sha256: str, output_sha256: str) -> None:
        self._db.execute(
            "INSERT INTO jobs (job_id, idempotency_key, request_sha256, backend, state, caller,"
            " output_sha256, job) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                job.job_id,
                job.idempotency_key or None,
                request_sha256,
                job.backend,
                STATE_CODES[job.state],
                job.caller,
                output_sha256 or None,
                msgspec.json.encode(job),
            ),
        )

    def update(self, job: Job, *, submitting: bool = False, output_sha256: str = "") -> None:
        """Commits the job's new state (and whether a submission is in flight)."""
        self._db.execute(
            "UPDATE jobs SET state = ?, submitting = ?, output_sha256 = ?, job = ?"
            " WHERE job_id = ?",
            (
                STATE_CODES[job.state],
                int(submitting),
                output_sha256 or None,
                msgspec.json.encode(job),
                job.job_id,
            ),
        )

    def end(
        self,
        job: Job,
        *,
        output_sha256: str = "",
        refund: bool = False,
        event: OutboxEvent | None = None,
    ) -> None:
        """Commits a job's end together with its refund and its webhook event."""
        with self.transaction():
            self.update(job, output_sha256=output_sha256)
            if refund:
                self.charges.refund(job.job_id)
            if event is not None:
                self.outbox.add(event)

    def get(self, job_id: str) -> StoredJob | None:
        row = self._db.execute(
            "SELECT job, seq, request_sha256, submitting FROM jobs WHERE job_id = ?", (job_id,)
        ).fetchone()
        return _stored(row) if row else None

    def by_idempotency_key(self, caller: str, key: str) -> StoredJob | None:
        """The job `caller` submitted under `key` (keys are each caller's own)."""
        row = self._db.execute(
            "SELECT job, seq, request_sha256, submitting FROM jobs"
            " WHERE caller = ? AND idempotency_key = ?",
            (caller, key),
        ).fetchone()
        return _stored(row) if row else None

    def unfinished(self) -> Iterator[StoredJob]:
        """Queued and running jobs, oldest first: what a restart must pick up again."""
        rows = self._db.execute(
            "SELECT job, seq, request_sha256, submitting FROM jobs WHERE state IN (?, ?)"
            " ORDER BY seq",
            (STATE_CODES[JobState.QUEUED], STATE_CODES[JobState.RUNNING]),
        ).fetchall()
        return map(_stored, rows)

    def page(
        self,
        *,
        states: tuple[JobState, ...],
        backend: str,
        before_seq: int | None,
        limit: int,
        caller: str | None = None,
    ) -> list[StoredJob]:
        """Up to `limit` jobs older than `before_seq`, newest first, filtered (by `caller` too,
        unless it is None)."""
        where, args = [], []
        if caller is not None:
            where.append("caller = ?")
            args.append(caller)
        if states:
            where.append(f"state IN ({', '.join('?' * len(states))})")
            args += [STATE_CODES[state] for state in states]
        if backend:
            where.append("backend = ?")
            args.append(backend)
        if before_seq is not None:
            where.append("seq < ?")
            args.append(before_seq)
        # Only fixed column names are joined in; every value is a bound parameter.
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._db.execute(
            f"SELECT job, seq, request_sha256, submitting FROM jobs {clause}"
            " ORDER BY seq DESC LIMIT ?",
            (*args, limit),
        ).fetchall()
        return [_stored(row) for row in rows]

    def jobs_holding(self, sha256: str) -> int:
        """How many jobs still hold the output with this content address."""
        (count,) = self._db.execute(
            "SELECT COUNT(*) FROM jobs WHERE output_sha256 = ?", (sha256,)
        ).fetchone()
        return int(count)

    # The content cache's index.

    def cache_get(self, key: str) -> GenerationResult | None:
        row = self._db.execute("SELECT result FROM cache WHERE cache_key = ?", (key,)).fetchone()
        if row is None:
            return None
        self._db.execute("UPDATE cache SET last_used = ? WHERE cache_key = ?", (time.time(), key))
        return msgspec.json.decode(row[0], type=GenerationResult)

    def cache_touch(self, key: str) -> None:
        """Marks an entry as just used."""
        self._db.execute("UPDATE cache SET last_used = ? WHERE cache_key = ?", (time.time(), key))

    def cache_put(self, key: str, result: GenerationResult) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO cache (cache_key, sha256, size_bytes, result, last_used)"
            " VALUES (?, ?, ?, ?, ?)",
            (key, result.sha256, result.size_bytes, msgspec.json.encode(result), time.time()),
        )

    def cache_bytes(self) -> int:
        """Bytes of distinct content the cache refers to."""
        (total,) = self._db.execute(
            "SELECT COALESCE(SUM(size_bytes), 0) FROM"
            " (SELECT sha256, MAX(size_bytes) AS size_bytes FROM cache GROUP BY sha256)"
        ).fetchone()
        return int(total)

    def cache_oldest(self) -> tuple[str, str] | None:
        """The least recently used entry as (key, sha256)."""
        row = self._db.execute(
            "SELECT cache_key, sha256 FROM cache ORDER BY last_used LIMIT 1"
        ).fetchone()
        return (row[0], row[1]) if row else None

    def cache_delete(self, key: str) -> None:
        self._db.execute("DELETE FROM cache WHERE cache_key = ?", (key,))

    def cache_delete_content(self, sha256: str) -> list[str]:
        """Drops every entry for this content; returns their keys."""
        keys = [
            row[0]
            for row in self._db.execute("SELECT cache_key FROM cache WHERE sha256 = ?", (sha256,))
        ]
        self._db.execute("DELETE FROM cache WHERE sha256 = ?", (sha256,))
        return keys

    def cache_holds(self, sha256: str) -> bool:
        return (
            self._db.execute("SELECT 1 FROM cache WHERE sha256 = ? LIMIT 1", (sha256,)).fetchone()
            is not None
        )


def _stored(row: tuple) -> StoredJob:
    job_json, seq, request_sha256, submitting = row
    return StoredJob(msgspec.json.decode(job_json, type=Job), seq, request_sha256, bool(submitting))


def _scope_idempotency_keys_by_caller(db: sqlite3.Connection) -> None:
    """Version 1 → 2: an idempotency key is unique per caller, not across callers. SQLite
    cannot drop a column's UNIQUE, so the table is rebuilt (inside the caller's transaction)."""
    db.execute(_JOBS_TABLE.format(name="jobs_v2"))
    db.execute(
        "INSERT INTO jobs_v2 (seq, job_id, idempotency_key, request_sha256, backend, state,"
        " caller, submitting, output_sha256, job) SELECT seq, job_id, idempotency_key,"
        " request_sha256, backend, state, caller, submitting, output_sha256, job FROM jobs"
    )
    db.execute("DROP TABLE jobs")
    db.execute("ALTER TABLE jobs_v2 RENAME TO jobs")
    for statement in filter(str.strip, _JOBS_INDEXES.split(";")):
        db.execute(statement)


def _convert_protobuf_rows(db: sqlite3.Connection) -> None:
    """Rewrites version 0's protobuf rows as JSON records (inside the caller's transaction)."""
    for job_id, blob in db.execute("SELECT job_id, job FROM jobs").fetchall():
        job = job_from_proto(generator_pb2.Job.FromString(blob))
        # An idempotency key is held to the digest of its job's spec, now taken of the record.
        db.execute(
            "UPDATE jobs SET job = ?, request_sha256 = ? WHERE job_id = ?",
            (msgspec.json.encode(job), request_digest(job.spec), job_id),
        )
    for key, blob in db.execute("SELECT cache_key, result FROM cache").fetchall():
        result = result_from_proto(generator_pb2.GenerationResult.FromString(blob))
        db.execute(
            "UPDATE cache SET result = ? WHERE cache_key = ?", (msgspec.json.encode(result), key)
        )
