"""Previs's clients and editor exports against a real previs service (with the encoder, the
index and the generator on the animatic backend, on free ports): ExportCut in every format, each
file read back by its own OpenTimelineIO adapter; the SDK's asyncio and blocking clients (a
project's progress stream, a review, exports, typed errors); `clipmesh export --format`. The
pipeline itself is in test_previs.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc
import opentimelineio as otio
import pytest
import pytest_asyncio

from clipmesh.media.paths import path_from_uri
from clipmesh_api.orchestrator.v1 import previs_pb2, previs_pb2_grpc
from clipmesh_client import (
    AsyncPrevisClient,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PrevisClient,
    from_rpc_error,
)
from clipmesh_client.wire import ChannelPolicy
from tests.support import run_cli

pytestmark = pytest.mark.asyncio(loop_scope="module")
Format = previs_pb2.ExportFormat
CLIP = {"backend": "animatic", "size": (256, 144), "fps": 12.0}
SCRIPT = (
    "The harbour at dawn. Fishing boats drift past the lighthouse.\n\n"
    "A gull lands on the railing and looks at the camera."
)
# Each format's file, the adapter that reads it back and the rate it runs at for a 12 fps cut.
EXPORTS = {
    Format.EXPORT_FORMAT_FCP7_XML: (".xml", "fcp_xml", 24),
    Format.EXPORT_FORMAT_FCPXML: (".fcpxml", "fcpx_xml", 24),
    Format.EXPORT_FORMAT_CMX3600_EDL: (".edl", "cmx_3600", 24),
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(mesh_factory, tmp_path_factory):
    people = tmp_path_factory.mktemp("lists") / "people.txt"
    people.write_text("Mira Castellan\n", encoding="utf-8")
    env = {"previs": {"CLIPMESH_PREVIS_REAL_PEOPLE_FILES": str(people)}}
    services = ("encoder", "index", "generator", "previs")
    async with mesh_factory.in_process(*services, env=env) as running:
        calls = ChannelPolicy(timeout_s=300, max_attempts=1)
        running.previs = running.stub("previs", previs_pb2_grpc.PrevisServiceStub, calls)
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def project(mesh) -> tuple[list, previs_pb2.Project]:
    """A two-shot project made through the asyncio client: its reports and the project."""
    async with AsyncPrevisClient(mesh.target("previs"), timeout_s=30) as previs:
        reports = [r async for r in previs.create_project(SCRIPT, title="港口 Harbour", **CLIP)]
    return reports, reports[-1].project


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def uncut(mesh) -> previs_pb2.Project:
    """A project whose only shot is blocked (a listed name), so it has no cut."""
    async with AsyncPrevisClient(mesh.target("previs"), timeout_s=30) as previs:
        reports = [r async for r in previs.create_project("Mira Castellan bows.", **CLIP)]
    return reports[-1].project


def in_cut_order(project: previs_pb2.Project) -> list[str]:
    """The path of each shot's selected clip, in cut order."""
    paths = []
    for shot in project.shots:
        revision = shot.revisions[shot.current_revision - 1]
        paths.append(path_from_uri(revision.clips[revision.selected_clip].uri))
    return paths


def frames_at(timeline: otio.schema.Timeline, fps: float) -> list[float]:
    return [clip.source_range.duration.rescaled_to(fps).value for clip in timeline.find_clips()]


async def test_the_async_client_streams_a_project_to_its_cut(project) -> None:
    reports, made = project
    assert reports[0].stage == "parsing" and reports[-1].stage == "done"
    assert [r.shots_done for r in reports] == sorted(r.shots_done for r in reports)
    assert reports[-1].shots_done == len(made.shots) == 2
    assert made.HasField("cut") and made.cut.duration_s > 0


@pytest.mark.parametrize("format", list(EXPORTS), ids=Format.Name)
async def test_export_cut_writes_each_format_beside_the_cut_read_back_by_its_adapter(
    mesh, project, format
) -> None:
    _, made = project
    suffix, adapter, rate = EXPORTS[format]
    request = previs_pb2.ExportCutRequest(project_id=made.project_id, format=format)

    response = await mesh.previs.ExportCut(request)

    exported, timeline = (
        Path(path_from_uri(response.export_uri)),
        Path(path_from_uri(made.cut.otio_uri)),
    )
    assert response.cut == made.cut
    assert (exported.parent, exported.name) == (timeline.parent, "cut" + suffix)
    options = {"rate": rate} if adapter == "cmx_3600" else {}
    read = otio.adapters.read_from_file(str(exported), adapter_name=adapter, **options)
    original = otio.adapters.read_from_file(str(timeline))
    assert frames_at(read, 12) == frames_at(original, 12)  # the same shots, lengths, order
    sources = [path_from_uri(clip.media_reference.target_url) for clip in read.find_clips()]
    assert sources == in_cut_order(made)


async def test_export_cut_answers_opentimelineio_by_default(mesh, project) -> None:
    _, made = project
    for format in (Format.EXPORT_FORMAT_UNSPECIFIED, Format.EXPORT_FORMAT_OTIO):
        request = previs_pb2.ExportCutRequest(project_id=made.project_id, format=format)
        response = await mesh.previs.ExportCut(request)
        assert response.export_uri == made.cut.otio_uri


async def test_export_cut_refuses_what_it_cannot_export(mesh, uncut) -> None:
    cases = [
        (
            previs_pb2.ExportCutRequest(project_id="p-none", format=2),
            "NOT_FOUND",
            "PROJECT_NOT_FOUND",
        ),
        (
            previs_pb2.ExportCutRequest(project_id=uncut.project_id, format=4),
            "FAILED_PRECONDITION",
            "NO_CUT",
        ),
        (
            previs_pb2.ExportCutRequest(project_id=uncut.project_id, format=9),
            "INVALID_ARGUMENT",
            "UNKNOWN_ENUM_VALUE",
        ),
    ]
    for request, code, reason in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await mesh.previs.ExportCut(request)
        error = from_rpc_error(caught.value)
        assert (error.code.name, error.reason) == (code, reason), request
    assert error.metadata["field"] == "format"


async def test_the_async_client_reviews_exports_and_raises_typed_errors(mesh, project) -> None:
    _, made = project
    shot_id = made.shots[0].shot_id
    async with AsyncPrevisClient(mesh.target("previs"), timeout_s=30) as previs:
        reports = [r async for r in previs.review_shot(made.project_id, shot_id, note="slower")]
        exported = await previs.export_cut(made.project_id, format="edl")
        fetched = await previs.get_project(made.project_id)
        with pytest.raises(NotFoundError) as missing:
            await previs.export_cut("p-none", format="xml")
        with pytest.raises(InvalidArgumentError) as bad_review:
            async for _ in previs.review_shot(
                made.project_id, shot_id, note="x", restore_revision=1
            ):
                pass
        with pytest.raises(ValueError, match="format must be one of"):
            await previs.export_cut(made.project_id, format="mov")
    assert reports[-1].stage == "done"
    assert len(reports[-1].project.shots[0].revisions) == 2
    assert fetched.shots[0].current_revision == 2
    assert (exported.format, exported.cut) == ("edl", fetched.cut)
    assert exported.export_uri.endswith("/cut.edl") and exported.mp4_uri == fetched.cut.mp4_uri
    assert missing.value.reason == "PROJECT_NOT_FOUND"
    assert bad_review.value.metadata["field"] == "note"


def blocking_round(target: str, project_id: str, uncut_id: str) -> dict:
    with PrevisClient(target, timeout_s=30) as previs:
        with pytest.raises(FailedPreconditionError) as no_cut:
            previs.export_cut(uncut_id, format="fcpxml")
        with pytest.raises(NotFoundError):
            previs.get_project("p-none")
        return {
            "project": previs.get_project(project_id),
            "exports": {f: previs.export_cut(project_id, format=f) for f in ("xml", "fcpxml")},
            "default": previs.export_cut(project_id),
            "no_cut": no_cut.value,
        }


async def test_the_blocking_client_exports_and_raises_the_same_errors(mesh, project, uncut):
    _, made = project
    out = await asyncio.to_thread(
        blocking_round, mesh.target("previs"), made.project_id, uncut.project_id
    )
    cut = out["project"].cut
    assert {f: e.export_uri.rsplit("/", 1)[1] for f, e in out["exports"].items()} == {
        "xml": "cut.xml",
        "fcpxml": "cut.fcpxml",
    }
    assert all(e.cut == cut for e in out["exports"].values())
    assert (out["default"].format, out["default"].export_uri) == ("otio", cut.otio_uri)
    assert out["default"].otio_uri == cut.otio_uri  # the cut's fields, as before formats
    assert out["no_cut"].reason == "NO_CUT"


async def test_clipmesh_export_writes_each_format_and_refuses_bad_input(mesh, project) -> None:
    _, made = project
    target = ("--target", mesh.target("previs"))
    for format, suffix in (
        ("otio", ".otio"),
        ("xml", ".xml"),
        ("fcpxml", ".fcpxml"),
        ("edl", ".edl"),
    ):
        code, out, err = await run_cli(
            "export", made.project_id, "--format", format, "--json", *target
        )
        assert code == 0, err
        answer = json.loads(out)
        assert answer["format"] == format and answer["mp4_uri"] == made.cut.mp4_uri
        assert Path(path_from_uri(answer["export_uri"])).name == "cut" + suffix
        assert Path(path_from_uri(answer["export_uri"])).stat().st_size > 0
    code, out, _ = await run_cli("export", made.project_id, "--format", "edl", *target)
    assert code == 0 and "cut.edl" in out
    code, _, err = await run_cli("export", made.project_id, "--format", "mov", *target)
    assert code == 2 and "'--format'" in err and "edl" in err
    code, _, err = await run_cli("export", "p-none", "--format", "edl", *target)
    (line,) = err.strip().splitlines()
    assert code == 1 and "NOT_FOUND [PROJECT_NOT_FOUND]" in line
