"""Jobs in flight and their watchers: each watcher (a Generate stream, a WatchJob) has a bounded
inbox; every event carries the whole job, so a watcher that falls behind may lose old progress
events but never the state it ends in."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from clipmesh.generator.backends.base import Backend
from clipmesh.generator.jobs import ENDED_STATES, Job, JobEvent, job_event

WATCHER_BUFFER = 256
"""Events buffered per watcher before the oldest is dropped."""


@dataclass
class LiveJob:
    """A queued or running job as the gateway holds it in memory."""

    job: Job
    backend: Backend
    submitted_at: float = field(default_factory=time.monotonic)
    queued_at: float = field(default_factory=time.monotonic)
    watchers: set[asyncio.Queue] = field(default_factory=set)
    cancel_requested: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def snapshot(self) -> Job:
        return self.job.snapshot()

    def publish(self, message: str) -> None:
        """Tells every watcher how the job stands now."""
        if not self.watchers:
            return
        event = job_event(self.job, message)
        for inbox in self.watchers:
            if inbox.full():
                inbox.get_nowait()  # drop the oldest; every event carries the whole job
            inbox.put_nowait(event)

    def follow(self, message: str) -> AsyncIterator[JobEvent]:
        """Subscribes now (not when iteration starts) and yields the job as it stands now,
        then each change until it ends."""
        inbox: asyncio.Queue = asyncio.Queue(WATCHER_BUFFER)
        self.watchers.add(inbox)
        return self._drain(inbox, job_event(self.job, message))

    async def _drain(self, inbox: asyncio.Queue, first: JobEvent) -> AsyncIterator[JobEvent]:
        try:
            yield first
            if first.job.state in ENDED_STATES:
                return
            while True:
                event = await inbox.get()
                yield event
                if event.job.state in ENDED_STATES:
                    return
        finally:
            self.watchers.discard(inbox)
