"""Previs over the real mesh (encoder, index, generator with the animatic backend,
orchestrator, previs) on free ports: a script becomes a checked, stitched cut with a timeline;
a review regenerates only its shot; a deliberately bad clip is caught and regenerated; a
listed name is blocked before any provider sees it; variants, reference images and bad
requests."""

from __future__ import annotations

import asyncio

import av
import grpc
import opentimelineio as otio
import pytest
import pytest_asyncio

from clipmesh.demo.library import make_library, still_from
from clipmesh.generator.server import GeneratorApp
from clipmesh.media.paths import path_from_uri
from clipmesh_api.common.v1 import common_pb2
from clipmesh_api.orchestrator.v1 import (
    ingest_pb2,
    ingest_pb2_grpc,
    previs_pb2,
    previs_pb2_grpc,
)
from clipmesh_client.wire import ChannelPolicy
from tests.fakes.flaky_backend import BlurryFirstTryBackend

pytestmark = pytest.mark.asyncio(loop_scope="module")
State = previs_pb2.ShotState
SIZE = {"width": 256, "height": 144, "fps": 12.0}

ZH_SCRIPT = """第一场 日 内 咖啡馆
林夏推开咖啡馆的门，环顾四周。
她在窗边坐下，望着窗外的雨。

第二场 夜 外 街道
林夏撑着伞走过空荡荡的街道，路灯一盏盏亮起。
"""

FOUNTAIN_SCRIPT = """Title: The Letter

INT. KITCHEN - NIGHT

Mara opens the envelope slowly. Close-up on her hands.

MARA
It's from him.

EXT. ROOFTOP - DAWN

Mara stands at the edge, the letter in her hand, wind in her hair.
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(mesh_factory, tmp_path_factory):
    library = make_library(tmp_path_factory.mktemp("library"), count=2, seed=3)
    people = tmp_path_factory.mktemp("lists") / "people.txt"
    people.write_text("# this deployment's list\nMira Castellan\n卡斯特兰\n", encoding="utf-8")
    flaky = BlurryFirstTryBackend()
    env = {
        "generator": {"CLIPMESH_GENERATOR_ANIMATIC_MAX_CONCURRENT": "2"},
        "orchestrator": {"CLIPMESH_ORCHESTRATOR_ALLOWED_ROOTS": str(library[0].path.parent)},
        "previs": {"CLIPMESH_PREVIS_REAL_PEOPLE_FILES": str(people)},
    }
    builders = {
        "generator": lambda config: GeneratorApp(config, extra_backends={flaky.name: flaky})
    }
    services = ("encoder", "index", "generator", "orchestrator", "previs")
    async with mesh_factory.in_process(*services, env=env, builders=builders) as running:
        calls = ChannelPolicy(timeout_s=300, max_attempts=1)
        running.previs = running.stub("previs", previs_pb2_grpc.PrevisServiceStub, calls)
        running.ingest = running.stub("orchestrator", ingest_pb2_grpc.IngestServiceStub, calls)
        running.flaky, running.library = flaky, library
        async for _ in running.ingest.IngestVideos(
            ingest_pb2.IngestVideosRequest(
                items=[ingest_pb2.IngestItem(uri=str(spec.path)) for spec in library]
            )
        ):
            pass
        yield running


async def create(mesh, script: str, **fields) -> tuple[list, previs_pb2.Project]:
    request = previs_pb2.CreateProjectRequest(title="Test", script=script, **{**SIZE, **fields})
    reports = [r.progress async for r in mesh.previs.CreateProject(request)]
    return reports, reports[-1].project


async def review(mesh, project_id: str, shot_id: str, **fields) -> previs_pb2.Project:
    request = previs_pb2.ReviewShotRequest(project_id=project_id, shot_id=shot_id, **fields)
    reports = [r.progress async for r in mesh.previs.ReviewShot(request)]
    return reports[-1].project


def selected(shot: previs_pb2.Shot) -> previs_pb2.Clip:
    revision = shot.revisions[shot.current_revision - 1]
    return revision.clips[revision.selected_clip]


def frames_of(uri: str) -> tuple[int, float]:
    with av.open(path_from_uri(uri)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
        return count, float(stream.average_rate)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def zh_project(mesh):
    return await create(mesh, ZH_SCRIPT)


async def test_a_chinese_script_becomes_a_checked_stitched_cut(zh_project) -> None:
    reports, project = zh_project
    assert reports[0].stage == "parsing"
    assert reports[-1].stage == "done" and reports[-1].shots_done == len(project.shots)
    assert {"generating", "checking", "stitching"} <= {r.stage for r in reports}
    assert [s.order for s in project.shots] == list(range(len(project.shots)))
    assert len(project.scenes) == 2 and len(project.shots) >= 3
    assert project.settings.language == "zh" and project.state == previs_pb2.PROJECT_STATE_DONE
    assert any("weights are random" in n for n in project.notices)
    for shot in project.shots:
        assert shot.state == State.SHOT_STATE_READY, shot.blocked_reason
        assert 0 < shot.duration_s <= 10
        clip = selected(shot)
        assert clip.scores.passed and not clip.scores.text_match_enforced
        assert clip.scores.sharpness > 50 and clip.video_id
        assert shot.revisions[0].prompt and shot.revisions[0].lineage


async def test_the_cut_is_the_sum_of_its_shots_and_its_timeline_loads(zh_project) -> None:
    _, project = zh_project
    frames, fps = frames_of(project.cut.mp4_uri)
    shot_frames = [frames_of(selected(s).uri)[0] for s in project.shots]
    assert fps == SIZE["fps"]
    assert abs(frames - sum(shot_frames)) <= len(shot_frames)
    assert project.cut.duration_s == pytest.approx(frames / fps, abs=1 / fps)
    timeline = otio.adapters.read_from_file(path_from_uri(project.cut.otio_uri))
    clips = list(timeline.find_clips())
    assert [c.metadata["clipmesh"]["shot_id"] for c in clips] == [s.shot_id for s in project.shots]
    assert clips[0].metadata["clipmesh"]["prompt"] == selected(project.shots[0]).prompt


async def test_generated_clips_are_in_the_library_with_their_prompts(mesh, zh_project) -> None:
    _, project = zh_project
    listed = await mesh.ingest.ListVideos(
        ingest_pb2.ListVideosRequest(
            filter=common_pb2.MetadataFilter(
                clauses=[
                    common_pb2.FilterClause(field="source", equals="generated"),
                    common_pb2.FilterClause(field="labels.project", equals=project.project_id),
                ]
            )
        )
    )
    by_id = {v.video_id: v for v in listed.videos}
    for shot in project.shots:
        clip = selected(shot)
        assert by_id[clip.video_id].labels["shot"] == shot.shot_id
        assert by_id[clip.video_id].labels["prompt"] == clip.prompt[:500]


async def test_a_review_regenerates_only_its_shot_and_keeps_every_revision(mesh, zh_project):
    _, before = zh_project
    target = before.shots[1].shot_id
    after = await review(mesh, before.project_id, target, note="更慢一些")
    for old, new in zip(before.shots, after.shots, strict=True):
        if old.shot_id == target:
            assert len(new.revisions) == 2 and new.current_revision == 2
            second = new.revisions[1]
            assert second.note == "更慢一些" and second.based_on == 1
            assert second.prompt != new.revisions[0].prompt
            assert any("更慢一些" in line for line in second.lineage)
            assert selected(new).uri != selected(old).uri
        else:
            assert new.revisions == old.revisions and new.current_revision == 1
    assert after.cut.update_time.ToNanoseconds() > before.cut.update_time.ToNanoseconds()
    restored = await review(mesh, before.project_id, target, restore_revision=1)
    shot = next(s for s in restored.shots if s.shot_id == target)
    assert shot.current_revision == 1 and len(shot.revisions) == 2
    assert selected(shot).uri == selected(before.shots[1]).uri
    got = await mesh.previs.GetProject(previs_pb2.GetProjectRequest(project_id=before.project_id))
    assert got.project.shots == restored.shots
    exported = await mesh.previs.ExportCut(
        previs_pb2.ExportCutRequest(project_id=before.project_id)
    )
    assert exported.cut == restored.cut


async def test_a_bad_clip_is_caught_by_the_checks_and_regenerated(mesh) -> None:
    _, project = await create(
        mesh, "A lighthouse keeper climbs the stairs at dusk.", backend="blurry-first-try"
    )
    (shot,) = project.shots
    first, second = shot.revisions[0].clips
    assert not first.scores.passed and first.scores.failures[0].startswith("sharpness")
    assert second.scores.passed and second.seed != first.seed and second.attempt == 2
    assert shot.state == State.SHOT_STATE_READY and shot.revisions[0].selected_clip == 1
    assert len(mesh.flaky.blurred_jobs) >= 1 and first.job_id in mesh.flaky.blurred_jobs


async def test_a_listed_name_is_blocked_before_any_provider_sees_it(mesh) -> None:
    seen_before = set(mesh.flaky.seen_prompts)
    _, project = await create(
        mesh,
        "Mira Castellan walks onto the stage.\n\nThe crowd cheers under the lights.",
        backend="blurry-first-try",
    )
    blocked = [s for s in project.shots if s.state == State.SHOT_STATE_BLOCKED]
    assert len(blocked) == 1 and "Mira Castellan" in blocked[0].blocked_reason
    assert not blocked[0].revisions[0].clips
    new_prompts = mesh.flaky.seen_prompts - seen_before
    assert new_prompts and not any("Castellan" in p for p in new_prompts)
    assert any("not in the cut" in n for n in project.notices)
    assert project.HasField("cut")


async def test_a_fountain_script_with_variants_gets_one_clip_per_style(mesh) -> None:
    _, project = await create(mesh, FOUNTAIN_SCRIPT, variants=3)
    assert project.settings.language == "en" and len(project.scenes) == 2
    assert all(s.duration_s <= 10 for s in project.shots)
    first = project.shots[0]
    assert "close-up" in first.camera_hints
    clips = first.revisions[0].clips
    assert sorted(c.variant for c in clips) == [0, 1, 2]
    assert len({c.style for c in clips}) == 3 and len({c.prompt for c in clips}) == 3
    chosen = await review(mesh, project.project_id, first.shot_id, select_clip=2)
    assert chosen.shots[0].revisions[0].selected_clip == 2


async def test_a_reference_image_informs_the_prompt_and_is_scored(mesh) -> None:
    spec = mesh.library[1]
    still = await asyncio.to_thread(still_from, spec.path, spec.shots[0].end_s / 2)
    _, project = await create(
        mesh,
        "The courier crosses the square at noon.",
        references=[previs_pb2.ShotReference(shot_order=0, image=still)],
    )
    (shot,) = project.shots
    revision = shot.revisions[0]
    assert shot.has_reference_image
    assert revision.reference_video_id and revision.reference_score > 0
    # The reference is library footage (never a generated clip), named in the prompt. Which
    # of the two videos the tiny random-weights encoder ranks nearest is not meaningful (their
    # cosines differ in the third decimal); a frame finding its own video is tested with
    # ingest (test_orchestrator_ingest.py).
    listed = await mesh.ingest.ListVideos(ingest_pb2.ListVideosRequest())
    titles = {video.video_id: video.title for video in listed.videos}
    library = {s.path.stem for s in mesh.library}
    assert titles[revision.reference_video_id] in library
    assert f"“{titles[revision.reference_video_id]}”" in revision.prompt
    assert selected(shot).HasField("consistency")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"script": ""}, "script"),
        ({"script": "A man runs.", "variants": 99}, "variants"),
        ({"script": "A man runs.", "style": "vaporwave-9000"}, "style"),
        ({"script": "A man runs.", "width": 333, "height": 144}, "width"),
        ({"script": "A man runs.", "title": "x\x00y"}, "title"),
        (
            {
                "script": "A man runs.",
                "references": [previs_pb2.ShotReference(shot_order=5, image=b"x")],
            },
            "references[0].shot_order",
        ),
        (
            {
                "script": "A man runs.",
                "references": [previs_pb2.ShotReference(shot_order=0, image=b"not an image")],
            },
            "references[0].image",
        ),
    ],
)
async def test_a_bad_project_request_names_its_field_and_stores_nothing(mesh, fields, field):
    request = previs_pb2.CreateProjectRequest(**fields)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in mesh.previs.CreateProject(request):
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in caught.value.details() or field.split(".")[0] in caught.value.details()


async def test_bad_reviews_and_unknown_projects_get_clear_errors(mesh, zh_project) -> None:
    _, project = zh_project
    cases = [
        ({"project_id": "nope", "shot_id": "s001", "note": "slower"}, grpc.StatusCode.NOT_FOUND),
        (
            {"project_id": project.project_id, "shot_id": "s999", "note": "slower"},
            grpc.StatusCode.NOT_FOUND,
        ),
        (
            {
                "project_id": project.project_id,
                "shot_id": "s001",
                "note": "x",
                "restore_revision": 1,
            },
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            {"project_id": project.project_id, "shot_id": "s001", "restore_revision": 9},
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ]
    for fields, code in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in mesh.previs.ReviewShot(previs_pb2.ReviewShotRequest(**fields)):
                pass
        assert caught.value.code() == code, fields
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await mesh.previs.ExportCut(previs_pb2.ExportCutRequest(project_id="nope"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
