"""A replica's lease on its work in a shared store, kept alive.

A stateful service (the generator's jobs, previs's runs) owns work through a lease its
replica renews every third of `lease_s`; another replica takes the work over once the lease
has lapsed. `LeaseKeeper` renews it, runs the service's pass after each renewal (taking over
orphaned work), and turns the replica's readiness off while renewals fail (its database out
of reach) and on again once one succeeds: liveness is left alone, since restarting the
process would not bring the database back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections.abc import Awaitable, Callable

from clipmesh.runtime.database import StoreUnavailable

log = logging.getLogger(__name__)


def new_replica_id() -> str:
    """This process's identity in a shared store: readable (the host) and unique (a new suffix
    per start, so a restarted pod never inherits the leases of its previous life)."""
    return f"{socket.gethostname()[:48]}-{uuid.uuid4().hex[:8]}"


class LeaseKeeper:
    """Renews a lease and runs a pass after each renewal.

    Args:
        renew: Renews the lease (raises StoreUnavailable when it cannot).
        after_renewal: The service's pass (take-overs, housekeeping).
        lease_s: The lease's length.
        what: The service, for logs.
    """

    def __init__(
        self,
        renew: Callable[[], Awaitable[None]],
        after_renewal: Callable[[], Awaitable[None]],
        lease_s: float,
        *,
        what: str,
    ) -> None:
        self._renew = renew
        self._after_renewal = after_renewal
        self._lease_s = lease_s
        self._what = what
        self._now = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.renewed_at = 0.0
        self._ready = True
        # Told False when the lease could not be renewed in time, True once it is again.
        self.on_health: Callable[[bool], None] | None = None

    @property
    def healthy(self) -> bool:
        """Whether the lease was renewed within its length."""
        return time.monotonic() - self.renewed_at < self._lease_s

    async def start(self) -> None:
        """Takes the lease (the store must answer), then keeps it."""
        await self._renew()
        self.renewed_at = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._keep())

    def poke(self) -> None:
        """Runs a pass now (another replica released its work)."""
        self._now.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _keep(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._now.wait(), self._lease_s / 3)
            self._now.clear()
            try:
                await self._renew()
                self.renewed_at = time.monotonic()
                if not self._ready:
                    log.info("%s: the store answers again; lease renewed", self._what)
                    self._report(True)
                await self._after_renewal()
            except StoreUnavailable as exc:
                log.warning("%s: lease not renewed: %s", self._what, exc)
                if not self.healthy and self._ready:
                    self._report(False)
            except Exception:  # the keeper outlives any one failure, or leases lapse
                log.exception("%s: the pass after renewing the lease failed", self._what)

    def _report(self, ready: bool) -> None:
        self._ready = ready
        if self.on_health is not None:
            self.on_health(ready)
