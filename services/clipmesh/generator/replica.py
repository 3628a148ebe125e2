"""This replica's share of the work: its lease, the jobs it claims, the jobs it takes over.

Every replica runs the same loop on the shared store (store.py):

- its lease is renewed every third of `lease_s`; while it cannot be (the database is away) the
  replica reports not ready, and its health turns back once a renewal succeeds;
- a claim pass runs for a backend whenever its queue may have moved (a job queued or ended on
  any replica, heard through the store's notifications) and on every renewal as a safety net;
  each pass takes a few jobs at a time, so replicas share a burst;
- a take-over pass on every renewal, and at once when a stopping replica released its jobs,
  adopts running jobs whose owner's lease lapsed; the gateway resumes, re-queues or fails
  each (gateway.py `_adopt`).

With SQLite this process is the only replica: at start it ends every earlier lease at once, so
what a killed predecessor left running is resumed without waiting for its lease to lapse.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable

from clipmesh.generator import metrics
from clipmesh.generator.ledger import JobLedger
from clipmesh.generator.store import ClaimRules, StoredJob
from clipmesh.runtime.database import StoreUnavailable
from clipmesh.runtime.leases import LeaseKeeper

log = logging.getLogger(__name__)

CLAIM_BATCH = 4
"""Jobs one claim pass takes at a time, so that replicas share a burst of submissions."""
FORGET_REPLICAS_AFTER_S = 86_400.0


class ReplicaLoop:
    """Renews this replica's lease, claims queued jobs and takes over orphaned ones.

    Args:
        ledger: The shared store.
        rules: Each backend's claim rules (limits), by backend name.
        replica_id: This replica's identity.
        lease_s: The lease's length.
        start: Runs a job this replica claimed.
        adopt: Resumes, re-queues or fails a running job this replica took over.
    """

    def __init__(
        self,
        ledger: JobLedger,
        rules: dict[str, ClaimRules],
        *,
        replica_id: str,
        lease_s: float,
        start: Callable[[StoredJob], Awaitable[None]],
        adopt: Callable[[StoredJob], Awaitable[None]],
    ) -> None:
        self.replica_id = replica_id
        self._ledger = ledger
        self._rules = rules
        self._lease_s = lease_s
        self._start = start
        self._adopt = adopt
        self._wake = {name: asyncio.Event() for name in rules}
        self._tasks: list[asyncio.Task] = []
        self._claiming = True
        self._pruned_at = 0.0
        self.lease = LeaseKeeper(self._heartbeat, self._after_renewal, lease_s, what="generator")

    def hear(self, note: dict) -> None:
        """A store notification (parsed): a queue moved, or a replica released its jobs."""
        kind, backend = note.get("k"), note.get("b", "")
        if kind in ("queued", "moved") and backend in self._wake:
            self._wake[backend].set()
        elif kind == "released":
            self.lease.poke()

    def wake(self, backend: str | None = None) -> None:
        """Runs a claim pass for `backend` (every backend when None) soon."""
        for name, event in self._wake.items():
            if backend is None or name == backend:
                event.set()

    async def start(self) -> None:
        """Takes the lease, adopts what is orphaned, and starts the loops."""
        await self.lease.start()
        if not self._ledger.shared:
            await self._ledger.forget_other_replicas(self.replica_id)
        await self._take_over()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._claim_loop(name)) for name in self._wake]
        self.wake()

    def stop_claiming(self) -> None:
        """Claims no more work (the replica is stopping)."""
        self._claiming = False

    async def stop(self) -> None:
        self._claiming = False
        await self.lease.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def release(self) -> None:
        """Hands this replica's running jobs to the others at once (it stops cleanly)."""
        with contextlib.suppress(StoreUnavailable):
            released = await self._ledger.release(self.replica_id)
            if released:
                log.info("released %d running job(s) to the other replicas", released)

    async def _heartbeat(self) -> None:
        await self._ledger.heartbeat(self.replica_id, socket.gethostname(), self._lease_s)

    async def _after_renewal(self) -> None:
        await self._take_over()
        await self._refresh_gauges()
        if time.monotonic() - self._pruned_at > 3600:
            await self._ledger.prune_replicas(FORGET_REPLICAS_AFTER_S)
            self._pruned_at = time.monotonic()
        self.wake()

    async def _take_over(self) -> None:
        if not self._claiming:
            return
        for stored in await self._ledger.take_over(self.replica_id):
            log.info(
                "took over job %s (its replica's lease lapsed or it was released)",
                stored.job.job_id,
            )
            await self._adopt(stored)

    async def _claim_loop(self, backend: str) -> None:
        wake = self._wake[backend]
        rules = self._rules[backend]
        while True:
            await wake.wait()
            wake.clear()
            while self._claiming:
                try:
                    claimed = await self._ledger.claim(backend, self.replica_id, rules, CLAIM_BATCH)
                except StoreUnavailable as exc:
                    log.warning("no claim for %s: %s", backend, exc)
                    break
                for stored in claimed:
                    await self._start(stored)
                if len(claimed) < CLAIM_BATCH:
                    break

    async def _refresh_gauges(self) -> None:
        """Jobs queued and running per backend, as the store counts them for every replica
        (each replica exports the same figures: dashboards take the max, not the sum)."""
        counts = await self._ledger.unfinished_counts()
        for name in self._rules:
            queued = counts.get(("queued", name), 0)
            metrics.QUEUE_DEPTH.labels(name).set(queued)
            metrics.JOBS.labels("queued", name).set(queued)
            metrics.JOBS.labels("running", name).set(counts.get(("running", name), 0))
