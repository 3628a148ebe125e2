"""One shot revision, made: prompts → compliance → clips generated, checked, indexed.

1. **Prompts**, one per style variant, rebuilt from the shot and its chain of notes
   (`planning.prompt_for`); a reference image is first searched in the library and the best
   match's title joins the prompt.
2. **Compliance**: the prompts and the reference image are screened before anything reaches
   a provider; a blocked shot is reported with its reasons and never rewritten.
3. **Generation** of every variant at once through the gateway (`ClipMaker`); each clip is
   **checked** (`ClipChecker`) and, below a threshold, regenerated with a new seed up to
   `max_attempts` tries. Every clip is kept with its scores. A project that asked for
   multi-shot clips asks for them; if the generator answers that the model makes single shots
   only, the clip is made single-shot and the project's notices say so.
4. **Library** (`library.py`): every made clip is ingested (source = generated), and a
   reference image is searched before the prompt is built and again against each new clip.
5. **Selection** (`selection.py`): the first passing clip, variant 0 first; else the best one
   below threshold.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

from clipmesh.generator.jobs import GenerationSpec, ShotType
from clipmesh.previs import metrics
from clipmesh.previs.checks import ClipChecker, TextTower, match_text
from clipmesh.previs.compliance import CompliancePolicy
from clipmesh.previs.generation import ClipFailed, ClipMaker, MadeClip
from clipmesh.previs.library import ClipLibrary, Reference
from clipmesh.previs.planning import lineage_lines, note_chain, prompt_for
from clipmesh.previs.prompts import ShotPrompt
from clipmesh.previs.records import Clip, Shot, ShotRevision, ShotState
from clipmesh.previs.runs import ProjectRun
from clipmesh.previs.selection import best_clip
from clipmesh.previs.store import ProjectStore
from clipmesh.previs.templates import TemplateLibrary
from clipmesh.runtime.errors import ServiceError

# The generator's reason when the model cannot cut within a clip (its refusals' reasons are
# its API: matched as such, never by their text).
SINGLE_SHOT_MODEL = "UNSUPPORTED_SHOT_TYPE"


@dataclass(frozen=True)
class ShotProducer:
    """Makes shot revisions for the engine.

    Attributes:
        store: Where every shot is saved as it changes.
        templates: The prompt template library.
        policy: The compliance screen.
        checker: Scores clips.
        maker: Generates clips on the gateway.
        footage: Puts clips into the library, and searches references there.
        projects_dir: Where each project's clips are written.
        max_attempts: Tries per clip before the best one below threshold is kept.
    """

    store: ProjectStore
    templates: TemplateLibrary
    policy: CompliancePolicy
    checker: ClipChecker
    maker: ClipMaker
    footage: ClipLibrary
    projects_dir: Path
    max_attempts: int

    async def produce(
        self, run: ProjectRun, shot: Shot, note: str, based_on: int, tower: TextTower
    ) -> None:
        """Adds one revision to `shot` (from `note`, revising revision `based_on`) and makes it,
        its clips matched against text `tower` reads; the shot ends READY, BELOW_THRESHOLD,
        BLOCKED or FAILED, and is saved."""
        started = time.monotonic()
        project = run.project
        revision = ShotRevision(
            revision=len(shot.revisions) + 1,
            note=note,
            based_on=based_on,
            selected_clip=-1,
            create_time_s=time.time(),
        )
        shot.revisions.append(revision)
        shot.blocked_reason = ""
        try:
            await self._revision(run, shot, revision, tower)
        except ServiceError as error:  # a dependency failed for the whole shot
            shot.state = ShotState.FAILED
            shot.blocked_reason = f"{error.reason}: {error.message}"
        outcome = shot.state.value
        metrics.PREVIS_SHOTS.labels(outcome).inc()
        metrics.PREVIS_SHOT_SECONDS.observe(time.monotonic() - started)
        await asyncio.to_thread(self.store.save_shot, project.project_id, shot)
        run.shots_done += 1
        run.report("generating", f"{shot.shot_id} {outcome} (revision {revision.revision})")

    async def _revision(
        self, run: ProjectRun, shot: Shot, revision: ShotRevision, tower: TextTower
    ) -> None:
        project, settings = run.project, run.project.settings
        image = await asyncio.to_thread(
            self.store.reference_image, project.project_id, shot.shot_id
        )
        reference = await self.footage.reference(settings.collection, image) if image else None
        if reference is not None:
            revision.reference_video_id = reference.video_id
            revision.reference_score = reference.score
        prompts = [
            prompt_for(
                shot,
                settings,
                self.templates,
                notes=note_chain(shot, revision.based_on)
                + ([revision.note] if revision.note else []),
                variant=variant,
                reference_title=reference.title if reference else "",
            )
            for variant in range(settings.variants)
        ]
        revision.prompt, revision.negative_prompt = prompts[0].prompt, prompts[0].negative_prompt
        revision.lineage = lineage_lines(prompts[0], reference_video_id=revision.reference_video_id)
        verdict = await asyncio.to_thread(
            self.policy.screen,
            "\n".join(p.prompt for p in prompts),
            prompts[0].negative_prompt,
            [image] if image else [],
        )
        if verdict.blocked:
            shot.state = ShotState.BLOCKED
            shot.blocked_reason = "; ".join(verdict.reasons)
            return
        shot.state = ShotState.GENERATING
        await asyncio.gather(
            *(
                self._variant(
                    run,
                    shot,
                    revision,
                    variant=number,
                    prompt=prompt,
                    tower=tower,
                    reference=reference,
                )
                for number, prompt in enumerate(prompts)
            )
        )
        revision.selected_clip = best_clip(revision)
        if revision.selected_clip < 0:
            shot.state = ShotState.FAILED
            shot.blocked_reason = "no clip was made: " + "; ".join(
                sorted({c.failure for c in revision.clips if c.failure})
            )
            return
        passed = revision.clips[revision.selected_clip].scores.passed
        shot.state = ShotState.READY if passed else ShotState.BELOW_THRESHOLD
        shot.current_revision = revision.revision

    async def _variant(
        self,
        run: ProjectRun,
        shot: Shot,
        revision: ShotRevision,
        *,
        variant: int,
        prompt: ShotPrompt,
        tower: TextTower,
        reference: Reference | None,
    ) -> None:
        project, settings = run.project, run.project.settings
        match = match_text(prompt, self.templates, tower.languages)
        text_vector = await self.checker.embed_text(match.text)
        for attempt in range(1, self.max_attempts + 1):
            place = (
                f"{project.project_id}:{shot.shot_id}:r{revision.revision}:v{variant}:a{attempt}"
            )
            clip = Clip(
                seed=_seed(place),
                variant=variant,
                attempt=attempt,
                style=prompt.lineage.slots.get("style", ""),
                prompt=prompt.prompt,
            )
            revision.clips.append(clip)
            if attempt > 1:
                metrics.PREVIS_REGENERATIONS.inc()
            spec = GenerationSpec(
                prompt=prompt.prompt,
                negative_prompt=prompt.negative_prompt,
                backend=settings.backend,
                model=settings.model,
                width=settings.width,
                height=settings.height,
                duration_s=shot.duration_s,
                fps=settings.fps,
                seed=clip.seed,
                labels={"project": project.project_id, "shot": shot.shot_id},
                shot_type=_shot_type(run),
            )
            name = f"r{revision.revision}v{variant}a{attempt}.mp4"
            destination = self.projects_dir / project.project_id / "clips" / shot.shot_id / name
            try:
                made = await self._make(
                    run,
                    spec,
                    key=f"previs:{place}",
                    # The owner's job: its provider seconds and jobs at once count against the
                    # owner's quotas, and it sees the jobs as its own.
                    caller=project.owner or f"previs/{project.project_id}",
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
            shot.state = ShotState.CHECKING
            run.report("checking", f"{shot.shot_id} v{variant} try {attempt}: checking")
            try:
                clip.scores = await self.checker.check(
                    made.path, match, text_vector, enforce_text_match=not tower.random_weights
                )
            except ServiceError as error:
                clip.failure = f"check failed: {error.reason}: {error.message}"
            await self.footage.add(project, shot, revision, clip, reference)
            await asyncio.to_thread(self.store.save_shot, project.project_id, shot)
            passed = clip.scores.passed and not clip.failure
            metrics.PREVIS_CLIPS.labels("passed" if passed else "below_threshold").inc()
            if passed:
                return
            run.report(
                "checking",
                f"{shot.shot_id} v{variant} try {attempt} below threshold "
                f"({'; '.join(clip.scores.failures) or clip.failure}); regenerating",
            )

    async def _make(self, run: ProjectRun, spec: GenerationSpec, **where) -> MadeClip:
        """Makes a clip; a multi-shot one the project's model cannot make is made single-shot,
        and the project's notices say so (never a silent switch)."""
        try:
            return await self.maker.make(spec, **where)
        except ClipFailed as failure:
            if spec.shot_type is not ShotType.MULTI or failure.reason != SINGLE_SHOT_MODEL:
                raise
            run.single_shot_only = True
            notice = f"multi-shot clips asked for, single-shot clips made: {failure.message}"
            if notice not in run.project.notices:
                run.project.notices.append(notice)
                run.report("generating", notice)
        # The refused request was never admitted, so its idempotency key is still free.
        single = dataclasses.replace(spec, shot_type=ShotType.SINGLE)
        return await self.maker.make(single, **where)


def _shot_type(run: ProjectRun) -> ShotType | None:
    """Multi-shot when the project asks for it and its model has not refused it; else the
    model's default (one shot)."""
    if run.project.settings.multi_shot:
        return ShotType.SINGLE if run.single_shot_only else ShotType.MULTI
    return None


def _seed(place: str) -> int:
    """A seed fixed by the clip's place in the project, so a rerun asks for the same clip."""
    return int.from_bytes(hashlib.sha256(place.encode()).digest()[:4], "big") & 0x7FFFFFFF
