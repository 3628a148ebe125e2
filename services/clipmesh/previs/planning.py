"""From a parsed script to a project's shots, and from a shot's history to its prompts.

A revision's prompt is never stored as something to edit: it is rebuilt, deterministically,
from the shot (its description, characters, place, time and camera hints), the project's
style, the variant number, the reference footage that informed it, and the chain of notes
that led to it (each revision names the revision it revised in `based_on`). So restoring an
old revision and revising it again continues from exactly that revision's prompt, and a
variant of a revision is the same notes applied to another style.
"""

from __future__ import annotations

import dataclasses

from clipmesh.previs.prompts import (
    Language,
    ShotBrief,
    ShotPrompt,
    build_prompt,
    render,
)
from clipmesh.previs.records import ProjectSettings, Scene, Shot
from clipmesh.previs.revisions import revise
from clipmesh.previs.script import Script
from clipmesh.previs.templates import TemplateLibrary
from clipmesh.runtime.languages import likely_language


def language_of(text: str) -> Language:
    """The prompts' language for a script's text: "zh" when it reads as Chinese (a tenth or
    more of its letters are Chinese characters, `runtime.languages`), else "en"."""
    return "zh" if likely_language(text) == "zh" else "en"


def shots_of(script: Script) -> tuple[list[Scene], list[Shot]]:
    """The project's scenes and its pending shots, in script order."""
    scenes = [
        Scene(scene_id=f"sc{scene.index + 1:02d}", heading=scene.heading) for scene in script.scenes
    ]
    shots = [
        Shot(
            shot_id=f"s{shot.index + 1:03d}",
            scene_id=f"sc{shot.scene_index + 1:02d}",
            order=shot.index,
            description=shot.description,
            duration_s=shot.duration_s,
            characters=list(shot.characters),
            location=shot.location,
            time_of_day=shot.time_of_day,
            camera_hints=list(shot.camera_hints),
        )
        for shot in script.shots
    ]
    return scenes, shots


def brief_of(shot: Shot, language: Language) -> ShotBrief:
    """What the prompt builder needs from a shot."""
    return ShotBrief(
        description=shot.description,
        characters=tuple(shot.characters),
        location=shot.location,
        time_of_day=shot.time_of_day,
        camera_hints=tuple(shot.camera_hints),
        duration_s=shot.duration_s,
        language=language,
    )


def note_chain(shot: Shot, revision: int) -> list[str]:
    """The notes that led to `revision`, oldest first (following `based_on`)."""
    by_number = {r.revision: r for r in shot.revisions}
    notes: list[str] = []
    while revision:
        record = by_number[revision]
        if record.note:
            notes.append(record.note)
        revision = record.based_on
    return notes[::-1]


def prompt_for(
    shot: Shot,
    settings: ProjectSettings,
    library: TemplateLibrary,
    *,
    notes: list[str],
    variant: int,
    reference_title: str = "",
    max_chars: int = 800,
) -> ShotPrompt:
    """The prompt of one variant of a revision.

    Raises:
        ValueError: The project's style names no style template.
    """
    language: Language = "zh" if settings.language == "zh" else "en"
    prompt = build_prompt(
        brief_of(shot, language),
        library,
        style=settings.style or "cinematic",
        variant=variant,
        max_chars=max_chars,
    )
    if reference_title:
        direction = (
            f"matching the look of the reference footage “{reference_title}”",
            f"参考素材《{reference_title}》的画面",
        )
        state = dataclasses.replace(prompt.state, directions=(*prompt.state.directions, direction))
        prompt = render(state, library, prompt.lineage.revisions)
    for note in notes:
        prompt = revise(prompt, note, library)
    return prompt


def lineage_lines(prompt: ShotPrompt, *, reference_video_id: str = "") -> list[str]:
    """The prompt's lineage as short lines: templates per slot, notes and their rules."""
    lineage = prompt.lineage
    lines = [f"template {slot}={template}" for slot, template in lineage.slots.items()]
    if lineage.variant:
        lines.append(f"variant {lineage.variant}")
    if reference_video_id:
        lines.append(f"reference {reference_video_id}")
    for record in lineage.revisions:
        how = ("rules " + ",".join(record.rule_ids)) if record.matched else "free text"
        lines.append(f"note “{record.note}” → {how}: {'; '.join(record.changes)}")
    lines += [f"trimmed {part}" for part in lineage.trimmed]
    return lines
