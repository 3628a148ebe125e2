"""SIGKILL the orchestrator in the middle of an ingest, start it again, and re-run the same
ingest: it finishes, every video reported done before the kill is recognised as a duplicate,
and the index holds each video exactly once with exactly the segments of one clean ingest.

A video the orchestrator finished in the instant before the kill, whose "done" never reached
the caller, is legitimately a duplicate on the re-run too: what matters is that its segments are
those of one whole ingest, which the test checks against a clean ingest into a second collection.

The duplicate check itself (re-ingesting a finished batch) is in
tests/integration/test_orchestrator_ingest.py; here the first run dies half-way.
"""

from __future__ import annotations

import pytest

from clipmesh.demo.library import make_library
from clipmesh_client import Client, ClipmeshError, IngestProgress, IngestSummary

VIDEOS = 4


@pytest.mark.timeout(120)
def test_rerunning_an_ingest_cut_by_a_sigkill_finishes_without_duplicates(
    start_services, clips_dir
) -> None:
    specs = make_library(clips_dir, count=VIDEOS, seed=11, size=(160, 90))
    paths = [spec.path for spec in specs]
    _, _, orchestrator = start_services("encoder", "index", "orchestrator")

    done_before_kill: dict[str, int] = {}  # video id → segments, as reported before the kill
    with Client(orchestrator.target, max_attempts=1) as client:
        try:
            for event in client.ingest(paths, timeout_s=60):
                if isinstance(event, IngestProgress) and event.stage == "done":
                    done_before_kill[event.video_id] = event.segments
                    orchestrator.kill()  # the other video in flight dies half-way
        except ClipmeshError:
            pass  # the stream ends with the orchestrator
    assert 0 < len(done_before_kill) < VIDEOS, "the kill did not land mid-ingest"

    orchestrator.start()
    orchestrator.wait_serving()
    with Client(orchestrator.target, max_attempts=1) as client:
        events = list(client.ingest(paths, timeout_s=60))
        videos = list(client.list_videos())
        stored = {v.video_id: client.get_video(v.video_id).segments for v in videos}
        list(client.ingest(paths, collection="control", timeout_s=60))
        clean = {
            v.video_id: client.get_video(v.video_id, collection="control").segments
            for v in client.list_videos(collection="control")
        }
    summary = events[-1]
    ended = {e.video_id: e for e in events if isinstance(e, IngestProgress)}  # last per video
    duplicates = {video_id for video_id, e in ended.items() if e.stage == "duplicate"}
    reported = {video_id: e.segments for video_id, e in ended.items() if e.stage == "done"}
    reported |= done_before_kill

    survived = len(done_before_kill.keys() & duplicates)
    unacknowledged = len(duplicates - done_before_kill.keys())
    print(
        f"videos: {VIDEOS}, done before the kill (acknowledged): {len(done_before_kill)}, "
        f"survived as duplicates on the re-run: {survived}, "
        f"lost: {len(done_before_kill) - survived}, "
        f"finished but unacknowledged at the kill: {unacknowledged}, "
        f"ingested on the re-run: {summary.ingested}, "
        f"in the index: {len(videos)} videos, {sum(stored.values())} segments"
    )
    assert isinstance(summary, IngestSummary)
    assert summary.failed == 0
    assert summary.ingested + summary.duplicates == VIDEOS
    assert survived == len(done_before_kill)
    assert len(videos) == VIDEOS
    assert len({v.content_sha256 for v in videos}) == VIDEOS
    assert {v: stored.get(v) for v in reported} == reported  # what was reported is what is stored
    assert len(clean) == VIDEOS
    assert stored == clean  # each video's segments are one whole ingest's, none doubled or cut
