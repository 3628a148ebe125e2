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
them through the job store's `provider_calls` (store.py), counted under a lock in the shared
database, so the account sees the limit held however many replicas submit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator

from clipmesh.generator import metrics


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
