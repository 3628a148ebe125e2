"""Previs asking for multi-shot clips, over the real mesh (encoder, index, generator on the
local DashScope, previs): with wan2.6 every clip is asked for as multi-shot; with a model that
makes single shots only, every clip is asked for as one shot and the project says so; a
malformed model name is refused before anything is made."""

from __future__ import annotations

import grpc
import pytest
import pytest_asyncio

from clipmesh.previs.production import SINGLE_SHOT_MODEL
from clipmesh_api.orchestrator.v1 import previs_pb2, previs_pb2_grpc
from clipmesh_client import errors as client_errors
from clipmesh_client.wire import ChannelPolicy
from tests.fakes.dashscope_server import FakeDashScope
from tests.support import run_cli

pytestmark = pytest.mark.asyncio(loop_scope="module")
State = previs_pb2.ShotState

# Shots whose planned durations are whole seconds, which Wan takes: 10 English words are 4 s
# to show, 25 Chinese characters 5 s (previs/shot_timing.py). Other durations are refused by
# these models (docs/previs.md, known limits).
LIGHTHOUSE = """INT. LIGHTHOUSE - DUSK

The keeper climbs the spiral stairs of the old lighthouse.

At the top he lights the great lamp for everyone.
"""
STREET = """第一场 夜 外 街道
林夏撑着伞走过空荡荡的街道，路灯一盏盏亮起，雨越下越大。
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(mesh_factory):
    # Videos are served small whatever size was asked for: the checks stay cheap.
    with FakeDashScope(api_key="sk-previs", video_size=(256, 144)) as dashscope:
        env = {
            "generator": {
                "CLIPMESH_GENERATOR_DASHSCOPE_BASE_URL": dashscope.base_url,
                "CLIPMESH_GENERATOR_DASHSCOPE_API_KEY": dashscope.api_key,
                "CLIPMESH_GENERATOR_DASHSCOPE_POLL_INITIAL_S": "0.05",
                "CLIPMESH_GENERATOR_DASHSCOPE_POLL_MAX_S": "0.2",
            }
        }
        services = ("encoder", "index", "generator", "previs")
        async with mesh_factory.in_process(*services, env=env) as running:
            calls = ChannelPolicy(timeout_s=300, max_attempts=1)
            running.previs = running.stub("previs", previs_pb2_grpc.PrevisServiceStub, calls)
            running.dashscope = dashscope
            yield running


async def create(mesh, script: str, **fields) -> previs_pb2.Project:
    request = previs_pb2.CreateProjectRequest(
        title="Coverage", script=script, backend="dashscope", multi_shot=True, **fields
    )
    reports = [r.progress async for r in mesh.previs.CreateProject(request)]
    return reports[-1].project


def fractional_durations(project: previs_pb2.Project) -> list[float]:
    return [shot.duration_s for shot in project.shots if shot.duration_s != int(shot.duration_s)]


async def test_with_wan26_every_clip_is_asked_for_as_multi_shot(mesh) -> None:
    tasks_before = mesh.dashscope.tasks_created
    project = await create(mesh, LIGHTHOUSE, model="wan2.6-t2v", width=1280, height=720)

    assert fractional_durations(project) == [], "the script's shots must last whole seconds"
    assert (project.settings.model, project.settings.multi_shot) == ("wan2.6-t2v", True)
    made = mesh.dashscope.task_parameters[tasks_before:]
    assert len(made) >= len(project.shots) == 2
    assert {(p["shot_type"], p["prompt_extend"]) for p in made} == {("multi", True)}
    assert all(
        s.state in (State.SHOT_STATE_READY, State.SHOT_STATE_BELOW_THRESHOLD) for s in project.shots
    )
    assert not [n for n in project.notices if "multi-shot" in n]
    assert project.cut.mp4_uri


async def test_a_single_shot_model_makes_single_shots_and_the_project_says_so(mesh) -> None:
    tasks_before = mesh.dashscope.tasks_created
    project = await create(mesh, STREET, model="wan2.5-t2v-preview", width=832, height=480)

    assert fractional_durations(project) == [], "the script's shots must last whole seconds"
    made = mesh.dashscope.task_parameters[tasks_before:]
    assert made and all("shot_type" not in p for p in made)  # wan2.5 makes one shot
    assert all(
        s.state in (State.SHOT_STATE_READY, State.SHOT_STATE_BELOW_THRESHOLD) for s in project.shots
    )
    (notice,) = [n for n in project.notices if "multi-shot" in n]
    assert notice.startswith("multi-shot clips asked for, single-shot clips made:")
    assert "wan2.5-t2v-preview makes single-shot clips only" in notice
    assert not [
        c.failure
        for s in project.shots
        for r in s.revisions
        for c in r.clips
        if SINGLE_SHOT_MODEL in c.failure
    ]


@pytest.mark.parametrize("model", ["Wan 2.6", "wan2.6-t2v\n", "../wan"])
async def test_a_malformed_model_name_is_refused_before_anything_is_made(mesh, model) -> None:
    tasks_before = mesh.dashscope.tasks_created
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await create(mesh, LIGHTHOUSE, model=model)
    error = client_errors.from_rpc_error(refused.value)
    assert (error.code, error.metadata.get("field")) == (grpc.StatusCode.INVALID_ARGUMENT, "model")
    assert mesh.dashscope.tasks_created == tasks_before


async def test_the_sdk_and_the_cli_ask_for_multi_shot_coverage(mesh, tmp_path) -> None:
    from clipmesh_client import AsyncPrevisClient

    tasks_before = mesh.dashscope.tasks_created
    async with AsyncPrevisClient(mesh.target("previs"), timeout_s=300) as client:
        reports = client.create_project(
            STREET,
            title="SDK coverage",
            backend="dashscope",
            model="wan2.6-t2v",
            multi_shot=True,
            size=(1280, 720),
        )
        project = [report async for report in reports][-1].project
    assert (project.settings.model, project.settings.multi_shot) == ("wan2.6-t2v", True)
    made = mesh.dashscope.task_parameters[tasks_before:]
    assert made and {p["shot_type"] for p in made} == {"multi"}

    script = tmp_path / "street.txt"
    script.write_text(STREET)
    tasks_before = mesh.dashscope.tasks_created
    code, _out, err = await run_cli(
        "previs", str(script), "--backend", "dashscope", "--model", "wan2.6-t2v",
        "--multi-shot", "--size", "1280x720", "--json", "--target", mesh.target("previs"),
    )  # fmt: skip
    assert code == 0, err
    assert {p["shot_type"] for p in mesh.dashscope.task_parameters[tasks_before:]} == {"multi"}
