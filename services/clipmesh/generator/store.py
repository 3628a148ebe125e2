"""The durable job record, on SQLite (one replica) or PostgreSQL (several replicas share it).

Each job is stored as JSON of its `Job` record plus the columns the gateway queries by (state,
backend, idempotency key, caller, submission order, owner). A state change, a provider task id
and a result are committed before any watcher hears of them, so after a crash or SIGKILL the
jobs promised are resumed exactly: queued jobs stay queued, provider tasks are polled again,
never submitted twice.

Work is owned through leases. A replica *claims* queued jobs (under the backend's lock, so the
backend's concurrency limit holds across replicas) and becomes their `owner`; it renews its
lease in `replicas` every third of `lease_s`. Every write the owner makes to a running job is
fenced (`WHERE owner = me`): a replica whose lease lapsed and whose jobs were taken over finds
its writes refused (`LeaseLost`) and lets go, so one job never has two writers. A replica that
stops cleanly releases its jobs at once.

The same database holds, each with its own class, the content cache's index (`cache.CacheIndex`),
the webhook outbox (`outbox.WebhookOutbox`), the callers' quota charges (`runtime.usage.
ChargeBook`) and the providers' submission slots (`ratelimit.ProviderCalls`), so a job's insert
and its charge, and its end, its refund and its webhook event, each commit together.

Every committed change is announced on the `clipmesh_generator` channel (runtime/
notifications.py) with the same commit: replicas' watchers re-read the job, idle replicas try
to claim. Payloads are small JSON objects: {"k": kind, "j": job id, "b": backend, "m": message}.

The schemas and their versions are in schema.py. All methods are synchronous and run on the
ledger's worker threads.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import msgspec

from clipmesh.generator.cache import CacheIndex
from clipmesh.generator.convert import STATE_CODES
from clipmesh.generator.jobs import Job, JobState
from clipmesh.generator.outbox import WebhookOutbox
from clipmesh.generator.ratelimit import ProviderCalls
from clipmesh.runtime.database import Database
from clipmesh.runtime.policy import CallerPolicy, Quota
from clipmesh.runtime.usage import ChargeBook, Clock

CHANNEL = "clipmesh_generator"
"""Where the job store announces what it committed."""

QUEUED, RUNNING = STATE_CODES[JobState.QUEUED], STATE_CODES[JobState.RUNNING]


class LeaseLost(Exception):
    """This replica no longer owns the job (its lease lapsed and another replica took it over,
    or it was released): it must stop working on it without writing."""


@dataclass(frozen=True)
class StoredJob:
    """A job as the store holds it.

    Attributes:
        job: The job.
        seq: Submission order (higher is newer).
        request_sha256: Digest of the idempotent request (spec), to compare a repeated key.
        submitting: True while a submission to a billing provider was in flight and its task
            id not yet recorded.
        owner: The replica running it ("" when none does).
        cancel_requested: A caller asked to cancel it while it ran.
    """

    job: Job
    seq: int
    request_sha256: str
    submitting: bool
    owner: str = ""
    cancel_requested: bool = False


@dataclass(frozen=True)
class Charge:
    """What a new job costs its caller (charged under the job's id)."""

    caller: CallerPolicy
    quota: Quota
    amount: float


@dataclass(frozen=True)
class ClaimRules:
    """How many jobs of one backend may run at once.

    Attributes:
        limit: Jobs of the backend running at once.
        per_replica: True when `limit` counts this replica's jobs only (a local render takes
            one of its cores); False when it counts every replica's (a provider account).
        per_caller: Jobs of one caller running at once on the backend (0: no bound).
    """

    limit: int
    per_replica: bool
    per_caller: int = 0


_JOB_COLUMNS = "job, seq, request_sha256, submitting, owner, cancel_requested"


class JobStore:
    """Jobs, leases, the content cache's index, the webhook outbox and quota charges.

    Args:
        db: The store's database (`schema.open_job_database`).
        clock: Unix seconds now, for quota days.
    """

    def __init__(self, db: Database, clock: Clock = time.time) -> None:
        self.db = db
        self.outbox = WebhookOutbox(db)
        self.charges = ChargeBook(db, clock)
        self.cache = CacheIndex(db)
        self.provider_calls = ProviderCalls(db)
        self.charges.prune()

    def close(self) -> None:
        self.db.close()

    def transaction(self):
        """Commits everything inside the block together, or nothing."""
        return self.db.transaction()

    def announce(self, kind: str, *, job_id: str = "", backend: str = "", message: str = ""):
        """Tells every replica, with the current transaction's commit, what changed."""
        payload = {"k": kind, "j": job_id, "b": backend, "m": message}
        self.db.notify(CHANNEL, json.dumps({k: v for k, v in payload.items() if v}))

    # Submitting.

    def earlier(self, caller: str, key: str) -> StoredJob | None:
        """The job `caller` submitted under idempotency `key` (keys are each caller's own)."""
        row = self.db.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE caller = ? AND idempotency_key = ?",
            (caller, key),
        ).fetchone()
        return _stored(row) if row else None

    def counts(self, caller: str) -> tuple[int, int]:
        """(jobs queued on every backend, jobs of `caller` queued or running)."""
        (queued,) = self.db.execute(
            "SELECT COUNT(*) FROM jobs WHERE state = ?", (QUEUED,)
        ).fetchone()
        (active,) = self.db.execute(
            "SELECT COUNT(*) FROM jobs WHERE caller = ? AND state IN (?, ?)",
            (caller, QUEUED, RUNNING),
        ).fetchone()
        return int(queued), int(active)

    def lock_caller(self, caller: str) -> None:
        """Serialises one caller's submissions across replicas (inside a transaction): the
        idempotency lookup, the admission counts and the insert see each other's commits."""
        self.db.lock(f"caller:{caller}")

    def insert(
        self,
        job: Job,
        *,
        request_sha256: str,
        output_sha256: str = "",
        charge: Charge | None = None,
    ) -> int:
        """Adds a new job and its charge together, and announces it; returns its queue
        position (jobs of its backend queued before it). Raises the quota's ResourceExhausted
        when the charge does not fit; then nothing is written."""
        with self.transaction():
            if charge is not None:
                self.charges.charge(job.job_id, charge.caller, charge.quota, charge.amount)
            self.db.execute(
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
            if job.state != JobState.QUEUED:
                return 0
            self.announce("queued", job_id=job.job_id, backend=job.backend)
            (ahead,) = self.db.execute(
                "SELECT COUNT(*) FROM jobs WHERE state = ? AND backend = ? AND seq <"
                " (SELECT seq FROM jobs WHERE job_id = ?)",
                (QUEUED, job.backend, job.job_id),
            ).fetchone()
            return int(ahead)

    # Claiming and leases.

    def heartbeat(self, replica_id: str, host: str, lease_s: float) -> None:
        """Renews this replica's lease (registering it the first time)."""
        now = self.db.dialect.now
        self.db.execute(
            "INSERT INTO replicas (replica_id, host, started_s, lease_until)"
            f" VALUES (?, ?, {now}, {now} + ?) ON CONFLICT (replica_id) DO UPDATE"
            " SET lease_until = excluded.lease_until",
            (replica_id, host, lease_s),
        )

    def claim(self, backend: str, owner: str, rules: ClaimRules, limit: int) -> list[StoredJob]:
        """Takes up to `limit` of `backend`'s oldest queued jobs for `owner`, as the backend's
        rules allow with what runs now on every replica; they are RUNNING, owned, announced."""
        with self.transaction():
            self.db.lock(f"claim:{backend}")
            owned = " AND owner = ?" if rules.per_replica else ""
            args = (RUNNING, backend, owner) if rules.per_replica else (RUNNING, backend)
            (running,) = self.db.execute(
                f"SELECT COUNT(*) FROM jobs WHERE state = ? AND backend = ?{owned}", args
            ).fetchone()
            if not rules.per_replica:
                running += self._orphaned(backend)
            free = min(limit, rules.limit - int(running))
            if free <= 0:
                return []
            per_caller: dict[str, int] = {}
            if rules.per_caller:
                per_caller = dict(
                    self.db.execute(
                        "SELECT caller, COUNT(*) FROM jobs WHERE state = ? AND backend = ?"
                        " GROUP BY caller",
                        (RUNNING, backend),
                    ).fetchall()
                )
            rows = self.db.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state = ? AND backend = ?"
                " ORDER BY seq LIMIT ?",
                (QUEUED, backend, free if not rules.per_caller else 50 * free),
            ).fetchall()
            claimed: list[StoredJob] = []
            for row in rows:
                stored = _stored(row)
                caller = stored.job.caller
                if rules.per_caller and per_caller.get(caller, 0) >= rules.per_caller:
                    continue
                per_caller[caller] = per_caller.get(caller, 0) + 1
                job = stored.job
                job.state, job.queue_position = JobState.RUNNING, 0
                job.start_time_s = time.time()
                self.db.execute(
                    "UPDATE jobs SET state = ?, owner = ?, job = ? WHERE job_id = ?",
                    (RUNNING, owner, msgspec.json.encode(job), job.job_id),
                )
                self.announce("changed", job_id=job.job_id, message=f"running on {backend}")
                claimed.append(StoredJob(job, stored.seq, stored.request_sha256, False, owner))
                if len(claimed) == free:
                    break
            if claimed:
                self.announce("moved", backend=backend)
            return claimed

    def _orphaned(self, backend: str) -> int:
        """Provider tasks of `backend` that may still run though no job follows them (their
        submission was interrupted): each holds one of the account's slots for a while."""
        now = self.db.dialect.now
        (count,) = self.db.execute(
            f"SELECT COUNT(*) FROM orphaned_tasks WHERE backend = ? AND until_s > {now}",
            (backend,),
        ).fetchone()
        return int(count)

    def take_over(self, owner: str, limit: int = 100) -> list[StoredJob]:
        """Running jobs whose owner is gone (its lease lapsed, or it released them), now owned
        by `owner`; the caller resumes, re-queues or fails each."""
        now = self.db.dialect.now
        with self.transaction():
            self.db.lock("take-over")
            rows = self.db.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state = ? AND (owner IS NULL OR owner"
                f" NOT IN (SELECT replica_id FROM replicas WHERE lease_until > {now}))"
                " ORDER BY seq LIMIT ?",
                (RUNNING, limit),
            ).fetchall()
            taken = [_stored(row) for row in rows]
            for stored in taken:
                self.db.execute(
                    "UPDATE jobs SET owner = ? WHERE job_id = ?", (owner, stored.job.job_id)
                )
            return [
                StoredJob(s.job, s.seq, s.request_sha256, s.submitting, owner, s.cancel_requested)
                for s in taken
            ]

    def release(self, owner: str) -> int:
        """Lets go of every job `owner` runs (it is stopping) and ends its lease, so another
        replica takes the jobs over at once; returns how many."""
        with self.transaction():
            released = self.db.execute(
                "UPDATE jobs SET owner = NULL WHERE owner = ? AND state = ?", (owner, RUNNING)
            ).rowcount
            self.db.execute("DELETE FROM replicas WHERE replica_id = ?", (owner,))
            self.announce("released")
            return released

    def forget_other_replicas(self, replica_id: str) -> None:
        """Ends every other replica's lease: with SQLite this process is the only replica, and
        what an earlier run of it left running is its to resume at once."""
        self.db.execute("DELETE FROM replicas WHERE replica_id != ?", (replica_id,))

    def prune_replicas(self, older_than_s: float) -> None:
        """Forgets replicas whose lease lapsed long ago (their jobs were taken over), and
        orphaned tasks past their hold."""
        now = self.db.dialect.now
        with self.transaction():
            self.db.execute(f"DELETE FROM replicas WHERE lease_until < {now} - ?", (older_than_s,))
            self.db.execute(f"DELETE FROM orphaned_tasks WHERE until_s < {now}")

    # The owner's writes, fenced.

    def update(
        self,
        job: Job,
        owner: str,
        *,
        submitting: bool = False,
        output_sha256: str = "",
        message: str = "",
    ) -> None:
        """Commits the job's new state (and whether a submission is in flight) if `owner`
        still owns it; raises LeaseLost otherwise."""
        with self.transaction():
            self._write(job, owner, submitting=submitting, output_sha256=output_sha256)
            self.announce("changed", job_id=job.job_id, message=message)

    def end(
        self,
        job: Job,
        owner: str | None,
        *,
        output_sha256: str = "",
        refund: bool = False,
        event=None,
        message: str = "",
        orphaned_task_s: float = 0.0,
    ) -> None:
        """Commits a job's end together with its refund and its webhook event. `owner` None
        ends a job nobody runs (a queued job cancelled): LeaseLost if it was claimed since.
        `orphaned_task_s` > 0: the provider may run a task for the job that nobody follows;
        it holds one of the backend's slots that long."""
        with self.transaction():
            if owner is None:
                changed = self.db.execute(
                    "UPDATE jobs SET state = ?, submitting = 0, output_sha256 = ?, job = ?"
                    " WHERE job_id = ? AND state = ?",
                    (
                        STATE_CODES[job.state],
                        output_sha256 or None,
                        msgspec.json.encode(job),
                        job.job_id,
                        QUEUED,
                    ),
                ).rowcount
                if not changed:
                    raise LeaseLost(job.job_id)
            else:
                self._write(job, owner, submitting=False, output_sha256=output_sha256, ended=True)
            if refund:
                self.charges.refund(job.job_id)
            if event is not None:
                self.outbox.add(event)
            if orphaned_task_s > 0:
                now = self.db.dialect.now
                self.db.execute(
                    "INSERT INTO orphaned_tasks (job_id, backend, until_s)"
                    f" VALUES (?, ?, {now} + ?) ON CONFLICT (job_id) DO NOTHING",
                    (job.job_id, job.backend, orphaned_task_s),
                )
            self.announce("changed", job_id=job.job_id, message=message)
            self.announce("moved", backend=job.backend)  # a slot is free

    def _write(
        self, job: Job, owner: str, *, submitting: bool, output_sha256: str, ended: bool = False
    ) -> None:
        changed = self.db.execute(
            "UPDATE jobs SET state = ?, submitting = ?, output_sha256 = ?, job = ?"
            + (", owner = NULL" if ended else "")
            + " WHERE job_id = ? AND owner = ?",
            (
                STATE_CODES[job.state],
                int(submitting),
                output_sha256 or None,
                msgspec.json.encode(job),
                job.job_id,
                owner,
            ),
        ).rowcount
        if not changed:
            raise LeaseLost(job.job_id)

    def requeue(self, job: Job, owner: str) -> None:
        """Puts a job `owner` holds back in its queue (a local render cut short)."""
        with self.transaction():
            job.state, job.start_time_s, job.progress = JobState.QUEUED, 0.0, 0.0
            changed = self.db.execute(
                "UPDATE jobs SET state = ?, owner = NULL, submitting = 0, job = ?"
                " WHERE job_id = ? AND owner = ?",
                (QUEUED, msgspec.json.encode(job), job.job_id, owner),
            ).rowcount
            if not changed:
                raise LeaseLost(job.job_id)
            self.announce("queued", job_id=job.job_id, backend=job.backend)

    def request_cancel(self, job_id: str) -> bool:
        """Marks a running job for cancelling and tells its owner; False when it is not
        running (any more)."""
        with self.transaction():
            changed = self.db.execute(
                "UPDATE jobs SET cancel_requested = 1 WHERE job_id = ? AND state = ?",
                (job_id, RUNNING),
            ).rowcount
            if changed:
                self.announce("cancel", job_id=job_id, message="cancel requested")
            return bool(changed)

    def save_output_state(self, job: Job) -> None:
        """Records that an ended job's output was deleted (no owner: it has ended)."""
        self.db.execute(
            "UPDATE jobs SET output_sha256 = NULL, job = ? WHERE job_id = ?",
            (msgspec.json.encode(job), job.job_id),
        )

    # Reading.

    def get(self, job_id: str) -> StoredJob | None:
        row = self.db.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE job_id = ?", (job_id,)
        ).fetchone()
        return _stored(row) if row else None

    def positions(self, job_ids: list[str]) -> dict[str, int]:
        """Each queued job's place in its backend's queue (0: next): one ordered read of each
        backend's queue, not a count per job (hundreds wait at once)."""
        wanted = set(job_ids)
        if not wanted:
            return {}
        positions: dict[str, int] = {}
        ahead: dict[str, int] = {}
        rows = self.db.execute(
            "SELECT job_id, backend FROM jobs WHERE state = ? ORDER BY seq", (QUEUED,)
        )
        for job_id, backend in rows:
            place = ahead.get(backend, 0)
            ahead[backend] = place + 1
            if job_id in wanted:
                positions[job_id] = place
        return positions

    def active_by_caller(self) -> dict[str, int]:
        """Jobs queued or running, by caller (for the metrics)."""
        rows = self.db.execute(
            "SELECT caller, COUNT(*) FROM jobs WHERE state IN (?, ?) GROUP BY caller",
            (QUEUED, RUNNING),
        ).fetchall()
        return {caller: int(count) for caller, count in rows}

    def unfinished_counts(self) -> dict[tuple[str, str], int]:
        """Jobs queued and running, by (state name, backend)."""
        rows = self.db.execute(
            "SELECT state, backend, COUNT(*) FROM jobs WHERE state IN (?, ?)"
            " GROUP BY state, backend",
            (QUEUED, RUNNING),
        ).fetchall()
        names = {QUEUED: "queued", RUNNING: "running"}
        return {(names[state], backend): int(count) for state, backend, count in rows}

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
        rows = self.db.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs {clause} ORDER BY seq DESC LIMIT ?",
            (*args, limit),
        ).fetchall()
        return [_stored(row) for row in rows]

    def jobs_holding(self, sha256: str) -> int:
        """How many jobs still hold the output with this content address."""
        (count,) = self.db.execute(
            "SELECT COUNT(*) FROM jobs WHERE output_sha256 = ?", (sha256,)
        ).fetchone()
        return int(count)


def _stored(row: tuple) -> StoredJob:
    job_json, seq, request_sha256, submitting, owner, cancel_requested = row
    job = msgspec.json.decode(bytes(job_json), type=Job)
    return StoredJob(
        job, seq, request_sha256, bool(submitting), owner or "", bool(cancel_requested)
    )
