"""Previs records in their API form and back.

The servicer answers with `*_to_proto` and reads requests with `*_from_proto`; the store reads
projects written by earlier releases, which kept the API form, with `project_from_proto`.
"""

from __future__ import annotations

from clipmesh.previs.records import (
    Clip,
    Cut,
    Project,
    ProjectProgress,
    ProjectRequest,
    ProjectSettings,
    ProjectState,
    QualityScores,
    ReviewRequest,
    Scene,
    Shot,
    ShotRevision,
    ShotState,
)
from clipmesh.runtime.errors import InvalidArgument
from clipmesh.runtime.timestamps import seconds_of, timestamp
from clipmesh_api.orchestrator.v1 import previs_pb2

FORMATS = {
    previs_pb2.SCRIPT_FORMAT_UNSPECIFIED: "auto",
    previs_pb2.SCRIPT_FORMAT_PLAIN: "plain",
    previs_pb2.SCRIPT_FORMAT_FOUNTAIN: "fountain",
}


def _shot_state(state: ShotState) -> int:
    return previs_pb2.ShotState.Value(f"SHOT_STATE_{state.name}")


def _project_state(state: ProjectState) -> int:
    return previs_pb2.ProjectState.Value(f"PROJECT_STATE_{state.name}")


def scores_to_proto(scores: QualityScores) -> previs_pb2.QualityScores:
    return previs_pb2.QualityScores(
        sharpness=scores.sharpness,
        flicker=scores.flicker,
        smoothness=scores.smoothness,
        text_match=scores.text_match,
        passed=scores.passed,
        failures=scores.failures,
        text_match_enforced=scores.text_match_enforced,
    )


def clip_to_proto(clip: Clip) -> previs_pb2.Clip:
    message = previs_pb2.Clip(
        uri=clip.uri,
        job_id=clip.job_id,
        seed=clip.seed,
        duration_s=clip.duration_s,
        scores=scores_to_proto(clip.scores),
        style=clip.style,
        video_id=clip.video_id,
        attempt=clip.attempt,
        variant=clip.variant,
        failure=clip.failure,
        prompt=clip.prompt,
        actual_prompt=clip.actual_prompt,
    )
    if clip.consistency is not None:
        message.consistency = clip.consistency
    return message


def revision_to_proto(revision: ShotRevision) -> previs_pb2.ShotRevision:
    return previs_pb2.ShotRevision(
        revision=revision.revision,
        note=revision.note,
        prompt=revision.prompt,
        actual_prompt=revision.actual_prompt,
        lineage=revision.lineage,
        clips=[clip_to_proto(clip) for clip in revision.clips],
        selected_clip=revision.selected_clip,
        create_time=timestamp(revision.create_time_s),
        negative_prompt=revision.negative_prompt,
        reference_video_id=revision.reference_video_id,
        reference_score=revision.reference_score,
        based_on=revision.based_on,
    )


def shot_to_proto(shot: Shot) -> previs_pb2.Shot:
    return previs_pb2.Shot(
        shot_id=shot.shot_id,
        scene_id=shot.scene_id,
        order=shot.order,
        description=shot.description,
        duration_s=shot.duration_s,
        characters=shot.characters,
        location=shot.location,
        time_of_day=shot.time_of_day,
        camera_hints=shot.camera_hints,
        state=_shot_state(shot.state),
        blocked_reason=shot.blocked_reason,
        revisions=[revision_to_proto(r) for r in shot.revisions],
        current_revision=shot.current_revision,
        has_reference_image=shot.has_reference_image,
    )


def cut_to_proto(cut: Cut) -> previs_pb2.Cut:
    return previs_pb2.Cut(
        mp4_uri=cut.mp4_uri,
        otio_uri=cut.otio_uri,
        duration_s=cut.duration_s,
        update_time=timestamp(cut.update_time_s),
    )


def project_to_proto(project: Project) -> previs_pb2.Project:
    """The API form of a project, every shot, revision and clip included."""
    settings = project.settings
    return previs_pb2.Project(
        project_id=project.project_id,
        title=project.title,
        scenes=[previs_pb2.Scene(scene_id=s.scene_id, heading=s.heading) for s in project.scenes],
        shots=[shot_to_proto(shot) for shot in project.shots],
        cut=None if project.cut is None else cut_to_proto(project.cut),
        create_time=timestamp(project.create_time_s),
        settings=previs_pb2.ProjectSettings(
            variants=settings.variants,
            backend=settings.backend,
            style=settings.style,
            language=settings.language,
            width=settings.width,
            height=settings.height,
            fps=settings.fps,
            collection=settings.collection,
        ),
        state=_project_state(project.state),
        notices=project.notices,
    )


def progress_to_proto(progress: ProjectProgress) -> previs_pb2.ProjectProgress:
    """The API form of one report of a run."""
    return previs_pb2.ProjectProgress(
        project_id=progress.project_id,
        stage=progress.stage,
        shots_done=progress.shots_done,
        shots_total=progress.shots_total,
        eta_s=progress.eta_s,
        message=progress.message,
        project=None if progress.project is None else project_to_proto(progress.project),
    )


def project_request_from_proto(request: previs_pb2.CreateProjectRequest) -> ProjectRequest:
    """A CreateProject request as a domain request (its content is checked by the engine)."""
    if request.format not in FORMATS:
        raise InvalidArgument(f"format {request.format} is not a ScriptFormat", field="format")
    return ProjectRequest(
        title=request.title,
        script=request.script,
        format=FORMATS[request.format],
        variants=request.variants,
        backend=request.backend,
        style=request.style,
        references=tuple((r.shot_order, r.image) for r in request.references),
        collection=request.collection,
        width=request.width,
        height=request.height,
        fps=request.fps,
    )


def review_from_proto(request: previs_pb2.ReviewShotRequest) -> ReviewRequest:
    """A ReviewShot request as a domain request."""
    return ReviewRequest(
        project_id=request.project_id,
        shot_id=request.shot_id,
        note=request.note,
        restore_revision=request.restore_revision,
        select_clip=request.select_clip if request.HasField("select_clip") else None,
    )


# Reading the API form back: projects stored by releases that kept protobuf bytes.


def _scores_from_proto(scores: previs_pb2.QualityScores) -> QualityScores:
    return QualityScores(
        sharpness=scores.sharpness,
        flicker=scores.flicker,
        smoothness=scores.smoothness,
        text_match=scores.text_match,
        passed=scores.passed,
        failures=list(scores.failures),
        text_match_enforced=scores.text_match_enforced,
    )


def _clip_from_proto(clip: previs_pb2.Clip) -> Clip:
    return Clip(
        uri=clip.uri,
        job_id=clip.job_id,
        seed=clip.seed,
        duration_s=clip.duration_s,
        scores=_scores_from_proto(clip.scores),
        style=clip.style,
        video_id=clip.video_id,
        attempt=clip.attempt,
        variant=clip.variant,
        consistency=clip.consistency if clip.HasField("consistency") else None,
        failure=clip.failure,
        prompt=clip.prompt,
        actual_prompt=clip.actual_prompt,
    )


def shot_from_proto(shot: previs_pb2.Shot) -> Shot:
    """A shot from its API form."""
    state = previs_pb2.ShotState.Name(shot.state).removeprefix("SHOT_STATE_")
    return Shot(
        shot_id=shot.shot_id,
        scene_id=shot.scene_id,
        order=shot.order,
        description=shot.description,
        duration_s=shot.duration_s,
        characters=list(shot.characters),
        location=shot.location,
        time_of_day=shot.time_of_day,
        camera_hints=list(shot.camera_hints),
        state=ShotState[state] if state in ShotState.__members__ else ShotState.PENDING,
        blocked_reason=shot.blocked_reason,
        revisions=[
            ShotRevision(
                revision=r.revision,
                note=r.note,
                prompt=r.prompt,
                actual_prompt=r.actual_prompt,
                lineage=list(r.lineage),
                clips=[_clip_from_proto(c) for c in r.clips],
                selected_clip=r.selected_clip,
                create_time_s=seconds_of(r, "create_time"),
                negative_prompt=r.negative_prompt,
                reference_video_id=r.reference_video_id,
                reference_score=r.reference_score,
                based_on=r.based_on,
            )
            for r in shot.revisions
        ],
        current_revision=shot.current_revision,
        has_reference_image=shot.has_reference_image,
    )


def project_from_proto(project: previs_pb2.Project) -> Project:
    """A project from its API form."""
    state = previs_pb2.ProjectState.Name(project.state).removeprefix("PROJECT_STATE_")
    settings = project.settings
    cut = project.cut if project.HasField("cut") else None
    return Project(
        project_id=project.project_id,
        title=project.title,
        scenes=[Scene(s.scene_id, s.heading) for s in project.scenes],
        shots=[shot_from_proto(shot) for shot in project.shots],
        cut=None
        if cut is None
        else Cut(cut.mp4_uri, cut.otio_uri, cut.duration_s, seconds_of(cut, "update_time")),
        create_time_s=seconds_of(project, "create_time"),
        settings=ProjectSettings(
            variants=settings.variants,
            backend=settings.backend,
            style=settings.style,
            language=settings.language,
            width=settings.width,
            height=settings.height,
            fps=settings.fps,
            collection=settings.collection,
        ),
        state=ProjectState[state] if state in ProjectState.__members__ else ProjectState.RUNNING,
        notices=list(project.notices),
    )
