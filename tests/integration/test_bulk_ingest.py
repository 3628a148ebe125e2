"""`clipmesh bulk-ingest` on a real local Ray cluster against the real encoder, index and
orchestrator: the same videos, segments and vectors as IngestVideos; bad files failing alone
with their reasons; a re-run skipping what is indexed; a manifest with labels; the same bytes
listed twice written once; and the command's dry run, exit codes and errors."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest
import pytest_asyncio

from clipmesh.bulk import pipeline
from clipmesh.bulk.records import Outcome
from clipmesh.demo.library import (
    make_library,
    make_video,
    write_audio_only_mp4,
    write_not_a_video,
    write_truncated_mp4,
)
from clipmesh_api.orchestrator.v1 import ingest_pb2, ingest_pb2_grpc
from clipmesh_client.wire import ChannelPolicy
from tests.bulk import bulk_config, bulk_environ, bulk_run, held_videos, report_lines
from tests.mesh import TINY_ENCODER_ENV
from tests.support import run_cli

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(mesh_factory, tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    make_library(root / "library", count=8, seed=0)
    env = {"orchestrator": {"CLIPMESH_ORCHESTRATOR_ALLOWED_ROOTS": str(root)}}
    async with mesh_factory.in_process("encoder", "index", "orchestrator", env=env) as running:
        running.root = root
        running.encoder_config = running.configs["encoder"]
        yield running


@pytest.fixture(scope="module")
def ray_address(ray_cluster):
    """This process joins the test cluster as a driver once for the module."""
    yield ray_cluster.address
    pipeline.disconnect()


async def _ingest_videos(mesh, paths, collection: str) -> None:
    stub = mesh.stub(
        "orchestrator",
        ingest_pb2_grpc.IngestServiceStub,
        ChannelPolicy(timeout_s=300, max_attempts=1),
    )
    request = ingest_pb2.IngestVideosRequest(
        items=[ingest_pb2.IngestItem(uri=str(path)) for path in paths], collection=collection
    )
    events = [event async for event in stub.IngestVideos(request)]
    assert events[-1].summary.ingested == len(paths)


async def test_the_same_videos_segments_and_vectors_as_ingest_videos(
    mesh, ray_address, tmp_path
) -> None:
    library = mesh.root / "library"
    await _ingest_videos(mesh, sorted(library.glob("*.mp4")), "single")
    # The three ways to embed: in the worker that cut the video, in a separate actor pool
    # (the GPU layout, here on CPUs), and through the encoder service.
    ways = {
        "fused": {},
        "separate": {"embed_stage": "separate"},
        "through_encoder": {"encoder_target": mesh.target("encoder")},
    }
    for collection, settings in ways.items():
        config = bulk_config(mesh.target("index"), tmp_path, collection=collection, **settings)
        totals = await bulk_run(
            library,
            config,
            mesh.encoder_config,
            ray_address=ray_address,
            report=tmp_path / f"{collection}.jsonl",
        )
        assert (totals.done, totals.failed, totals.duplicates) == (8, 0, 0), collection

    single = await held_videos(mesh, "single")
    assert len(single) == 8
    for collection in ways:
        bulk = await held_videos(mesh, collection)
        assert bulk.keys() == single.keys()
        for sha, reference in single.items():
            video = bulk[sha]
            assert video.meta.video_id == reference.meta.video_id
            for field in ("uri", "title", "duration_s", "fps", "width", "height", "size_bytes"):
                assert getattr(video.meta, field) == getattr(reference.meta, field), field
            assert video.segment_count == reference.segment_count
            np.testing.assert_array_equal(video.times, reference.times)
            # The same keyframe JPEGs through the same preprocessing and weights; batches of
            # other sizes may round differently in the last bits, and the index keeps float16
            # (so rows are unit-length only to ~1e-4: normalised before comparing).
            cosines = np.sum(_unit(video.vectors) * _unit(reference.vectors), axis=1)
            assert cosines.min() > 0.9999, (collection, sha, cosines)


async def test_bad_files_fail_alone_with_their_reasons(mesh, ray_address, tmp_path) -> None:
    source = mesh.root / "mixed"
    good = make_library(source, count=2, seed=3)
    write_truncated_mp4(good[0].path, source / "truncated.mp4")
    write_not_a_video(source / "notes.mp4")
    write_audio_only_mp4(source / "audio-only.mp4")
    (source / "empty.mp4").write_bytes(b"")
    big = make_video(source / "long.mp4", seed=9, duration_s=40, shots=3, size=(640, 360))
    outside = mesh.root.parent / "outside.mp4"
    shutil.copyfile(good[1].path, outside)
    (source / "link-outside.mp4").symlink_to(outside)
    limit = (good[0].path.stat().st_size + big.path.stat().st_size) // 2
    assert max(g.path.stat().st_size for g in good) < limit < big.path.stat().st_size
    config = bulk_config(
        mesh.target("index"), tmp_path, collection="mixed", ingest_max_file_gb=limit / (1 << 30)
    )
    report = tmp_path / "report.jsonl"
    totals = await bulk_run(
        source, config, mesh.encoder_config, ray_address=ray_address, report=report
    )

    lines = report_lines(report)
    reasons = {
        name: lines[str(source / name)]["reason"]
        for name in (
            "truncated.mp4",
            "notes.mp4",
            "audio-only.mp4",
            "empty.mp4",
            "long.mp4",
            "link-outside.mp4",
        )
    }
    assert reasons == {
        "truncated.mp4": "CORRUPT_MEDIA",
        "notes.mp4": "NOT_A_VIDEO",
        "audio-only.mp4": "NOT_A_VIDEO",
        "empty.mp4": "NOT_A_VIDEO",
        "long.mp4": "MEDIA_TOO_LARGE",
        "link-outside.mp4": "OUTSIDE_ALLOWED_ROOTS",
    }
    assert all(lines[str(s.path)]["outcome"] == "done" for s in good)
    assert (totals.done, totals.failed) == (2, 6)
    assert totals.failure_reasons["NOT_A_VIDEO"] == 3
    assert set((await held_videos(mesh, "mixed")).keys()) == {_sha(s.path) for s in good}


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_a_rerun_skips_what_is_indexed(mesh, ray_address, tmp_path) -> None:
    library = mesh.root / "library"
    config = bulk_config(mesh.target("index"), tmp_path, collection="rerun")
    first = await bulk_run(
        library, config, mesh.encoder_config, ray_address=ray_address, report=tmp_path / "1.jsonl"
    )
    held = await held_videos(mesh, "rerun")
    again = await bulk_run(
        library, config, mesh.encoder_config, ray_address=ray_address, report=tmp_path / "2.jsonl"
    )
    assert (first.done, again.done, again.duplicates, again.failed) == (8, 0, 8, 0)
    assert {line["outcome"] for line in report_lines(tmp_path / "2.jsonl").values()} == {
        Outcome.DUPLICATE.value
    }
    after = await held_videos(mesh, "rerun")
    assert {sha: v.meta.create_time.ToNanoseconds() for sha, v in after.items()} == {
        sha: v.meta.create_time.ToNanoseconds() for sha, v in held.items()
    }, "a re-run rewrote videos it should have skipped"


async def test_the_same_bytes_listed_twice_are_written_once(mesh, ray_address, tmp_path) -> None:
    source = mesh.root / "twice"
    source.mkdir()
    original = next(iter(sorted((mesh.root / "library").glob("*.mp4"))))
    shutil.copyfile(original, source / "a.mp4")
    shutil.copyfile(original, source / "b.mp4")
    config = bulk_config(mesh.target("index"), tmp_path, collection="twice")
    report = tmp_path / "report.jsonl"
    totals = await bulk_run(
        source, config, mesh.encoder_config, ray_address=ray_address, report=report
    )
    assert (totals.done, totals.duplicates) == (1, 1)
    outcomes = sorted(line["outcome"] for line in report_lines(report).values())
    assert outcomes == ["done", "duplicate"]
    assert len(await held_videos(mesh, "twice")) == 1


async def test_a_manifest_with_labels_and_paths_outside_its_roots(
    mesh, ray_address, tmp_path
) -> None:
    library = sorted((mesh.root / "library").glob("*.mp4"))[:2]
    manifest = mesh.root / "manifest.txt"  # its directory is the root: the library is inside
    manifest.write_text(
        "# two videos and a path outside the roots\n"
        + "".join(f"{path}\n" for path in library)
        + "\n/etc/hostname\n"
    )
    config = bulk_config(mesh.target("index"), tmp_path, collection="manifest")
    report = tmp_path / "report.jsonl"
    totals = await bulk_run(
        manifest,
        config,
        mesh.encoder_config,
        ray_address=ray_address,
        report=report,
        labels={"batch": "m1"},
    )
    assert (totals.listed, totals.done, totals.failed) == (3, 2, 1)
    assert report_lines(report)["/etc/hostname"]["reason"] == "OUTSIDE_ALLOWED_ROOTS"
    held = await held_videos(mesh, "manifest")
    assert [dict(v.meta.labels) for v in held.values()] == [{"batch": "m1"}] * 2


async def test_a_model_the_workers_cannot_load_ends_the_run_with_one_line(
    mesh, ray_cluster, tmp_path, monkeypatch
) -> None:
    environ = {
        **bulk_environ(mesh.target("index"), tmp_path, collection="unloadable"),
        **TINY_ENCODER_ENV,
        "CLIPMESH_ENCODER_WEIGHTS": f"checkpoint:{tmp_path}/missing.safetensors",
    }
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    code, _, err = await run_cli(
        "bulk-ingest",
        str(mesh.root / "library"),
        "--ray-address",
        ray_cluster.address,
        "--report",
        str(tmp_path / "report.jsonl"),
    )
    assert code == 1
    # Ray Data logs the worker's stack trace (pointing to its log files), and the workers'
    # output reaches the driver's stderr when it comes; the command's own word is one line.
    ours = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(ours) == 1, err[-3000:]
    assert ours[0].startswith("error: the Ray pipeline failed") and "missing.safetensors" in ours[0]


async def test_the_command_dry_run_exit_codes_and_errors(mesh, tmp_path, monkeypatch) -> None:
    environ = bulk_environ(mesh.target("index"), tmp_path, collection="cli")
    environ.update(TINY_ENCODER_ENV)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    library = mesh.root / "library"

    code, out, err = await run_cli("bulk-ingest", str(library), "--dry-run")
    assert code == 0, err
    assert "dry run: 8 files" in out + err and "nothing written" in out + err
    assert await held_videos(mesh, "cli") == {}

    code, _, err = await run_cli("bulk-ingest", str(tmp_path / "missing"), "--dry-run")
    assert code == 1 and "SOURCE_NOT_FOUND" in err

    monkeypatch.setenv("CLIPMESH_BULK_INGEST_WRITE_BATCH_VIDEOS", "0")
    code, _, err = await run_cli("bulk-ingest", str(library), "--dry-run")
    assert code == 2 and "CLIPMESH_BULK_INGEST_WRITE_BATCH_VIDEOS" in err

    monkeypatch.setenv("CLIPMESH_BULK_INGEST_WRITE_BATCH_VIDEOS", "4")
    monkeypatch.setenv("CLIPMESH_BULK_INGEST_INDEX_TARGET", "127.0.0.1:1")
    code, _, err = await run_cli("bulk-ingest", str(library), "--dry-run")
    assert code == 1 and "UNAVAILABLE" in err.upper()

    code, _, err = await run_cli("bulk-ingest", str(library), "--label", "novalue", "--dry-run")
    assert code == 2 and "KEY=VALUE" in err
