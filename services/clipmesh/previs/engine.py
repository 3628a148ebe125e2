"""The previs engine: projects created, shots reviewed, runs that outlive their callers.

A run (a new project's shots, or one reviewed shot) belongs to the engine, not to the call
that started it: all shots of a project are made at once (`production.ShotProducer`), the cut
is stitched when they have all ended, and a review makes one shot again, then re-stitches.
Projects are durable: every change is in the store before anyone hears of it.

A run is owned by the replica that started it, under that replica's lease (store.py). A run
cut short by a stop (its runs released) or a crash (its lease lapsed) is continued by another
replica, or by this one when it starts again: the shots the run still had to make are made,
with the same idempotency keys, so the generator answers with the jobs already submitted
instead of paying for them twice; then the cut is stitched. A run that fails for good (a
dependency refused the whole run) leaves its project INTERRUPTED with its reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

from clipmesh.media.paths import path_from_uri
from clipmesh.previs import requests
from clipmesh.previs.checks import UNREAD_TEXT_NOTICE, unread_text_notice
from clipmesh.previs.compliance import CompliancePolicy
from clipmesh.previs.config import PrevisConfig
from clipmesh.previs.exports import export_timeline
from clipmesh.previs.production import ShotProducer
from clipmesh.previs.records import (
    ENDED_SHOT_STATES,
    Cut,
    CutExport,
    ExportRequest,
    Project,
    ProjectProgress,
    ProjectRequest,
    ProjectState,
    ReviewRequest,
    Shot,
    ShotState,
)
from clipmesh.previs.runs import ProjectRun
from clipmesh.previs.selection import choose, cut_clip, selected_clip
from clipmesh.previs.stitch import stitch
from clipmesh.previs.store import ProjectNotFound, ProjectStore, RunLost, RunSpec
from clipmesh.previs.templates import TemplateLibrary
from clipmesh.runtime.access import Principal
from clipmesh.runtime.errors import FailedPrecondition, NotFound, ServiceError
from clipmesh.runtime.leases import LeaseKeeper

log = logging.getLogger(__name__)


class PrevisEngine:
    """Creates projects, reviews shots, and keeps every project durable.

    Args:
        producer: Makes shot revisions (and holds the store, templates and policy it uses).
        config: What a request may ask for (`max_shots`, `max_variants`, …) and defaults.
    """

    def __init__(self, producer: ShotProducer, config: PrevisConfig) -> None:
        self._producer = producer
        self._config = config
        self._store: ProjectStore = producer.store
        self._templates: TemplateLibrary = producer.templates
        self._policy: CompliancePolicy = producer.policy
        self._root: Path = producer.projects_dir
        self._runs: dict[str, ProjectRun] = {}
        self.lease = LeaseKeeper(
            lambda: asyncio.to_thread(self._store.heartbeat, config.lease_s),
            self._take_over,
            config.lease_s,
            what="previs",
        )

    async def start(self) -> None:
        """Takes this replica's lease and continues the runs nobody owns any more."""
        await self.lease.start()
        if not self._store.db.shared:  # the only replica: what an earlier run of it left is its own
            await asyncio.to_thread(self._store.forget_other_replicas)
        await self._take_over()

    async def close(self) -> None:
        """Stops every run and releases it: another replica (or the next start) continues it."""
        await self.lease.stop()
        for run in list(self._runs.values()):
            if run.task is not None:
                run.task.cancel()
        await asyncio.gather(
            *(r.task for r in self._runs.values() if r.task), return_exceptions=True
        )
        with contextlib.suppress(ServiceError):
            released = await asyncio.to_thread(self._store.release)
            if released:
                log.info("released %d previs run(s) to be continued", released)
        self._store.close()

    # --- the RPCs ---------------------------------------------------------------------------

    async def create(
        self, request: ProjectRequest, principal: Principal
    ) -> AsyncIterator[ProjectProgress]:
        """Starts a project owned by `principal` and streams its progress until the cut is
        stitched."""
        project, references = requests.new_project(
            request, self._config, self._templates, self._policy
        )
        project.owner = principal.caller
        project.state = ProjectState.RUNNING
        spec = RunSpec(shots=tuple((shot.shot_id, "", 0, 0) for shot in project.shots))
        await asyncio.to_thread(self._store.create, project, request.script, references, spec)
        log.info(
            "previs project %s: %d shots",
            project.project_id,
            len(project.shots),
            extra={"project_id": project.project_id},
        )
        run = ProjectRun(project, len(project.shots))
        run.report("parsing", f"{len(project.shots)} shots in {len(project.scenes)} scenes")
        shots = [(shot, "", 0) for shot in project.shots]
        self._launch(run, self._produce_all(run, shots))
        async for progress in run.follow():
            yield progress

    async def review(
        self, request: ReviewRequest, principal: Principal
    ) -> AsyncIterator[ProjectProgress]:
        """Applies a note (or restores a revision, or selects a clip) and re-stitches."""
        note = requests.note_of(request)
        project = await self._idle_project(request.project_id, principal)
        shot = _shot(project, request.shot_id)
        if not note:
            choose(shot, request)  # checks the choice before the run is taken
        based_on = shot.current_revision or len(shot.revisions)
        spec = (
            RunSpec(shots=((shot.shot_id, note, based_on, len(shot.revisions)),))
            if note
            else RunSpec(restitch=True)
        )
        # One run of a project at a time, whichever replicas its reviews reach.
        if not await asyncio.to_thread(self._store.start_run, project, spec):
            raise FailedPrecondition(
                f"project {request.project_id} is running on another replica; review it when "
                "the run has ended",
                reason="PROJECT_RUNNING",
            )
        # Now this replica's: read again, as a run elsewhere may have ended since.
        project = await asyncio.to_thread(self._store.load, request.project_id)
        shot = _shot(project, request.shot_id)
        if note:
            run = ProjectRun(project, 1)
            run.report("revising", f"{shot.shot_id}: “{note}”")
            self._launch(run, self._produce_all(run, [(shot, note, based_on)]))
        else:
            choose(shot, request)
            await asyncio.to_thread(self._store.save_shot, project.project_id, shot)
            run = ProjectRun(project, 0)
            self._launch(run, self._restitch(run))
        async for progress in run.follow():
            yield progress

    async def get(self, project_id: str, principal: Principal) -> Project:
        """The project as it stands (live while it runs here), if `principal` may see it:
        another caller's project is NOT_FOUND, exactly as one that does not exist."""
        run = self._runs.get(project_id)
        project = run.project if run is not None else None
        if project is None:
            with contextlib.suppress(ProjectNotFound):
                project = await asyncio.to_thread(self._store.load, project_id)
        if project is None or not principal.may_see(project.owner):
            raise NotFound(f"no project {project_id!r}", reason="PROJECT_NOT_FOUND")
        return project

    async def export(self, request: ExportRequest, principal: Principal) -> CutExport:
        """Where the project's cut and timeline are, with the timeline written in the format
        asked for beside it (exports.py)."""
        project = await self.get(request.project_id, principal)
        cut = project.cut
        if cut is None:
            raise FailedPrecondition(
                f"project {request.project_id} has no cut yet "
                f"(state PROJECT_STATE_{project.state.name})",
                reason="NO_CUT",
            )
        timeline = Path(path_from_uri(cut.otio_uri))
        exported = await asyncio.to_thread(export_timeline, timeline, request.format)
        return CutExport(cut=cut, export_uri=exported.resolve().as_uri())

    # --- runs -------------------------------------------------------------------------------

    def _launch(self, run: ProjectRun, work: Coroutine[Any, Any, None]) -> None:
        """Runs `work` for a project whose run this replica owns (RUNNING in the store)."""
        project = run.project
        project.state = ProjectState.RUNNING
        self._runs[project.project_id] = run

        async def body() -> None:
            finished = True
            try:
                await work
                project.state = ProjectState.DONE
            except asyncio.CancelledError:
                finished = False  # stopping: released, and continued elsewhere
                raise
            except RunLost:
                finished = False
                log.warning(
                    "previs run taken over by another replica",
                    extra={"project_id": project.project_id},
                )
            except ServiceError as error:  # a dependency failed for the whole run
                log.warning(
                    "previs run stopped: %s", error, extra={"project_id": project.project_id}
                )
                await asyncio.to_thread(
                    self._interrupt, project, f"{error.reason}: {error.message}"
                )
            except Exception:
                log.exception("previs run failed", extra={"project_id": project.project_id})
                await asyncio.to_thread(
                    self._interrupt, project, "internal error; details are in the previs log"
                )
            finally:
                self._runs.pop(project.project_id, None)
                if finished:
                    with contextlib.suppress(RunLost):
                        await asyncio.to_thread(self._store.finish_run, project)
                    run.finish(_summary(project))
                else:
                    run.finish("the run goes on on another replica; follow it with GetProject")

        run.task = asyncio.create_task(body(), name=f"previs {project.project_id}")

    async def _take_over(self) -> None:
        """Continues every run whose replica is gone."""
        for project_id in await asyncio.to_thread(self._store.take_over):
            if project_id in self._runs:
                continue  # this replica runs it already (its own lease lapsed a moment)
            try:
                await self._continue(project_id)
            except Exception:
                log.exception("previs run not continued", extra={"project_id": project_id})

    async def _continue(self, project_id: str) -> None:
        project = await asyncio.to_thread(self._store.load, project_id)
        spec = await asyncio.to_thread(self._store.run_spec, project_id)
        if spec is None:  # left running by a release before runs had specs: every shot
            spec = RunSpec(shots=tuple((s.shot_id, "", 0, 0) for s in project.shots))
        log.warning(
            "continuing a previs run another replica left", extra={"project_id": project_id}
        )
        by_id = {shot.shot_id: shot for shot in project.shots}
        if spec.restitch:
            run = ProjectRun(project, 0)
            self._launch(run, self._restitch(run))
            return
        todo = [
            (by_id[shot_id], note, based_on)
            for shot_id, note, based_on, revisions_before in spec.shots
            if shot_id in by_id and len(by_id[shot_id].revisions) <= revisions_before
        ]
        run = ProjectRun(project, len(spec.shots))
        run.shots_done = len(spec.shots) - len(todo)
        run.report("generating", f"continued: {len(todo)} shot(s) still to make")
        self._launch(run, self._produce_all(run, todo))

    async def _idle_project(self, project_id: str, principal: Principal) -> Project:
        project = await self.get(project_id, principal)  # NOT_FOUND first: a running project of
        run = self._runs.get(project_id)  # another caller's must not say it is running
        if run is not None:
            raise FailedPrecondition(
                f"project {project_id} is still running ({run.stage}, {run.shots_done}/"
                f"{run.shots_total} shots); review it when the run has ended",
                reason="PROJECT_RUNNING",
            )
        return project

    async def _produce_all(self, run: ProjectRun, shots: list[tuple[Shot, str, int]]) -> None:
        tower = await self._producer.checker.text_tower()
        notice = tower.weights_notice
        if notice and notice not in run.project.notices:
            run.project.notices.append(notice)
        run.report("generating", f"{len(shots)} shot(s) to the generator")
        await asyncio.gather(
            *(
                self._producer.produce(run, shot, note, based_on, tower)
                for shot, note, based_on in shots
            )
        )
        await self._restitch(run)

    async def _restitch(self, run: ProjectRun) -> None:
        run.report("stitching", "joining the selected clips")
        project = run.project
        selected = {shot.shot_id: selected_clip(shot) for shot in project.shots}
        clips = [cut_clip(shot) for shot in project.shots if selected[shot.shot_id] is not None]
        missing = [shot_id for shot_id, clip in selected.items() if clip is None]
        project.notices = [
            n for n in project.notices if not n.startswith(("not in the cut:", UNREAD_TEXT_NOTICE))
        ]
        if missing:
            project.notices.append(f"not in the cut: {', '.join(missing)} (no usable clip)")
        unread = unread_text_notice({i: c.scores for i, c in selected.items() if c is not None})
        if unread:
            project.notices.append(unread)
        if not clips:
            project.cut = None
            return
        cut = await asyncio.to_thread(
            stitch,
            clips,
            self._root / project.project_id / "cut",
            name="cut",
            title=project.title,
            timeline_metadata={"project_id": project.project_id, "title": project.title},
        )
        project.cut = Cut(
            mp4_uri=cut.mp4.resolve().as_uri(),
            otio_uri=cut.otio.resolve().as_uri(),
            duration_s=cut.duration_s,
            update_time_s=time.time(),
        )

    def _interrupt(self, project: Project, why: str) -> None:
        """Marks the run failed for good (on a worker thread: it writes each open shot)."""
        project.state = ProjectState.INTERRUPTED
        project.notices.append(f"run interrupted: {why}")
        for shot in project.shots:
            if shot.state not in ENDED_SHOT_STATES:
                shot.state = ShotState.FAILED
                shot.blocked_reason = f"interrupted: {why}; review the shot to generate it again"
                self._store.save_shot(project.project_id, shot)


def _shot(project: Project, shot_id: str) -> Shot:
    for shot in project.shots:
        if shot.shot_id == shot_id:
            return shot
    ids = [s.shot_id for s in project.shots]
    listed = ", ".join(ids[:5]) + (f" … {ids[-1]}" if len(ids) > 5 else "")
    raise NotFound(
        f"project {project.project_id} has no shot {shot_id!r} (shots: {listed})",
        reason="SHOT_NOT_FOUND",
    )


def _summary(project: Project) -> str:
    counts: dict[str, int] = {}
    for shot in project.shots:
        counts[shot.state.value] = counts.get(shot.state.value, 0) + 1
    states = ", ".join(f"{n} {name}" for name, n in sorted(counts.items()))
    cut = f"; cut {project.cut.duration_s:.1f} s" if project.cut is not None else "; no cut"
    return f"{project.state.value}: {states}{cut}"
