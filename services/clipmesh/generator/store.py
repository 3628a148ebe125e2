"""The durable job record: one SQLite database under the gateway's data dir.

Each job is stored as its `Job` protobuf plus the columns the gateway queries by (state,
backend, idempotency key, caller, submission order). A state change, a provider task id and a
result are committed (fsynced, WAL mode, `synchronous=FULL`) before any watcher hears of them,
so after a crash or SIGKILL the gateway resumes exactly the jobs it had promised: queued jobs
stay queued, provider tasks are polled again, never submitted twice.

Progress fractions are not written (they change many times a second and are worthless after a
restart); everything else is.

The content cache's index lives in the same database (`cache` table) so a cache entry and the
job that made it commit together.

All methods are synchronous; the gateway calls them from one dedicated thread.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from clipmesh_api.generator.v1 import generator_pb2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL UNIQUE,
    idempotency_key TEXT UNIQUE,
    request_sha256 TEXT NOT NULL,
    backend TEXT NOT NULL,
    state INTEGER NOT NULL,
    caller TEXT NOT NULL,
    submitting INTEGER NOT NULL DEFAULT 0,
    output_sha256 TEXT,
    job BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, backend, seq);
CREATE INDEX IF NOT EXISTS jobs_by_output ON jobs (output_sha256);
CREATE TABLE IF NOT EXISTS cache (
    cache_key TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    result BLOB NOT NULL,
    last_used REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS cache_by_use ON cache (last_used);
"""

ENDED_STATES = frozenset(
    {
        generator_pb2.JOB_STATE_SUCCEEDED,
        generator_pb2.JOB_STATE_FAILED,
        generator_pb2.JOB_STATE_CANCELLED,
    }
)


@dataclass(frozen=True)
class StoredJob:
    """A job as the store holds it.

    Attributes:
        job: The job's protobuf.
        seq: Submission order (higher is newer).
        request_sha256: Digest of the idempotent request (spec), to compare a repeated key.
        submitting: True while a submission to a billing provider was in flight and its task
            id not yet recorded.
    """

    job: generator_pb2.Job
    seq: int
    request_sha256: str
    submitting: bool


class JobStore:
    """Jobs and the content cache's index, in SQLite."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # check_same_thread=False: the gateway uses one dedicated worker thread, never two
        # at once, but not necessarily the thread that opened the connection.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def insert(
        self, job: generator_pb2.Job, *, request_sha256: str, output_sha256: str = ""
    ) -> int:
        """Adds a new job; returns its submission order. Raises sqlite3.IntegrityError when
        its idempotency key is taken."""
        cursor = self._db.execute(
            "INSERT INTO jobs (job_id, idempotency_key, request_sha256, backend, state, caller,"
            " output_sha256, job) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                job.job_id,
                job.idempotency_key or None,
                request_sha256,
                job.backend,
                job.state,
                job.caller,
                output_sha256 or None,
                job.SerializeToString(),
            ),
        )
        return int(cursor.lastrowid)

    def update(
        self, job: generator_pb2.Job, *, submitting: bool = False, output_sha256: str = ""
    ) -> None:
        """Commits the job's new state (and whether a submission is in flight)."""
        self._db.execute(
            "UPDATE jobs SET state = ?, submitting = ?, output_sha256 = ?, job = ?"
            " WHERE job_id = ?",
            (
                job.state,
                int(submitting),
                output_sha256 or None,
                job.SerializeToString(),
                job.job_id,
            ),
        )

    def get(self, job_id: str) -> StoredJob | None:
        row = self._db.execute(
            "SELECT job, seq, request_sha256, submitting FROM jobs WHERE job_id = ?", (job_id,)
        ).fetchone()
        return _stored(row) if row else None

    def by_idempotency_key(self, key: str) -> StoredJob | None:
        row = self._db.execute(
            "SELECT job, seq, request_sha256, submitting FROM jobs WHERE idempotency_key = ?",
            (key,),
        ).fetchone()
        return _stored(row) if row else None

    def unfinished(self) -> Iterator[StoredJob]:
        """Queued and running jobs, oldest first: what a restart must pick up again."""
        rows = self._db.execute(
            "SELECT job, seq, request_sha256, submitting FROM jobs WHERE state IN (?, ?)"
            " ORDER BY seq",
            (generator_pb2.JOB_STATE_QUEUED, generator_pb2.JOB_STATE_RUNNING),
        ).fetchall()
        return map(_stored, rows)

    def page(
        self,
        *,
        states: tuple[int, ...],
        backend: str,
        before_seq: int | None,
        limit: int,
    ) -> list[StoredJob]:
        """Up to `limit` jobs older than `before_seq`, newest first, filtered."""
        where, args = [], []
        if states:
            where.append(f"state IN ({', '.join('?' * len(states))})")
            args += list(states)
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

    def cache_get(self, key: str) -> generator_pb2.GenerationResult | None:
        row = self._db.execute("SELECT result FROM cache WHERE cache_key = ?", (key,)).fetchone()
        if row is None:
            return None
        self._db.execute("UPDATE cache SET last_used = ? WHERE cache_key = ?", (time.time(), key))
        return generator_pb2.GenerationResult.FromString(row[0])

    def cache_touch(self, key: str) -> None:
        """Marks an entry as just used."""
        self._db.execute("UPDATE cache SET last_used = ? WHERE cache_key = ?", (time.time(), key))

    def cache_put(self, key: str, result: generator_pb2.GenerationResult) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO cache (cache_key, sha256, size_bytes, result, last_used)"
            " VALUES (?, ?, ?, ?, ?)",
            (key, result.sha256, result.size_bytes, result.SerializeToString(), time.time()),
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
    job_bytes, seq, request_sha256, submitting = row
    return StoredJob(generator_pb2.Job.FromString(job_bytes), seq, request_sha256, bool(submitting))
