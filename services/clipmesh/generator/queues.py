"""What a queue position means in time: each backend's typical run time, learned from the runs
that succeeded on this replica (a moving average), and the ETA of a place in its queue.

The queues themselves are the store's (store.py): jobs wait there in submission order and the
replicas claim them as each backend's limits allow.
"""

from __future__ import annotations

from clipmesh.generator.backends.base import Backend


class QueueEstimates:
    """ETAs of queue positions, per backend.

    Args:
        backends: The gateway's backends by name (their `max_concurrent`).
    """

    def __init__(self, backends: dict[str, Backend]) -> None:
        self._backends = backends
        self._run_seconds: dict[str, float] = {}

    def learn(self, backend: str, succeeded_after_s: float) -> None:
        """A job of `backend` succeeded after running this long."""
        typical_s = self._run_seconds.get(backend, succeeded_after_s)
        self._run_seconds[backend] = 0.8 * typical_s + 0.2 * succeeded_after_s

    def eta_s(self, backend: str, position: int) -> float:
        """Seconds until a job at `position` (0: next) is done; -1 when not yet known."""
        typical_s = self._run_seconds.get(backend)
        known = self._backends.get(backend)
        if typical_s is None or known is None:
            return -1.0
        return round((position // known.max_concurrent + 1) * typical_s, 1)
