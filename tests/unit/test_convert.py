"""The boundary of every service: domain records ↔ API messages lose nothing either way.

A servicer only translates, so these conversions are where a field could silently go missing:
each record is filled with a non-default value in every field and must come back equal.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from clipmesh.generator import convert as generator_convert
from clipmesh.generator.jobs import (
    GenerationResult,
    GenerationSpec,
    Job,
    JobError,
    JobEvent,
    JobState,
    ShotType,
)
from clipmesh.index import convert as index_convert
from clipmesh.index.filters import Clause, VideoFilter, parse_filter
from clipmesh.index.records import MomentHit, SearchResult, Segments, VideoMeta, VideoResult
from clipmesh.orchestrator import requests as orchestrator_requests
from clipmesh.orchestrator.config import OrchestratorConfig
from clipmesh.previs import convert as previs_convert
from clipmesh.previs.records import (
    Clip,
    Cut,
    Project,
    ProjectSettings,
    ProjectState,
    QualityScores,
    Scene,
    Shot,
    ShotRevision,
    ShotState,
)
from clipmesh.runtime.errors import InvalidArgument
from clipmesh.runtime.messages import from_message, to_message
from clipmesh_api.orchestrator.v1 import previs_pb2, search_pb2

TIME_S = 1_733_100_000.125


def _assert_every_field_set(record) -> None:
    """Guards the tests themselves: a field left at its default would prove nothing."""
    for field in dataclasses.fields(record):
        value = getattr(record, field.name)
        assert value not in (None, "", 0, 0.0, False, (), [], {}), field.name


def test_a_video_and_its_hits_round_trip_through_the_api() -> None:
    meta = VideoMeta(
        video_id="v1",
        uri="file:///media/harbour.mp4",
        title="港口 at dawn",
        duration_s=12.5,
        fps=25.0,
        width=1920,
        height=1080,
        size_bytes=10_000_000,
        source="generated",
        create_time_s=TIME_S,
        content_sha256="ab" * 32,
        labels={"project": "p1", "shot": "s001"},
    )
    _assert_every_field_set(meta)
    assert index_convert.video_from_proto(index_convert.video_to_proto("c", meta)) == meta
    hit = VideoResult(meta, 0.5, (MomentHit(1.0, 3.5, 2.0, 0.25, "file:///t.jpg"),))
    result = SearchResult([hit], "ivf_sq8", True, "nprobe 4 of 16", {"ann": 1.5})
    proto = index_convert.search_result_to_proto("c", result)
    assert proto.hits[0].video.collection == "c"
    assert index_convert.search_result_from_proto(proto) == result


def test_segments_round_trip_with_their_vectors() -> None:
    segments = Segments(
        start_s=np.array([0.0, 2.5]),
        end_s=np.array([2.5, 5.0]),
        keyframe_s=np.array([1.0, 3.0]),
        vectors=np.array([[0.6, 0.8], [1.0, 0.0]], dtype=np.float32),
        thumbnails=("file:///0.jpg", ""),
    )
    back = index_convert.segments_from_proto(index_convert.segments_to_proto(segments))
    for name in ("start_s", "end_s", "keyframe_s", "vectors"):
        np.testing.assert_array_equal(getattr(back, name), getattr(segments, name))
    assert back.thumbnails == segments.thumbnails


@pytest.mark.parametrize(
    "clause",
    [
        Clause("source", "equals", values=("ingested",)),
        Clause("labels.team", "any_of", values=("a", "b"), negate=True),
        Clause("duration_s", "range", low=1.0, high=60.0, high_inclusive=False),
        Clause("labels.take", "range", low=2.0, low_inclusive=False),
    ],
)
def test_a_checked_filter_goes_back_to_the_api_as_it_was_read(clause) -> None:
    checked = VideoFilter((clause,))
    assert parse_filter(index_convert.filter_to_proto(checked)) == checked


def test_a_job_and_its_events_round_trip_through_the_api() -> None:
    spec = GenerationSpec(
        prompt="一座灯塔, slow push in",
        negative_prompt="blur",
        backend="dashscope",
        model="wan2.2-t2v-plus",
        width=1280,
        height=720,
        duration_s=5.0,
        fps=30.0,
        seed=0,  # zero is a seed, not "unset"
        prompt_extend=False,
        watermark=True,
        labels={"shot": "s001"},
        shot_type=ShotType.MULTI,
        generate_audio=False,  # false is an answer, not "unset"
    )
    _assert_every_field_set(
        dataclasses.replace(spec, seed=7, prompt_extend=True, generate_audio=True)
    )
    assert generator_convert.spec_from_proto(generator_convert.spec_to_proto(spec)) == spec
    unset = GenerationSpec("p")
    assert generator_convert.spec_from_proto(generator_convert.spec_to_proto(unset)) == unset
    job = Job(
        job_id="j1",
        spec=spec,
        idempotency_key="k1",
        backend="dashscope",
        state=JobState.SUCCEEDED,
        progress=1.0,
        queue_position=3,
        eta_s=12.5,
        result=GenerationResult("file:///o.mp4", 5.0, 30.0, 1280, 720, 9, "cd" * 32, True),
        error=JobError("PROVIDER_TIMEOUT", "slow", "Timeout"),
        orig_prompt="a lighthouse",
        actual_prompt="a lighthouse, rewritten",
        provider_task_id="task-1",
        create_time_s=TIME_S,
        start_time_s=TIME_S + 1,
        end_time_s=TIME_S + 60.5,
        output_deleted=True,
        caller="team-a",
        webhook_url="https://hooks.example.com/jobs",
    )
    _assert_every_field_set(job)
    assert generator_convert.job_from_proto(generator_convert.job_to_proto(job)) == job
    event = JobEvent(job, "succeeded", TIME_S + 61)
    assert generator_convert.event_from_proto(generator_convert.event_to_proto(event)) == event


def _project() -> Project:
    clip = Clip(
        uri="file:///c.mp4",
        job_id="j1",
        seed=42,
        duration_s=3.0,
        scores=QualityScores(120.5, 0.2, 0.97, 0.31, True, ["none"], True),
        style="cinematic",
        video_id="v1",
        attempt=2,
        variant=1,
        consistency=0.0,  # set, though zero
        failure="first try blurred",
        prompt="雨夜，咖啡馆",
        actual_prompt="a café at night, rain",
    )
    revision = ShotRevision(
        revision=2,
        note="更慢一些",
        prompt="p",
        actual_prompt="a",
        lineage=["template style=cinematic"],
        clips=[dataclasses.replace(clip, variant=0), clip],
        selected_clip=1,
        create_time_s=TIME_S,
        negative_prompt="n",
        reference_video_id="v9",
        reference_score=0.7,
        based_on=1,
    )
    shot = Shot(
        shot_id="s001",
        scene_id="sc01",
        order=1,
        description="林夏推开门",
        duration_s=4.0,
        characters=["林夏"],
        location="咖啡馆",
        time_of_day="日",
        camera_hints=["close-up"],
        state=ShotState.BELOW_THRESHOLD,
        blocked_reason="sharpness",
        revisions=[revision],
        current_revision=2,
        has_reference_image=True,
    )
    return Project(
        project_id="p1",
        title="雨中咖啡馆",
        scenes=[Scene("sc01", "第一场 日 内 咖啡馆")],
        shots=[shot],
        cut=Cut("file:///cut.mp4", "file:///cut.otio", 4.0, TIME_S + 5),
        create_time_s=TIME_S,
        settings=ProjectSettings(3, "animatic", "anime", "zh", 256, 144, 12.0, "library"),
        state=ProjectState.INTERRUPTED,
        notices=["run interrupted: previs stopped"],
        owner="team-a",
    )


def test_a_project_round_trips_through_the_api() -> None:
    project = _project()
    for record in (project, project.shots[0], project.shots[0].revisions[0]):
        _assert_every_field_set(record)
    assert from_message(to_message(project, previs_pb2.Project), Project) == project


def test_an_unknown_script_format_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidArgument) as refused:
        previs_convert.project_request_from_proto(
            previs_pb2.CreateProjectRequest(script="x", format=99)
        )
    assert refused.value.metadata["field"] == "format"


def test_a_search_request_becomes_a_checked_search_with_the_services_defaults() -> None:
    config = OrchestratorConfig()
    request = search_pb2.SearchVideosRequest(
        parts=[
            search_pb2.QueryPart(image=b"\xff\xd8jpeg"),
            search_pb2.QueryPart(text="night", weight=-0.5),
        ],
        collection="library",
    )
    query = orchestrator_requests.parse_search(request, config)
    assert [(p.kind, p.weight) for p in query.parts] == [("image", 1.0), ("text", -0.5)]
    assert (query.collection, query.top_k, query.max_moments) == ("library", 10, 3)
    assert query.budget_s == config.search_budget_ms / 1000 and query.kind == "mixed"
