"""The webhook outbox: events waiting to be delivered, in the job store's database.

An event is written in the same transaction that records its job's end, so no ended job can
lose its webhook to a crash, and it stays until it is delivered or has been retried for
`max_age_s`: delivery is at least once, and receivers de-duplicate by the event id. The
dispatcher (webhooks.py) reads what is due and records each attempt here.

Methods run on the job store's thread, inside its transactions where it has one open.
"""

from __future__ import annotations

from dataclasses import dataclass

from clipmesh.runtime.database import Database

OUTBOX_SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_outbox (
    event_id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    caller TEXT NOT NULL,
    url TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_s REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_s REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT NOT NULL DEFAULT '',
    done_s REAL
);
CREATE INDEX IF NOT EXISTS webhook_outbox_due ON webhook_outbox (state, next_attempt_s)
"""
OUTBOX_TABLE_POSTGRES = """
CREATE TABLE webhook_outbox (
    event_id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    caller TEXT NOT NULL,
    url TEXT NOT NULL,
    payload BYTEA NOT NULL,
    created_s DOUBLE PRECISION NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_s DOUBLE PRECISION NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT NOT NULL DEFAULT '',
    done_s DOUBLE PRECISION
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (state, next_attempt_s);
"""

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True)
class OutboxEvent:
    """One webhook event and where it stands.

    Attributes:
        event_id: The `webhook-id` receivers de-duplicate by.
        job_id: The job whose end it announces.
        caller: Whose job (and so whose signing secrets).
        url: Where it goes.
        payload: The JSON body.
        created_s: When the job ended (Unix seconds).
        attempts: Attempts made so far.
        next_attempt_s: When the next attempt is due.
        state: pending, delivered or failed.
        last_error: Why the last attempt failed.
    """

    event_id: str
    job_id: str
    caller: str
    url: str
    payload: bytes
    created_s: float
    attempts: int = 0
    next_attempt_s: float = 0.0
    state: str = PENDING
    last_error: str = ""


_COLUMNS = (
    "event_id, job_id, caller, url, payload, created_s, attempts, next_attempt_s, state, last_error"
)


class WebhookOutbox:
    """Webhook events in the job store's database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, event: OutboxEvent) -> None:
        self._db.execute(
            f"INSERT INTO webhook_outbox ({_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
            (
                event.event_id,
                event.job_id,
                event.caller,
                event.url,
                event.payload,
                event.created_s,
                event.attempts,
                event.next_attempt_s or event.created_s,
                event.state,
                event.last_error,
            ),
        )

    def due(self, now_s: float, limit: int, hold_s: float) -> list[OutboxEvent]:
        """Pending events whose next attempt is due, oldest first, held for `hold_s`: no
        other replica takes them until then, by when this one has recorded the attempt's
        outcome (or died, and the event is due again)."""
        with self._db.transaction():
            self._db.lock("webhook-outbox")
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM webhook_outbox WHERE state = ? AND next_attempt_s <= ?"
                " ORDER BY next_attempt_s LIMIT ?",
                (PENDING, now_s, limit),
            ).fetchall()
            for row in rows:
                self._db.execute(
                    "UPDATE webhook_outbox SET next_attempt_s = ? WHERE event_id = ?",
                    (now_s + hold_s, row[0]),
                )
        return [OutboxEvent(*row) for row in rows]

    def next_due_s(self) -> float | None:
        """When the earliest pending event is due; None when nothing is pending."""
        (when,) = self._db.execute(
            "SELECT MIN(next_attempt_s) FROM webhook_outbox WHERE state = ?", (PENDING,)
        ).fetchone()
        return when

    def get(self, event_id: str) -> OutboxEvent | None:
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM webhook_outbox WHERE event_id = ?", (event_id,)
        ).fetchone()
        return OutboxEvent(*row) if row else None

    def delivered(self, event_id: str, attempts: int, now_s: float) -> None:
        self._db.execute(
            "UPDATE webhook_outbox SET state = ?, attempts = ?, last_error = '', done_s = ?"
            " WHERE event_id = ?",
            (DELIVERED, attempts, now_s, event_id),
        )

    def retry(self, event_id: str, attempts: int, next_attempt_s: float, error: str) -> None:
        self._db.execute(
            "UPDATE webhook_outbox SET attempts = ?, next_attempt_s = ?, last_error = ?"
            " WHERE event_id = ?",
            (attempts, next_attempt_s, error, event_id),
        )

    def failed(self, event_id: str, attempts: int, now_s: float, error: str) -> None:
        """Gives up on an event (retried for too long, or refused for good)."""
        self._db.execute(
            "UPDATE webhook_outbox SET state = ?, attempts = ?, last_error = ?, done_s = ?"
            " WHERE event_id = ?",
            (FAILED, attempts, error, now_s, event_id),
        )

    def pending(self) -> int:
        (count,) = self._db.execute(
            "SELECT COUNT(*) FROM webhook_outbox WHERE state = ?", (PENDING,)
        ).fetchone()
        return int(count)

    def prune(self, before_s: float) -> int:
        """Forgets delivered and failed events that ended before `before_s`."""
        return self._db.execute(
            "DELETE FROM webhook_outbox WHERE state != ? AND done_s < ?", (PENDING, before_s)
        ).rowcount
