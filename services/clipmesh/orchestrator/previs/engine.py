"""The previs pipeline: shots → compliance → generation → quality checks → library → cut.

One shot revision goes through:

1. **Prompts**, one per style variant, rebuilt from the shot and its chain of notes
   (`planning.prompt_for`); a reference image is first searched in the library and the best
   match's title joins the prompt.
2. **Compliance**: the prompts and the reference image are screened before anything reaches
   a provider; a blocked shot is reported with its reasons and never rewritten.
3. **Generation** of every variant at once through the gateway (`ClipMaker`); each clip is
   **checked** (`ClipChecker`) and, below a threshold, regenerated with a new seed up to
   `previs_max_attempts` tries. Every clip is kept with its scores.
4. **Library** (`library.py`): every made clip is ingested (source = generated), and a
   reference image is searched before the prompt is built and again against each new clip.
5. **Selection** (`selection.py`): the first passing clip, variant 0 first; else the best one
   below threshold.

All shots of a project run at once; the cut is stitched when they have all ended. A review
runs the same steps for one shot, then re-stitches.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

from clipmesh.orchestrator import metrics
from clipmesh.orchestrator.config import OrchestratorConfig
from clipmesh.orchestrator.dependencies import Dependencies
from clipmesh.orchestrator.ingest import IngestPipeline
from clipmesh.orchestrator.previs import requests
from clipmesh.orchestrator.previs.checks import ClipChecker
from clipmesh.orchestrator.previs.compliance import REAL_PEOPLE, SENSITIVE_TERMS, CompliancePolicy
from clipmesh.orchestrator.previs.generation import ClipFailed, ClipMaker
from clipmesh.orchestrator.previs.library import ClipLibrary, Reference
from clipmesh.orchestrator.previs.planning import lineage_lines, note_chain, prompt_for
from clipmesh.orchestrator.previs.prompts import ShotPrompt
from clipmesh.orchestrator.previs.quality import QualityThresholds
from clipmesh.orchestrator.previs.runs import ProjectRun
from clipmesh.orchestrator.previs.selection import best_clip, choose, cut_clip, selected_clip
from clipmesh.orchestrator.previs.stitch import stitch
from clipmesh.orchestrator.previs.store import ProjectNotFound, ProjectStore
from clipmesh.orchestrator.previs.templates import TemplateLibrary
from clipmesh.runtime.errors import ClipmeshError, FailedPrecondition, NotFound
from clipmesh_api.generator.v1 import generator_pb2
from clipmesh_api.orchestrator.v1 import previs_pb2

log = logging.getLogger(__name__)

Shot = previs_pb2.Shot
ENDED = {
    previs_pb2.SHOT_STATE_READY,
    previs_pb2.SHOT_STATE_BELOW_THRESHOLD,
    previs_pb2.SHOT_STATE_BLOCKED,
    previs_pb2.SHOT_STATE_FAILED,
}


class PrevisEngine:
    """Creates projects, reviews shots, and keeps every project durable.

    Args:
        deps: Stubs of the encoder, index and generator.
        config: The orchestrator's settings (`previs_*`).
        ingest: Puts generated clips into the library.
    """

    def __init__(
        self, deps: Dependencies, config: OrchestratorConfig, ingest: IngestPipeline
    ) -> None:
        self._deps, self._config, self._ingest = deps, config, ingest
        self._root = config.data_dir / "projects"
        self._store = ProjectStore(config.data_dir / "previs.sqlite3")
        self._library = TemplateLibrary.load()
        self._policy = CompliancePolicy.load(
            extra_paths={
                SENSITIVE_TERMS: [Path(p) for p in config.previs_sensitive_terms_files],
                REAL_PEOPLE: [Path(p) for p in config.previs_real_people_files],
            }
        )
        self._checker = ClipChecker(
            deps,
            QualityThresholds(
                config.previs_min_sharpness,
                config.previs_max_flicker,
                config.previs_min_smoothness,
                config.previs_min_text_match,
            ),
        )
        self._maker = ClipMaker(
            deps,
            asyncio.Semaphore(config.previs_parallel_clips),
            config.previs_clip_timeout_s,
        )
        self._footage = ClipLibrary(deps, ingest, self._checker)
        self._runs: dict[str, ProjectRun] = {}
        self._interrupt_leftovers()

    async def close(self) -> None:
        """Stops every run; their projects are marked interrupted."""
        for run in list(self._runs.values()):
            if run.task is not None:
                run.task.cancel()
        await asyncio.gather(
            *(r.task for r in self._runs.values() if r.task), return_exceptions=True
        )
        self._store.close()

    # --- the RPCs ---------------------------------------------------------------------------

    async def create(
        self, request: previs_pb2.CreateProjectRequest
    ) -> AsyncIterator[previs_pb2.ProjectProgress]:
        """Starts a project and streams its progress until the cut is stitched."""
        project, references = requests.new_project(
            request, self._config, self._library, self._policy
        )
        await asyncio.to_thread(self._store.create, project, request.script, references)
        log.info(
            "previs project %s: %d shots",
            project.project_id,
            len(project.shots),
            extra={"project_id": project.project_id},
        )
        run = ProjectRun(project, len(project.shots))
        run.report("parsing", f"{len(project.shots)} shots in {len(project.scenes)} scenes")
        shots = [(shot, "", 0) for shot in project.shots]
        self._start(run, self._produce_all(run, shots))
        async for progress in run.follow():
            yield progress

    async def review(
        self, request: previs_pb2.ReviewShotRequest
    ) -> AsyncIterator[previs_pb2.ProjectProgress]:
        """Applies a note (or restores a revision, or selects a clip) and re-stitches."""
        note = requests.note_of(request)
        project = self._idle_project(request.project_id)
        shot = _shot(project, request.shot_id)
        if note:
            run = ProjectRun(project, 1)
            run.report("revising", f"{shot.shot_id}: “{note}”")
            based_on = shot.current_revision or len(shot.revisions)
            self._start(run, self._produce_all(run, [(shot, note, based_on)]))
        else:
            choose(shot, request)
            # Synchronous (one small row), so no other review can start in between.
            self._store.save_shot(project.project_id, shot)
            run = ProjectRun(project, 0)
            self._start(run, self._restitch(run))
        async for progress in run.follow():
            yield progress

    def get(self, project_id: str) -> previs_pb2.Project:
        """The project as it stands (live while it runs)."""
        run = self._runs.get(project_id)
        if run is not None:
            return run.project
        try:
            return self._store.load(project_id)
        except ProjectNotFound:
            raise NotFound(f"no project {project_id!r}", reason="PROJECT_NOT_FOUND") from None

    def export(self, project_id: str) -> previs_pb2.Cut:
        """Where the project's cut and timeline are."""
        project = self.get(project_id)
        if not project.HasField("cut"):
            raise FailedPrecondition(
                f"project {project_id} has no cut yet (state "
                f"{previs_pb2.ProjectState.Name(project.state)})",
                reason="NO_CUT",
            )
        return project.cut

    # --- runs -------------------------------------------------------------------------------

    def _start(self, run: ProjectRun, work) -> None:
        project = run.project
        project.state = previs_pb2.PROJECT_STATE_RUNNING
        self._store.save_header(project)
        self._runs[project.project_id] = run

        async def body() -> None:
            try:
                await work
                project.state = previs_pb2.PROJECT_STATE_DONE
            except asyncio.CancelledError:
                self._interrupt(project, "the orchestrator stopped")
                raise
            except ClipmeshError as error:  # a dependency failed for the whole run
                log.warning(
                    "previs run stopped: %s", error, extra={"project_id": project.project_id}
                )
                self._interrupt(project, f"{error.reason}: {error.message}")
            except Exception:
                log.exception("previs run failed", extra={"project_id": project.project_id})
                self._interrupt(project, "internal error; details are in the orchestrator log")
            finally:
                self._store.save_header(project)
                self._runs.pop(project.project_id, None)
                run.finish(_summary(project))

        run.task = asyncio.create_task(body(), name=f"previs {project.project_id}")

    def _idle_project(self, project_id: str) -> previs_pb2.Project:
        run = self._runs.get(project_id)
        if run is not None:
            raise FailedPrecondition(
                f"project {project_id} is still running ({run.stage}, {run.shots_done}/"
                f"{run.shots_total} shots); review it when the run has ended",
                reason="PROJECT_RUNNING",
            )
        return self.get(project_id)

    async def _produce_all(self, run: ProjectRun, shots: list[tuple[Shot, str, int]]) -> None:
        notice = await self._checker.weights_notice()
        if notice and notice not in run.project.notices:
            run.project.notices.append(notice)
        enforce_text = not notice
        run.report("generating", f"{len(shots)} shot(s) to the generator")
        await asyncio.gather(
            *(
                self._produce(run, shot, note, based_on, enforce_text)
                for shot, note, based_on in shots
            )
        )
        await self._restitch(run)

    async def _restitch(self, run: ProjectRun) -> None:
        run.report("stitching", "joining the selected clips")
        project = run.project
        clips = [cut_clip(shot) for shot in project.shots if selected_clip(shot) is not None]
        missing = [s.shot_id for s in project.shots if selected_clip(s) is None]
        for notice in list(project.notices):
            if notice.startswith("not in the cut:"):
                project.notices.remove(notice)
        if missing:
            project.notices.append(f"not in the cut: {', '.join(missing)} (no usable clip)")
        if not clips:
            project.ClearField("cut")
            return
        cut = await asyncio.to_thread(
            stitch,
            clips,
            self._root / project.project_id / "cut",
            name="cut",
            title=project.title,
            timeline_metadata={"project_id": project.project_id, "title": project.title},
        )
        project.cut.CopyFrom(
            previs_pb2.Cut(
                mp4_uri=cut.mp4.resolve().as_uri(),
                otio_uri=cut.otio.resolve().as_uri(),
                duration_s=cut.duration_s,
            )
        )
        project.cut.update_time.GetCurrentTime()

    def _interrupt(self, project: previs_pb2.Project, why: str) -> None:
        project.state = previs_pb2.PROJECT_STATE_INTERRUPTED
        project.notices.append(f"run interrupted: {why}")
        for shot in project.shots:
            if shot.state not in ENDED:
                shot.state = previs_pb2.SHOT_STATE_FAILED
                shot.blocked_reason = f"interrupted: {why}; review the shot to generate it again"
                self._store.save_shot(project.project_id, shot)

    def _interrupt_leftovers(self) -> None:
        """Projects left running by an earlier process are marked interrupted."""
        for project_id in self._store.list_ids(previs_pb2.PROJECT_STATE_RUNNING):
            project = self._store.load(project_id)
            self._interrupt(project, "the orchestrator restarted during the run")
            self._store.save_header(project)
            log.warning("previs project %s was interrupted by a restart", project_id)

    # --- one shot ---------------------------------------------------------------------------

    async def _produce(
        self, run: ProjectRun, shot: Shot, note: str, based_on: int, enforce_text: bool
    ) -> None:
        started = time.monotonic()
        project = run.project
        revision = shot.revisions.add(
            revision=len(shot.revisions) + 1, note=note, based_on=based_on, selected_clip=-1
        )
        revision.create_time.GetCurrentTime()
        shot.blocked_reason = ""
        try:
            await self._revision(run, shot, revision, enforce_text)
        except ClipmeshError as error:  # a dependency failed for the whole shot
            shot.state = previs_pb2.SHOT_STATE_FAILED
            shot.blocked_reason = f"{error.reason}: {error.message}"
        outcome = previs_pb2.ShotState.Name(shot.state).removeprefix("SHOT_STATE_").lower()
        metrics.PREVIS_SHOTS.labels(outcome).inc()
        metrics.PREVIS_SHOT_SECONDS.observe(time.monotonic() - started)
        await asyncio.to_thread(self._store.save_shot, project.project_id, shot)
        run.shots_done += 1
        run.report("generating", f"{shot.shot_id} {outcome} (revision {revision.revision})")

    async def _revision(
        self, run: ProjectRun, shot: Shot, revision: previs_pb2.ShotRevision, enforce_text: bool
    ) -> None:
        project, settings = run.project, run.project.settings
        image = self._store.reference_image(project.project_id, shot.shot_id)
        reference = await self._footage.reference(settings.collection, image) if image else None
        if reference is not None:
            revision.reference_video_id = reference.video_id
            revision.reference_score = reference.score
        prompts = [
            prompt_for(
                shot,
                settings,
                self._library,
                notes=note_chain(shot, revision.based_on)
                + ([revision.note] if revision.note else []),
                variant=variant,
                reference_title=reference.title if reference else "",
            )
            for variant in range(settings.variants)
        ]
        revision.prompt, revision.negative_prompt = prompts[0].prompt, prompts[0].negative_prompt
        revision.lineage[:] = lineage_lines(
            prompts[0], reference_video_id=revision.reference_video_id
        )
        verdict = await asyncio.to_thread(
            self._policy.screen,
            "\n".join(p.prompt for p in prompts),
            prompts[0].negative_prompt,
            [image] if image else [],
        )
        if verdict.blocked:
            shot.state = previs_pb2.SHOT_STATE_BLOCKED
            shot.blocked_reason = "; ".join(verdict.reasons)
            return
        shot.state = previs_pb2.SHOT_STATE_GENERATING
        await asyncio.gather(
            *(
                self._variant(
                    run,
                    shot,
                    revision,
                    variant=number,
                    prompt=prompt,
                    enforce_text=enforce_text,
                    reference=reference,
                )
                for number, prompt in enumerate(prompts)
            )
        )
        revision.selected_clip = best_clip(revision)
        if revision.selected_clip < 0:
            shot.state = previs_pb2.SHOT_STATE_FAILED
            shot.blocked_reason = "no clip was made: " + "; ".join(
                sorted({c.failure for c in revision.clips if c.failure})
            )
            return
        passed = revision.clips[revision.selected_clip].scores.passed
        shot.state = (
            previs_pb2.SHOT_STATE_READY if passed else previs_pb2.SHOT_STATE_BELOW_THRESHOLD
        )
        shot.current_revision = revision.revision

    async def _variant(
        self,
        run: ProjectRun,
        shot: Shot,
        revision: previs_pb2.ShotRevision,
        *,
        variant: int,
        prompt: ShotPrompt,
        enforce_text: bool,
        reference: Reference | None,
    ) -> None:
        project, settings = run.project, run.project.settings
        text_vector = await self._checker.embed_text(prompt.prompt)
        for attempt in range(1, self._config.previs_max_attempts + 1):
            place = (
                f"{project.project_id}:{shot.shot_id}:r{revision.revision}:v{variant}:a{attempt}"
            )
            clip = revision.clips.add(
                seed=_seed(place),
                variant=variant,
                attempt=attempt,
                style=prompt.lineage.slots.get("style", ""),
                prompt=prompt.prompt,
            )
            if attempt > 1:
                metrics.PREVIS_REGENERATIONS.inc()
            spec = generator_pb2.GenerationSpec(
                prompt=prompt.prompt,
                negative_prompt=prompt.negative_prompt,
                backend=settings.backend,
                width=settings.width,
                height=settings.height,
                duration_s=shot.duration_s,
                fps=settings.fps,
                seed=clip.seed,
                labels={"project": project.project_id, "shot": shot.shot_id},
            )
            name = f"r{revision.revision}v{variant}a{attempt}.mp4"
            destination = self._root / project.project_id / "clips" / shot.shot_id / name
            try:
                made = await self._maker.make(
                    spec,
                    key=f"previs:{place}",
                    caller=f"previs/{project.project_id}",
                    destination=destination,
                )
            except ClipFailed as failure:
                clip.failure = str(failure)
                metrics.PREVIS_CLIPS.labels("failed").inc()
                run.report("generating", f"{shot.shot_id} v{variant} try {attempt}: {failure}")
                if not failure.retryable:
                    return
                continue
            clip.uri, clip.job_id = made.path.resolve().as_uri(), made.job_id
            clip.duration_s, clip.actual_prompt = made.duration_s, made.actual_prompt
            if variant == 0 and made.actual_prompt:
                revision.actual_prompt = made.actual_prompt
            shot.state = previs_pb2.SHOT_STATE_CHECKING
            run.report("checking", f"{shot.shot_id} v{variant} try {attempt}: checking")
            try:
                clip.scores.CopyFrom(
                    await self._checker.check(
                        made.path, text_vector, enforce_text_match=enforce_text
                    )
                )
            except ClipmeshError as error:
                clip.failure = f"check failed: {error.reason}: {error.message}"
            await self._footage.add(project, shot, revision, clip, reference)
            await asyncio.to_thread(self._store.save_shot, project.project_id, shot)
            passed = clip.scores.passed and not clip.failure
            metrics.PREVIS_CLIPS.labels("passed" if passed else "below_threshold").inc()
            if passed:
                return
            run.report(
                "checking",
                f"{shot.shot_id} v{variant} try {attempt} below threshold "
                f"({'; '.join(clip.scores.failures) or clip.failure}); regenerating",
            )


def _shot(project: previs_pb2.Project, shot_id: str) -> Shot:
    for shot in project.shots:
        if shot.shot_id == shot_id:
            return shot
    ids = [s.shot_id for s in project.shots]
    listed = ", ".join(ids[:5]) + (f" … {ids[-1]}" if len(ids) > 5 else "")
    raise NotFound(
        f"project {project.project_id} has no shot {shot_id!r} (shots: {listed})",
        reason="SHOT_NOT_FOUND",
    )


def _seed(place: str) -> int:
    """A seed fixed by the clip's place in the project, so a rerun asks for the same clip."""
    return int.from_bytes(hashlib.sha256(place.encode()).digest()[:4], "big") & 0x7FFFFFFF


def _summary(project: previs_pb2.Project) -> str:
    counts: dict[str, int] = {}
    for shot in project.shots:
        name = previs_pb2.ShotState.Name(shot.state).removeprefix("SHOT_STATE_").lower()
        counts[name] = counts.get(name, 0) + 1
    states = ", ".join(f"{n} {name}" for name, n in sorted(counts.items()))
    cut = f"; cut {project.cut.duration_s:.1f} s" if project.HasField("cut") else "; no cut"
    state = previs_pb2.ProjectState.Name(project.state).removeprefix("PROJECT_STATE_").lower()
    return f"{state}: {states}{cut}"
