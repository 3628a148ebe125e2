"""A project's run in progress, and everyone listening to it.

A run (creating a project, or regenerating one reviewed shot) belongs to the engine, not to
the call that started it: a caller that goes away stops listening, the run goes on, and
`GetProject` shows how it ended. Every listener gets every report from the moment it joined;
the stream ends with one report carrying the whole project.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator

from clipmesh.previs.records import Project, ProjectProgress

_END = None  # put on a listener's queue when the run is over


class ProjectRun:
    """Counts finished shots, estimates the time left, and fans reports out.

    Args:
        project: The project being worked on (the run's shots are edited in place).
        shots_total: Shots this run produces.

    Attributes:
        single_shot_only: Set once the generator refused the project's model multi-shot
            clips: the run's other clips ask for single shots without asking again.
    """

    def __init__(self, project: Project, shots_total: int) -> None:
        self.project = project
        self.shots_total = shots_total
        self.single_shot_only = False
        self.shots_done = 0
        self.stage = "parsing"
        self.task: asyncio.Task[None] | None = None
        self._started = time.monotonic()
        self._listeners: list[asyncio.Queue[ProjectProgress | None]] = []
        self._last: ProjectProgress | None = None

    def eta_s(self) -> float:
        """Seconds left at the pace so far; -1 until a shot has finished."""
        if self.stage == "done":
            return 0.0
        if not self.shots_done:
            return -1.0
        pace = (time.monotonic() - self._started) / self.shots_done
        return pace * (self.shots_total - self.shots_done)

    def report(self, stage: str, message: str) -> None:
        """Sends one report to every listener."""
        self.stage = stage
        self._publish(self._progress(message))

    def finish(self, message: str) -> None:
        """Sends the last report (with the project) and ends every listener's stream."""
        self.stage = "done"
        last = self._progress(message, project=copy.deepcopy(self.project))
        self._publish(last)
        for queue in self._listeners:
            queue.put_nowait(_END)
        self._listeners.clear()

    async def follow(self) -> AsyncIterator[ProjectProgress]:
        """Reports from now until the run ends (the latest one first, when joining late)."""
        queue: asyncio.Queue[ProjectProgress | None] = asyncio.Queue()
        if self._last is not None:
            queue.put_nowait(self._last)
        if self.stage == "done":
            queue.put_nowait(_END)
        else:
            self._listeners.append(queue)
        try:
            while (progress := await queue.get()) is not _END:
                yield progress
        finally:
            if queue in self._listeners:  # the caller went away; the run goes on
                self._listeners.remove(queue)

    def _progress(self, message: str, project: Project | None = None) -> ProjectProgress:
        return ProjectProgress(
            project_id=self.project.project_id,
            stage=self.stage,
            shots_done=self.shots_done,
            shots_total=self.shots_total,
            eta_s=self.eta_s(),
            message=message,
            project=project,
        )

    def _publish(self, progress: ProjectProgress) -> None:
        self._last = progress
        for queue in self._listeners:
            queue.put_nowait(progress)
