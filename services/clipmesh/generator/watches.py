"""Following jobs: every watcher of a job, on whichever replica its call landed, hears each
change of the job until it ends.

A watcher (a Generate stream, a WatchJob) follows the job through the store's notifications
(store.py, runtime/notifications.py), never through the replica that runs it: the store
announces each committed change, the runner publishes progress, and the replica that holds the
watcher re-reads the job and passes it on. One task per followed job handles its
notifications in the order they were committed, so a watcher never sees a job go backwards;
watchers of the same job on one replica share that task and that read.

Each watcher has a bounded inbox; every event carries the whole job, so a watcher that falls
behind may lose old progress events but never the state the job ends in. Queued jobs'
positions are refreshed at most once a second when their backend's queue moves, front of the
queue first, in slices of a few dozen spread over that second, each read just before it is
sent: every event costs the event loop a fraction of a millisecond, and hundreds sent at once
held every other event (a job starting, a job ending) behind them for a quarter of a second.
After a gap in the notifications (the database connection dropped), every followed job is
re-read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from clipmesh.generator.jobs import ENDED_STATES, Job, JobEvent, JobState, state_name
from clipmesh.generator.ledger import JobLedger
from clipmesh.generator.live import LiveJob
from clipmesh.runtime.notifications import Notifications

log = logging.getLogger(__name__)

WATCHER_BUFFER = 256
"""Events buffered per watcher before the oldest is dropped."""
POSITION_UPDATE_INTERVAL_S = 1.0
POSITION_SLICE = 16
"""Queued jobs whose positions are read and sent together; the slices of one refresh are
spread over most of POSITION_UPDATE_INTERVAL_S."""

EtaOf = Callable[[str, int], float]
"""The ETA of a job of backend (first) at queue position (second); -1 when unknown."""


@dataclass
class _Followed:
    """One followed job on this replica: its last known state and its watchers."""

    job_id: str
    job: Job | None = None
    inboxes: set[asyncio.Queue] = field(default_factory=set)
    notes: asyncio.Queue = field(default_factory=asyncio.Queue)
    task: asyncio.Task | None = None


class JobWatches:
    """The jobs this replica's watchers follow.

    Args:
        ledger: Where jobs are read.
        live: The jobs this replica runs, by id (their progress is fresher than the store's).
        eta_of: The ETA of a queued position.
    """

    def __init__(self, ledger: JobLedger, live: dict[str, LiveJob], eta_of: EtaOf) -> None:
        self._ledger = ledger
        self._live = live
        self._eta_of = eta_of
        self._followed: dict[str, _Followed] = {}
        self._moved: set[str] = set()
        self._positions: asyncio.TimerHandle | None = None
        self._publishing: asyncio.Task | None = None

    def attach(self, notifications: Notifications) -> None:
        """Re-reads every followed job after a gap in the notifications (call before they
        start); the gateway hands each notification to `hear`."""
        notifications.on_reconnect(self._resync)

    def close(self) -> None:
        if self._positions is not None:
            self._positions.cancel()
        if self._publishing is not None:
            self._publishing.cancel()
        for followed in list(self._followed.values()):
            if followed.task is not None:
                followed.task.cancel()

    def follow(
        self, job_id: str, first: Job | None = None, message: str = ""
    ) -> AsyncIterator[JobEvent]:
        """Subscribes now (not when iteration starts); yields `first` (or the job as it stands
        now), then each change until it ends. The first event is stamped when it is taken,
        so a caller subscribed before its job was committed gets it stamped after."""
        followed = self._followed.get(job_id)
        if followed is None:
            followed = self._followed[job_id] = _Followed(job_id)
            if first is not None:
                followed.job = first.snapshot()
            else:
                followed.notes.put_nowait({"k": "load"})
            followed.task = asyncio.get_running_loop().create_task(self._handle(followed))
        inbox: asyncio.Queue = asyncio.Queue(WATCHER_BUFFER)
        followed.inboxes.add(inbox)
        lead = first if first is not None else followed.job
        return self._drain(followed, inbox, lead, message)

    async def _drain(
        self, followed: _Followed, inbox: asyncio.Queue, lead: Job | None, message: str
    ) -> AsyncIterator[JobEvent]:
        try:
            if lead is not None:
                yield JobEvent(
                    lead.snapshot(), message or f"job {state_name(lead.state)}", time.time()
                )
                if lead.state in ENDED_STATES:
                    return
            while True:
                event = await inbox.get()
                yield event
                if event.job.state in ENDED_STATES:
                    return
        finally:
            followed.inboxes.discard(inbox)
            if not followed.inboxes and self._followed.get(followed.job_id) is followed:
                del self._followed[followed.job_id]
                if followed.task is not None:
                    followed.task.cancel()

    # Notifications.

    def hear(self, note: dict) -> None:
        """A store notification (parsed): the followed job's change, or its queue moving."""
        followed = self._followed.get(note.get("j", ""))
        if followed is not None:
            followed.notes.put_nowait(note)
        if note.get("k") in ("moved", "queued") and note.get("b"):
            self._queue_moved(note["b"])

    def _resync(self) -> None:
        for followed in self._followed.values():
            followed.notes.put_nowait({"k": "changed", "m": "", "resync": True})

    async def _handle(self, followed: _Followed) -> None:
        """Applies the job's notifications in order: a committed change is re-read (once for
        a burst), progress is patched in."""
        while True:
            notes = [await followed.notes.get()]
            while not followed.notes.empty():
                notes.append(followed.notes.get_nowait())
            try:
                await self._apply(followed, notes)
            except asyncio.CancelledError:
                raise
            except Exception:  # the store out of reach: the next notification tries again
                log.warning("job %s not read for its watchers", followed.job_id, exc_info=True)

    async def _apply(self, followed: _Followed, notes: list[dict]) -> None:
        last = notes[-1]
        committed = [note for note in notes if note.get("k") != "progress"]
        job = followed.job
        if committed or job is None or last.get("s") != job.state.value:
            fresh = await self._read(followed.job_id)
            if fresh is None:
                return
            if committed and committed[-1].get("resync") and _same(job, fresh):
                return
            job = fresh
        if last.get("k") == "progress" and last.get("s") == job.state.value:
            job.progress = float(last.get("p", job.progress))
            job.eta_s = float(last.get("e", job.eta_s))
        message = last.get("m") or f"job {state_name(job.state)}"
        self._emit(followed, job, message)

    async def _read(self, job_id: str) -> Job | None:
        live = self._live.get(job_id)
        if live is not None:
            return live.snapshot()
        stored = await self._ledger.get(job_id)
        return stored.job if stored is not None else None

    def _emit(self, followed: _Followed, job: Job, message: str) -> None:
        followed.job = job
        event = JobEvent(job.snapshot(), message, time.time())
        for inbox in followed.inboxes:
            if inbox.full():
                inbox.get_nowait()  # drop the oldest; every event carries the whole job
            inbox.put_nowait(event)

    # Queue positions.

    def _queue_moved(self, backend: str) -> None:
        self._moved.add(backend)
        if self._positions is None:
            loop = asyncio.get_running_loop()
            self._positions = loop.call_later(POSITION_UPDATE_INTERVAL_S, self._refresh_positions)

    def _refresh_positions(self) -> None:
        self._positions = None
        loop = asyncio.get_running_loop()
        if self._publishing is not None and not self._publishing.done():
            # The last refresh is still being sent: this one follows it.
            self._positions = loop.call_later(POSITION_UPDATE_INTERVAL_S, self._refresh_positions)
            return
        backends, self._moved = self._moved, set()
        waiting = [
            followed
            for followed in self._followed.values()
            if followed.job is not None
            and followed.job.state == JobState.QUEUED
            and followed.job.backend in backends
        ]
        if waiting:
            waiting.sort(key=lambda followed: followed.job.queue_position)
            self._publishing = loop.create_task(self._publish_positions(waiting))

    async def _publish_positions(self, waiting: list[_Followed]) -> None:
        slices = [waiting[i : i + POSITION_SLICE] for i in range(0, len(waiting), POSITION_SLICE)]
        gap_s = 0.8 * POSITION_UPDATE_INTERVAL_S / len(slices)
        for number, part in enumerate(slices):
            if number:
                await asyncio.sleep(gap_s)
            with contextlib.suppress(Exception):  # a position is a hint; the next move retries
                positions = await self._ledger.positions([f.job_id for f in part])
                for followed in part:
                    position = positions.get(followed.job_id)
                    job = followed.job
                    if position is None or job is None or job.state != JobState.QUEUED:
                        continue  # claimed meanwhile: its own notification tells
                    if position != job.queue_position:
                        job = job.snapshot()
                        job.queue_position = position
                        job.eta_s = self._eta_of(job.backend, position)
                        self._emit(followed, job, f"position {position} in the {job.backend} queue")


def _same(old: Job | None, new: Job) -> bool:
    return old is not None and (old.state, old.provider_task_id, old.queue_position) == (
        new.state,
        new.provider_task_id,
        new.queue_position,
    )
