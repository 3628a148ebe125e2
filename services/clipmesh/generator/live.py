"""Jobs in flight and their watchers: each watcher (a Generate stream, a WatchJob) has a bounded
inbox; every event carries the whole job, so a watcher that falls behind may lose old progress
events but never the state it ends in."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from google.protobuf import timestamp_pb2

from clipmesh.generator.backends.base import Backend
from clipmesh.generator.store import ENDED_STATES
from clipmesh_api.generator.v1 import generator_pb2

WATCHER_BUFFER = 256
"""Events buffered per watcher before the oldest is dropped."""


def job_event(job: generator_pb2.Job, message: str) -> generator_pb2.JobEvent:
    """An event carrying a copy of `job` as it stands now."""
    now = timestamp_pb2.Timestamp()
    now.GetCurrentTime()
    return generator_pb2.JobEvent(job=job, message=message, event_time=now)


@dataclass
class LiveJob:
    """A queued or running job as the gateway holds it in memory."""

    job: generator_pb2.Job
    backend: Backend
    submitted_at: float = field(default_factory=time.monotonic)
    queued_at: float = field(default_factory=time.monotonic)
    watchers: set[asyncio.Queue] = field(default_factory=set)
    cancel_requested: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def snapshot(self) -> generator_pb2.Job:
        copied = generator_pb2.Job()
        copied.CopyFrom(self.job)
        return copied

    def publish(self, message: str) -> None:
        """Tells every watcher how the job stands now."""
        if not self.watchers:
            return
        event = job_event(self.job, message)
        for inbox in self.watchers:
            if inbox.full():
                inbox.get_nowait()  # drop the oldest; every event carries the whole job
            inbox.put_nowait(event)

    def follow(self, message: str) -> AsyncIterator[generator_pb2.JobEvent]:
        """Subscribes now (not when iteration starts) and yields the job as it stands now,
        then each change until it ends."""
        inbox: asyncio.Queue = asyncio.Queue(WATCHER_BUFFER)
        self.watchers.add(inbox)
        return self._drain(inbox, job_event(self.job, message))

    async def _drain(
        self, inbox: asyncio.Queue, first: generator_pb2.JobEvent
    ) -> AsyncIterator[generator_pb2.JobEvent]:
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
