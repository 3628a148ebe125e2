"""A job this replica runs, as it holds it in memory while it runs (watches.py follows jobs
for watchers; this is the runner's side)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from clipmesh.generator.backends.base import Backend
from clipmesh.generator.jobs import Job


@dataclass
class LiveJob:
    """A running job owned by this replica."""

    job: Job
    backend: Backend
    submitted_at: float = field(default_factory=time.monotonic)
    cancel_requested: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    # Set while a billable submission is in flight: a stopping replica waits for it to land.
    submitting: bool = False
    # When progress was last published (a throttle; see runner.py).
    published_at: float = 0.0

    def snapshot(self) -> Job:
        return self.job.snapshot()
