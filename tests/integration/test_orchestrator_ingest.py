"""IngestVideos end to end over the real encoder, index and orchestrator: a generated library
goes in with progress, a frame taken between keyframes finds its source and moment, the same
files are recognised as duplicates, and bad files fail one by one while the batch goes on."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import sys

import pytest
import pytest_asyncio

from clipmesh.demo.library import make_library, write_not_a_video, write_truncated_mp4
from clipmesh.encoder.config import EncoderConfig
from clipmesh.encoder.server import create_app as create_encoder
from clipmesh.index.config import IndexConfig
from clipmesh.index.server import create_app as create_index
from clipmesh.orchestrator.config import OrchestratorConfig
from clipmesh.orchestrator.frames import frames_at
from clipmesh.orchestrator.server import create_app as create_orchestrator
from clipmesh.runtime.channels import ChannelOptions, create_channel
from clipmesh.runtime.config import load_config
from clipmesh_api.orchestrator.v1 import ingest_pb2, ingest_pb2_grpc, search_pb2, search_pb2_grpc
from tests.support import serve_in_process

pytestmark = pytest.mark.asyncio(loop_scope="module")
Stage = ingest_pb2.IngestStage


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(tmp_path_factory):
    root = tmp_path_factory.mktemp("library")
    specs = make_library(root / "clips", count=3, seed=5)
    encoder_config = load_config(
        EncoderConfig,
        environ={
            "CLIPMESH_ENCODER_MODEL": "clipmesh-tiny",
            "CLIPMESH_ENCODER_WEIGHTS": "random:0",
            "CLIPMESH_ENCODER_PRECISION": "fp32",
        },
    )
    index_config = load_config(
        IndexConfig, environ={"CLIPMESH_INDEX_DATA_DIR": str(tmp_path_factory.mktemp("index"))}
    )
    async with (
        serve_in_process(encoder_config, create_encoder(encoder_config)) as encoder,
        serve_in_process(index_config, create_index(index_config)) as index,
    ):
        config = load_config(
            OrchestratorConfig,
            environ={
                "CLIPMESH_ORCHESTRATOR_ENCODER_TARGET": encoder.target,
                "CLIPMESH_ORCHESTRATOR_INDEX_TARGET": index.target,
                "CLIPMESH_ORCHESTRATOR_ALLOWED_ROOTS": str(root),
                "CLIPMESH_ORCHESTRATOR_DATA_DIR": str(tmp_path_factory.mktemp("orchestrator")),
            },
        )
        async with serve_in_process(config, create_orchestrator(config)) as orchestrator:
            channel = create_channel(
                orchestrator.target, ChannelOptions(timeout_s=120, max_attempts=1)
            )
            orchestrator.ingest = ingest_pb2_grpc.IngestServiceStub(channel)
            orchestrator.search = search_pb2_grpc.SearchServiceStub(channel)
            orchestrator.root, orchestrator.specs = root, specs
            yield orchestrator
            await channel.close()


async def _ingest(mesh, uris, **fields):
    request = ingest_pb2.IngestVideosRequest(
        items=[ingest_pb2.IngestItem(uri=str(u)) for u in uris], **fields
    )
    events = [event async for event in mesh.ingest.IngestVideos(request)]
    progress = [e.progress for e in events if e.WhichOneof("event") == "progress"]
    final = {
        p.uri: p
        for p in progress
        if p.stage
        in (Stage.INGEST_STAGE_DONE, Stage.INGEST_STAGE_DUPLICATE, Stage.INGEST_STAGE_FAILED)
    }
    return progress, final, events[-1].summary


async def test_a_library_is_ingested_with_progress_and_a_summary(mesh) -> None:
    uris = [spec.path for spec in mesh.specs]
    progress, final, summary = await _ingest(mesh, uris)
    assert (summary.ingested, summary.failed, summary.duplicates) == (3, 0, 0)
    assert summary.video_seconds == pytest.approx(sum(s.duration_s for s in mesh.specs), abs=0.5)
    stages = {p.stage for p in progress}
    assert {
        Stage.INGEST_STAGE_PROBING,
        Stage.INGEST_STAGE_ENCODING,
        Stage.INGEST_STAGE_DONE,
    } <= stages
    assert all(
        final[str(u)].segments >= len(spec.shots) for u, spec in zip(uris, mesh.specs, strict=True)
    )
    listed = await mesh.ingest.ListVideos(ingest_pb2.ListVideosRequest())
    assert sorted(v.title for v in listed.videos) == sorted(s.path.stem for s in mesh.specs)


async def test_a_frame_between_keyframes_finds_its_video_and_moment(mesh) -> None:
    spec = mesh.specs[1]
    shot = spec.shots[-1]
    when = shot.start_s + 0.37 * (shot.end_s - shot.start_s)
    (picture,) = frames_at(spec.path, [when], max_side=320)
    width, height = picture.size
    cropped = picture.crop((width // 10, height // 10, width - width // 10, height - height // 10))
    buffer = io.BytesIO()
    cropped.save(buffer, format="JPEG", quality=70)  # cropped and re-compressed, like a still
    response = await mesh.search.SearchVideos(
        search_pb2.SearchVideosRequest(
            parts=[search_pb2.QueryPart(image=buffer.getvalue())], top_k=3
        )
    )
    best = response.hits[0]
    assert best.video.title == spec.path.stem
    assert any(m.start_s <= when <= m.end_s for m in best.moments)


async def test_the_same_files_again_are_duplicates(mesh) -> None:
    copy = mesh.root / "clips" / "copy-of-first.mp4"
    shutil.copy(mesh.specs[0].path, copy)
    _, final, summary = await _ingest(mesh, [mesh.specs[0].path, copy])
    assert (summary.ingested, summary.duplicates) == (0, 2)
    assert {p.stage for p in final.values()} == {Stage.INGEST_STAGE_DUPLICATE}


async def test_bad_files_fail_alone_with_their_reasons(mesh, tmp_path) -> None:
    broken = mesh.root / "broken"
    broken.mkdir(exist_ok=True)
    truncated, text = broken / "truncated.mp4", broken / "notes.mp4"
    write_truncated_mp4(mesh.specs[2].path, truncated)
    write_not_a_video(text)
    outside = tmp_path / "outside.mp4"
    shutil.copy(mesh.specs[2].path, outside)
    (broken / "escape.mp4").symlink_to(outside)
    good = broken / "fresh.mp4"
    make_library(broken / "more", count=1, seed=99)[0].path.rename(good)
    uris = [
        truncated,
        text,
        outside,
        broken / "escape.mp4",
        mesh.root / ".." / "x.mp4",
        "http://example.com/a.mp4",
        "concat:a.mp4|b.mp4",
        broken / "missing.mp4",
        good,
    ]
    _, final, summary = await _ingest(mesh, uris)
    reasons = {uri.rsplit("/", 1)[-1]: p.error.reason for uri, p in final.items()}
    assert reasons["truncated.mp4"] == "CORRUPT_MEDIA"
    assert reasons["notes.mp4"] == "NOT_A_VIDEO"
    assert reasons["outside.mp4"] == "OUTSIDE_ALLOWED_ROOTS"
    assert reasons["escape.mp4"] == "OUTSIDE_ALLOWED_ROOTS"
    assert reasons["x.mp4"] == "OUTSIDE_ALLOWED_ROOTS"
    assert reasons["a.mp4"] == "UNSUPPORTED_URI_SCHEME"
    assert reasons["concat:a.mp4|b.mp4"] == "UNSUPPORTED_URI_SCHEME"
    assert reasons["missing.mp4"] == "FILE_NOT_FOUND"
    assert final[str(good)].stage == Stage.INGEST_STAGE_DONE
    assert (summary.ingested, summary.failed) == (1, 8)
    assert all(p.error.message for p in final.values() if p.stage == Stage.INGEST_STAGE_FAILED)


async def _cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "clipmesh",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode, out.decode(), err.decode()


async def test_the_cli_searches_and_lists_for_scripts_and_people(mesh, tmp_path) -> None:
    spec = mesh.specs[0]
    (picture,) = frames_at(spec.path, [spec.shots[0].end_s / 2], max_side=320)
    still = tmp_path / "still.jpg"
    picture.save(still, quality=80)
    code, out, _ = await _cli("search", "--image", str(still), "--json", "--target", mesh.target)
    assert code == 0
    assert json.loads(out)["hits"][0]["video"]["title"] == spec.path.stem
    code, out, _ = await _cli("videos", "list", "--json", "--target", mesh.target)
    assert code == 0 and len(json.loads(out)) >= 3
    code, out, _ = await _cli(
        "search", "--text", "港口 🌅", "--top-k", "2", "--target", mesh.target
    )
    assert code == 0 and "videos" in out


async def test_cli_errors_are_one_clear_line_and_a_failing_exit(mesh, tmp_path) -> None:
    fake = tmp_path / "fake.jpg"
    fake.write_bytes(b"GIF89a not really")
    code, _, err = await _cli("search", "--image", str(fake), "--target", mesh.target)
    assert code == 1
    (line,) = err.strip().splitlines()
    assert "INVALID_ARGUMENT [UNSUPPORTED_IMAGE_FORMAT]" in line and "parts[0].image" in line
