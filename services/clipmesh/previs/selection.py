"""Which clip of a shot is in the cut, how a review changes it, and what the timeline says."""

from __future__ import annotations

from pathlib import Path

from clipmesh.media.paths import path_from_uri
from clipmesh.previs.records import Clip, ReviewRequest, Shot, ShotRevision, ShotState
from clipmesh.previs.stitch import CutClip
from clipmesh.runtime.errors import FailedPrecondition, InvalidArgument


def selected_clip(shot: Shot) -> Clip | None:
    if not shot.current_revision:
        return None
    revision = shot.revisions[shot.current_revision - 1]
    return revision.clips[revision.selected_clip] if revision.selected_clip >= 0 else None


def cut_clip(shot: Shot) -> CutClip:
    clip = selected_clip(shot)
    revision = shot.revisions[shot.current_revision - 1]
    return CutClip(
        path=Path(path_from_uri(clip.uri)),
        shot_id=shot.shot_id,
        name=f"{shot.shot_id} · {shot.description[:60]}",
        metadata={
            "scene_id": shot.scene_id,
            "description": shot.description,
            "planned_duration_s": shot.duration_s,
            "revision": revision.revision,
            "note": revision.note,
            "prompt": clip.prompt,
            "seed": clip.seed,
            "variant": clip.variant,
            "job_id": clip.job_id,
            "video_id": clip.video_id,
            "scores": {
                "sharpness": clip.scores.sharpness,
                "flicker": clip.scores.flicker,
                "smoothness": clip.scores.smoothness,
                "text_match": clip.scores.text_match,
                "passed": clip.scores.passed,
                "text_match_enforced": clip.scores.text_match_enforced,
                "text_match_language": clip.scores.text_match_language,
                "text_match_text": clip.scores.text_match_text,
            },
        },
    )


def best_clip(revision: ShotRevision) -> int:
    """The passing clip of the lowest variant and try; else the best made one; else -1."""
    made = [i for i, c in enumerate(revision.clips) if c.uri]
    passing = [i for i in made if revision.clips[i].scores.passed and not revision.clips[i].failure]
    if passing:
        return min(passing, key=lambda i: (revision.clips[i].variant, revision.clips[i].attempt))
    if made:
        return min(
            made,
            key=lambda i: (
                len(revision.clips[i].scores.failures) + bool(revision.clips[i].failure),
                -revision.clips[i].scores.text_match,
            ),
        )
    return -1


def choose(shot: Shot, request: ReviewRequest) -> None:
    """Restores a revision or selects a clip of the current one."""
    if request.restore_revision:
        if request.restore_revision > len(shot.revisions):
            raise InvalidArgument(
                f"shot {shot.shot_id} has {len(shot.revisions)} revisions, not "
                f"{request.restore_revision}",
                field="restore_revision",
            )
        revision = shot.revisions[request.restore_revision - 1]
        if revision.selected_clip < 0:
            raise FailedPrecondition(
                f"revision {revision.revision} of {shot.shot_id} has no clip to restore",
                reason="NO_CLIP",
            )
    else:
        if not shot.current_revision:
            raise FailedPrecondition(f"shot {shot.shot_id} has no clips yet", reason="NO_CLIP")
        revision = shot.revisions[shot.current_revision - 1]
        number = request.select_clip
        if not 0 <= number < len(revision.clips) or not revision.clips[number].uri:
            made = [i for i, c in enumerate(revision.clips) if c.uri]
            raise InvalidArgument(
                f"select_clip {number}: revision {revision.revision} of {shot.shot_id} has "
                f"clips {made}",
                field="select_clip",
            )
        revision.selected_clip = number
    shot.current_revision = revision.revision
    chosen = revision.clips[revision.selected_clip]
    shot.state = ShotState.READY if chosen.scores.passed else ShotState.BELOW_THRESHOLD
    shot.blocked_reason = ""
