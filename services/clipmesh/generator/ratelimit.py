"""Provider submission limits, enforced inside the gateway.

A provider's published limits are per account and shared by all its keys (DashScope wan2.1:
2 submissions a second, 2 concurrent tasks). Going over earns 429s, retries and — worse — a
throttled account, so the gateway keeps under them itself: `SubmissionRate` spaces
submissions, and the job queue never runs more than `max_concurrent` tasks of a backend at
once.

The provider counts a submission when the request *arrives*, which may be well after it was
allowed here (a slow connect, a busy event loop). So a submission holds its slot while in
flight and is stamped when its answer comes back — by then the provider has it — and the next
one goes only a full window after that stamp: arrivals can never be closer than the window,
whatever the network does.

Several replicas share one account: `SharedSubmissionRate` keeps the same rule across all of
them through the job store's `provider_calls` (`ProviderCalls`), counted under a lock in the shared
database, so the account sees the limit held however many replicas submit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator

from clipmesh.generator import metrics
from clipmesh.runtime.database import Database


class SubmissionRate:
    """At most `per_second × window_s` submissions in any window, granted in arrival order."""

    def __init__(self, per_second: float, *, backend: str, window_s: float = 1.0) -> None:
        if per_second <= 0 or window_s <= 0:
            raise ValueError("per_second and window_s must be positive")
        # Below one a second (0.5/s), the window stretches to hold one submission (2 s).
        self._window_s = max(window_s, 1 / per_second)
        self._capacity = max(1, int(per_second * self._window_s))
        self._stamps: deque[float] = deque()
        self._in_flight = 0
        self._lock = asyncio.Lock()  # FIFO: waiters are served in the order they came
        self._released = asyncio.Event()
        self._backend = backend

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Holds one submission's slot around the request that makes it."""
        started = time.monotonic()
        async with self._lock:
            while True:
                now = time.monotonic()
                while self._stamps and now - self._stamps[0] >= self._window_s:
                    self._stamps.popleft()
                if len(self._stamps) + self._in_flight < self._capacity:
                    self._in_flight += 1
                    break
                # Wait for the oldest stamp to leave the window, or an in-flight one to land.
                wait_s = self._window_s - (now - self._stamps[0]) if self._stamps else None
                self._released.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._released.wait(), wait_s)
        metrics.RATE_LIMIT_WAIT_SECONDS.labels(self._backend).observe(time.monotonic() - started)
        try:
            yield
        finally:
            self._in_flight -= 1
            self._stamps.append(time.monotonic())
            self._released.set()


class SharedSubmissionRate:
    """`SubmissionRate`'s rule held across every replica sharing the job store.

    Args:
        ledger: The shared job store.
        backend: Whose provider's limit.
        replica_id: This replica (a call of a replica that died stops counting in time).
        per_second: The account's submissions a second.
        window_s: The window the limit is counted over.
    """

    def __init__(
        self, ledger, backend: str, replica_id: str, per_second: float, *, window_s: float = 1.0
    ) -> None:
        if per_second <= 0 or window_s <= 0:
            raise ValueError("per_second and window_s must be positive")
        self._ledger = ledger
        self._backend = backend
        self._replica_id = replica_id
        self._window_s = max(window_s, 1 / per_second)
        self._capacity = max(1, int(per_second * self._window_s))

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Holds one submission's slot (on every replica) around the request that makes it."""
        from clipmesh.generator.runner import durably  # the runner's retry while unreachable

        started = time.monotonic()
        what = f"a {self._backend} submission"
        while True:
            call_id, wait_s = await durably(
                lambda: self._ledger.open_provider_call(
                    self._backend, self._replica_id, self._capacity, self._window_s
                ),
                what,
            )
            if call_id is not None:
                break
            await asyncio.sleep(wait_s)
        metrics.RATE_LIMIT_WAIT_SECONDS.labels(self._backend).observe(time.monotonic() - started)
        try:
            yield
        finally:
            # Stamped when the answer is back: by then the provider has counted it.
            await durably(lambda: self._ledger.close_provider_call(call_id), what)


# A provider call still open after this long is taken to have ended, whatever its replica.
PROVIDER_CALL_MAX_S = 120.0
# The longest a submission can be on its way: its HTTP request's timeouts have passed by then.
SUBMISSION_MAX_FLIGHT_S = 60.0


def _counted_until(
    started_s: float, ended_s: float | None, lease_until: float | None, window_s: float
) -> float:
    """Until when a provider call counts against the window: a window after it landed. One
    still in flight counts while its replica holds its lease, and in any case until it can no
    longer arrive (a replica late to renew its lease may still be sending it)."""
    if ended_s is not None:
        return ended_s + window_s
    return max(lease_until or 0.0, started_s + SUBMISSION_MAX_FLIGHT_S) + window_s


class ProviderCalls:
    """Submissions to providers as the job store's database records them (`provider_calls`),
    for `SharedSubmissionRate`: every replica's slots, counted under a lock per backend."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def open(
        self, backend: str, replica_id: str, capacity: int, window_s: float
    ) -> tuple[int | None, float]:
        """A slot for one submission to `backend`'s provider when fewer than `capacity` were
        made (or are in flight) in the last `window_s` seconds, on every replica together:
        (call id, 0). Otherwise (None, seconds to wait before asking again).

        A submission in flight counts until it lands; one whose replica died, until it can no
        longer arrive (`_counted_until`).
        """
        now = self.db.dialect.now
        with self.db.transaction():
            self.db.lock(f"rate:{backend}")
            self.db.execute(
                f"DELETE FROM provider_calls WHERE backend = ? AND (ended_s < {now} - ?"
                f" OR started_s < {now} - ?)",
                (backend, window_s, PROVIDER_CALL_MAX_S),
            )
            rows = self.db.execute(
                f"SELECT c.started_s, c.ended_s, r.lease_until, {now} FROM provider_calls c"
                " LEFT JOIN replicas r ON r.replica_id = c.replica_id WHERE c.backend = ?",
                (backend,),
            ).fetchall()
            clock = rows[0][3] if rows else None
            until = [
                _counted_until(started, ended, lease, window_s) for started, ended, lease, _ in rows
            ]
            counted = [t for t in until if clock is None or t > clock]
            if len(counted) < capacity:
                (call_id,) = self.db.execute(
                    "INSERT INTO provider_calls (backend, replica_id, started_s)"
                    f" VALUES (?, ?, {now}) RETURNING call_id",
                    (backend, replica_id),
                ).fetchone()
                return int(call_id), 0.0
            soonest = min(counted) - clock
            return None, min(max(soonest, 0.01), window_s)

    def close(self, call_id: int) -> None:
        """The submission has landed: its slot leaves the window `window_s` from now."""
        now = self.db.dialect.now
        self.db.execute(f"UPDATE provider_calls SET ended_s = {now} WHERE call_id = ?", (call_id,))
