"""A queue per backend in front of its concurrency limit, with queue positions and ETAs.

A backend runs at most `backend.max_concurrent` jobs at once (the provider's limit for the
account); the rest wait in submission order. Positions are republished at most once a second:
with hundreds queued, every start would otherwise send an event to every waiting job. An ETA
is the position's turn times the backend's typical run time (a moving average of successes).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from clipmesh.generator import metrics
from clipmesh.generator.backends.base import Backend
from clipmesh.generator.live import LiveJob

POSITION_UPDATE_INTERVAL_S = 1.0


class BackendQueues:
    """Waiting jobs per backend, and how many of each backend's jobs run.

    Args:
        backends: The gateway's backends by name.
        start: Starts a job the queues hand over (the gateway runs it, then calls `finished`).
    """

    def __init__(self, backends: dict[str, Backend], start: Callable[[LiveJob], None]) -> None:
        self._backends = backends
        self._start = start
        self._waiting: dict[str, deque[LiveJob]] = {name: deque() for name in backends}
        self._running: dict[str, int] = dict.fromkeys(backends, 0)
        self._run_seconds: dict[str, float] = {}
        self._position_updates: dict[str, asyncio.TimerHandle] = {}
        self._stopping = False

    def waiting(self) -> int:
        """Jobs waiting across every backend."""
        return sum(len(queue) for queue in self._waiting.values())

    def add(self, live: LiveJob) -> None:
        """Puts a job at the end of its backend's queue, with its position and ETA."""
        job, queue = live.job, self._waiting[live.backend.name]
        queue.append(live)
        job.queue_position = len(queue) - 1
        job.eta_s = self._eta_s(live.backend, job.queue_position)
        metrics.JOBS.labels("queued", job.backend).inc()
        metrics.QUEUE_DEPTH.labels(job.backend).set(len(queue))

    def remove(self, live: LiveJob) -> None:
        """Takes a waiting job out (it was cancelled); the jobs behind it move up."""
        self._waiting[live.backend.name].remove(live)
        self._schedule_positions(live.backend.name)

    def dispatch(self, name: str) -> None:
        """Starts waiting jobs of backend `name` while it has free slots."""
        backend, queue = self._backends[name], self._waiting[name]
        started = False
        while queue and self._running[name] < backend.max_concurrent and not self._stopping:
            live = queue.popleft()
            metrics.QUEUE_SECONDS.labels(name).observe(time.monotonic() - live.queued_at)
            metrics.JOBS.labels("queued", name).dec()
            self.running(live)
            self._start(live)
            started = True
        metrics.QUEUE_DEPTH.labels(name).set(len(queue))
        if started:
            self._schedule_positions(name)

    def running(self, live: LiveJob) -> None:
        """Counts a job as running on its backend (from the queue, or resumed at start)."""
        self._running[live.backend.name] += 1

    def finished(self, live: LiveJob, *, succeeded_after_s: float | None) -> None:
        """Frees the job's slot, learns its run time when it succeeded, starts the next."""
        name = live.backend.name
        self._running[name] -= 1
        if succeeded_after_s is not None:
            typical_s = self._run_seconds.get(name, succeeded_after_s)
            self._run_seconds[name] = 0.8 * typical_s + 0.2 * succeeded_after_s
        if not self._stopping:
            self.dispatch(name)

    def stop(self) -> None:
        """Starts nothing more and cancels pending position updates."""
        self._stopping = True
        for handle in self._position_updates.values():
            handle.cancel()

    def _schedule_positions(self, name: str) -> None:
        if name in self._position_updates or self._stopping:
            return
        loop = asyncio.get_running_loop()
        self._position_updates[name] = loop.call_later(
            POSITION_UPDATE_INTERVAL_S, self._publish_positions, name
        )

    def _publish_positions(self, name: str) -> None:
        self._position_updates.pop(name, None)
        backend = self._backends[name]
        for position, live in enumerate(self._waiting[name]):
            if live.job.queue_position != position:
                live.job.queue_position = position
                live.job.eta_s = self._eta_s(backend, position)
                if live.watchers:
                    live.publish(f"position {position} in the {name} queue")

    def _eta_s(self, backend: Backend, position: int) -> float:
        typical_s = self._run_seconds.get(backend.name)
        if typical_s is None:
            return -1.0
        return round((position // backend.max_concurrent + 1) * typical_s, 1)
