"""IngestVideos end to end over the real encoder, index and orchestrator: a generated library
goes in with progress, a frame taken between keyframes finds its source and moment, the same
files are recognised as duplicates, and bad files fail one by one while the batch goes on."""

from __future__ import annotations

import json
import shutil

import grpc
import pytest
import pytest_asyncio

from clipmesh.demo.library import (
    make_library,
    make_video,
    still_from,
    write_not_a_video,
    write_truncated_mp4,
)
from clipmesh.media.frames import frames_at
from clipmesh_api.orchestrator.v1 import ingest_pb2, ingest_pb2_grpc, search_pb2, search_pb2_grpc
from clipmesh_client.wire import ChannelPolicy
from tests.media import free_box, mp4_relaid
from tests.support import run_cli, scrape_metrics

pytestmark = pytest.mark.asyncio(loop_scope="module")
Stage = ingest_pb2.IngestStage


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(mesh_factory, tmp_path_factory):
    root = tmp_path_factory.mktemp("library")
    specs = make_library(root / "clips", count=3, seed=5)
    env = {"orchestrator": {"CLIPMESH_ORCHESTRATOR_ALLOWED_ROOTS": str(root)}}
    async with mesh_factory.in_process("encoder", "index", "orchestrator", env=env) as running:
        calls = ChannelPolicy(timeout_s=120, max_attempts=1)
        running.ingest = running.stub("orchestrator", ingest_pb2_grpc.IngestServiceStub, calls)
        running.search = running.stub("orchestrator", search_pb2_grpc.SearchServiceStub, calls)
        running.root, running.specs = root, specs
        running.orchestrator = running.services["orchestrator"]
        yield running


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
    still = still_from(spec.path, when)  # cropped and re-compressed, like a still from an edit
    response = await mesh.search.SearchVideos(
        search_pb2.SearchVideosRequest(parts=[search_pb2.QueryPart(image=still)], top_k=3)
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


async def test_the_same_new_bytes_twice_in_one_request_are_ingested_once(mesh) -> None:
    # Regression: both copies passed the duplicate check while neither was written yet, so
    # the video was decoded and embedded twice and counted as ingested twice.
    spec = make_video(mesh.root / "clips" / "twice.mp4", seed=77, duration_s=6, shots=2)
    copy = mesh.root / "clips" / "twice-copy.mp4"
    shutil.copy(spec.path, copy)
    progress, _, summary = await _ingest(mesh, [spec.path, spec.path, copy])
    failures = [p.error for p in progress if p.stage == Stage.INGEST_STAGE_FAILED]
    assert (summary.ingested, summary.duplicates, summary.failed) == (1, 2, 0), failures
    ends = [
        p for p in progress if p.stage in (Stage.INGEST_STAGE_DONE, Stage.INGEST_STAGE_DUPLICATE)
    ]
    assert sorted(p.stage for p in ends) == [
        Stage.INGEST_STAGE_DONE,
        Stage.INGEST_STAGE_DUPLICATE,
        Stage.INGEST_STAGE_DUPLICATE,
    ]
    assert {p.video_id for p in ends} == {ends[0].video_id}


async def test_an_mp4_whose_moov_follows_a_large_free_box_is_ingested(mesh) -> None:
    # Regression (outside check): such a file was reported CORRUPT_MEDIA. The padding is
    # larger than FFmpeg's probe size.
    spec = make_video(mesh.root / "clips" / "padded-source.mp4", seed=78, duration_s=6, shots=2)
    padded = mesh.root / "clips" / "padded.mp4"
    layout = [b"ftyp", free_box(6_000_000), b"moov", b"mdat"]
    padded.write_bytes(mp4_relaid(spec.path.read_bytes(), layout))
    _, final, summary = await _ingest(mesh, [spec.path, padded])
    assert (summary.ingested, summary.failed) == (2, 0), [p.error for p in final.values()]
    assert final[str(padded)].stage == Stage.INGEST_STAGE_DONE
    videos = [
        await mesh.ingest.GetVideo(ingest_pb2.GetVideoRequest(video_id=final[str(p)].video_id))
        for p in (spec.path, padded)
    ]
    assert videos[0].segments == videos[1].segments > 0
    assert videos[0].video.duration_s == videos[1].video.duration_s


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


async def test_the_cli_searches_and_lists_for_scripts_and_people(mesh, tmp_path) -> None:
    spec = mesh.specs[0]
    (picture,) = frames_at(spec.path, [spec.shots[0].end_s / 2], max_side=320)
    still = tmp_path / "still.jpg"
    picture.save(still, quality=80)
    code, out, _ = await run_cli(
        "search", "--image", str(still), "--json", "--target", mesh.target("orchestrator")
    )
    assert code == 0
    assert json.loads(out)["hits"][0]["video"]["title"] == spec.path.stem
    code, out, _ = await run_cli(
        "videos", "list", "--json", "--target", mesh.target("orchestrator")
    )
    assert code == 0 and len(json.loads(out)) >= 3
    code, out, _ = await run_cli(
        "search", "--text", "港口 🌅", "--top-k", "2", "--target", mesh.target("orchestrator")
    )
    assert code == 0 and "videos" in out
    target = ("--target", mesh.target("orchestrator"))
    code, out, _ = await run_cli("search", "--image", str(still), "--json", *target)
    everything = json.loads(out)["hits"]
    assert code == 0 and len(everything) >= 2
    threshold = str((everything[0]["score"] + everything[1]["score"]) / 2)
    code, out, _ = await run_cli(
        "search", "--image", str(still), "--min-score", threshold, "--json", *target
    )
    cut = json.loads(out)
    assert code == 0 and [hit["video"]["title"] for hit in cut["hits"]] == [spec.path.stem]
    assert cut["hits_below_min_score"] == len(everything) - 1
    code, out, _ = await run_cli("search", "--image", str(still), "--min-score", threshold, *target)
    assert code == 0 and f"{len(everything) - 1} below --min-score left out" in out
    code, _, err = await run_cli("search", "--text", "x", "--min-score", "80", *target)
    assert code == 2 and "--min-score" in err


async def test_cli_errors_are_one_clear_line_and_a_failing_exit(mesh, tmp_path) -> None:
    fake = tmp_path / "fake.jpg"
    fake.write_bytes(b"GIF89a not really")
    code, _, err = await run_cli(
        "search", "--image", str(fake), "--target", mesh.target("orchestrator")
    )
    assert code == 1
    (line,) = err.strip().splitlines()
    assert "INVALID_ARGUMENT [UNSUPPORTED_IMAGE_FORMAT]" in line and "parts[0].image" in line


async def test_eval_reports_recall_moments_and_latency_per_category(mesh, tmp_path) -> None:
    await _ingest(mesh, [spec.path for spec in mesh.specs])  # duplicates if already in
    lines = []
    for spec in mesh.specs:
        shot = spec.shots[-1]
        when = round(shot.start_s + 0.4 * (shot.end_s - shot.start_s), 2)
        lines.append(
            {
                "id": f"{spec.path.stem}-still",
                "category": "stills",
                "frame": {"video": str(spec.path), "at_s": when},
                "expected": [spec.path.name],
                "expected_time_s": when,
            }
        )
    lines.append({"id": "ghost", "category": "absent", "text": "雾中的港口", "expected": ["ghost"]})
    queries = tmp_path / "queries.jsonl"
    queries.write_text("\n".join(json.dumps(line, ensure_ascii=False) for line in lines))
    code, out, err = await run_cli(
        "eval", str(queries), "--json", "--target", mesh.target("orchestrator")
    )
    assert code == 0, err
    report = json.loads(out)
    stills, absent = report["groups"]["stills"], report["groups"]["absent"]
    assert stills["queries"] == 3 and stills["recall@1"] == 1.0 and stills["mrr"] == 1.0
    assert stills["moment_judged"] == 3 and stills["moment_hit_share"] == 1.0
    assert absent["recall@10"] == 0.0 and absent["moment_hit_share"] is None
    assert report["groups"]["overall"]["recall@1"] == pytest.approx(0.75)
    assert report["groups"]["overall"]["latency_p50_ms"] > 0
    assert {q["id"]: q["rank"] for q in report["queries"]}["ghost"] is None


async def test_eval_refuses_a_malformed_query_file_naming_the_line(mesh, tmp_path) -> None:
    queries = tmp_path / "queries.jsonl"
    queries.write_text('{"text": "fine", "expected": ["a"]}\n{"text": "no expected"}\n')
    code, _, err = await run_cli("eval", str(queries), "--target", mesh.target("orchestrator"))
    assert code == 2
    assert "queries.jsonl:2: expected must be a video name" in err


async def test_metrics_count_searches_cache_budget_and_ingest_outcomes(mesh, tmp_path) -> None:
    before = await scrape_metrics(mesh.orchestrator.metrics_port)
    still = still_from(mesh.specs[0].path, 1.0)
    request = search_pb2.SearchVideosRequest(parts=[search_pb2.QueryPart(image=still)], top_k=2)
    await mesh.search.SearchVideos(request)
    await mesh.search.SearchVideos(request)  # the same query again: a cache hit
    with pytest.raises(grpc.aio.AioRpcError):  # 1 ms cannot cover an encoder call
        await mesh.search.SearchVideos(
            search_pb2.SearchVideosRequest(
                parts=[search_pb2.QueryPart(text="budget")], budget_ms=1, skip_cache=True
            )
        )
    junk = mesh.root / "junk.mp4"
    write_not_a_video(junk)
    await _ingest(mesh, [junk])
    after = await scrape_metrics(mesh.orchestrator.metrics_port)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert grew("clipmesh_search_seconds_count", kind="image") == 1  # the hit is not a search
    assert grew("clipmesh_search_cache_lookups_total", result="miss") >= 1
    assert grew("clipmesh_search_cache_lookups_total", result="hit") == 1
    assert grew("clipmesh_search_budget_exceeded_total") == 1
    assert grew("clipmesh_search_stage_seconds_count", stage="encode") >= 1
    assert grew("clipmesh_ingest_failures_total", reason="NOT_A_VIDEO") == 1
    assert grew("clipmesh_ingest_videos_total", outcome="failed") == 1
    assert after[("clipmesh_ingest_segments_total", ())] >= sum(len(s.shots) for s in mesh.specs)
    assert after[("clipmesh_ingest_video_seconds_total", ())] > 0
