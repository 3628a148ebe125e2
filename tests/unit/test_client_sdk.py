"""The SDK's request building, filters and answer conversion: pure, no network."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from google.protobuf import timestamp_pb2

from clipmesh_api.common.v1 import common_pb2
from clipmesh_api.orchestrator.v1 import ingest_pb2, search_pb2
from clipmesh_client import (
    Client,
    IngestProgress,
    IngestSummary,
    InvalidArgumentError,
    all_of,
    any_of,
    between,
    equals,
    messages,
    models,
    not_,
)
from clipmesh_client.errors import LOCAL_DOMAIN

# Nothing listens on port 1; a call that reached the network would fail UNAVAILABLE instead.
UNREACHABLE = "127.0.0.1:1"


def test_positive_parts_weigh_1_and_not_parts_weigh_minus_1() -> None:
    parts = messages.query_parts(
        image=b"\xff\xd8jpeg",
        text="a red car",
        like=("v1", 2.0, 4.5),
        not_text="night",
        not_image=b"png",
    )
    assert [(p.WhichOneof("kind"), p.weight) for p in parts] == [
        ("image", 1.0),
        ("text", 1.0),
        ("clip", 1.0),
        ("text", -1.0),
        ("image", -1.0),
    ]
    clip = parts[2].clip
    assert (clip.video_id, clip.span.start_s, clip.span.end_s) == ("v1", 2.0, 4.5)


def test_caller_parts_come_after_the_keyword_parts_unchanged() -> None:
    extra = search_pb2.QueryPart(text="sunset", weight=0.5)
    parts = messages.query_parts(text="beach", parts=[extra])
    assert [p.text for p in parts] == ["beach", "sunset"]
    assert parts[1].weight == 0.5


def test_search_request_carries_every_option() -> None:
    only_generated = equals("source", "generated")
    request = messages.search_request(
        text="dog",
        top_k=7,
        max_moments=2,
        filter=only_generated,
        collection="previs",
        budget_ms=250,
        skip_cache=True,
    )
    assert request.top_k == 7
    assert request.max_moments_per_video == 2
    assert request.filter == only_generated
    assert (request.collection, request.budget_ms, request.skip_cache) == ("previs", 250, True)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({}, "parts"),
        ({"not_text": "night"}, "parts"),
        ({"parts": [search_pb2.QueryPart(text="x", weight=-2)]}, "parts"),
        ({"parts": [search_pb2.QueryPart(weight=1)]}, "parts[0]"),
        ({"text": ""}, "text"),
        ({"image": b""}, "image"),
        ({"like": ("", 0.0, 1.0)}, "like"),
    ],
)
def test_queries_without_a_positive_usable_part_are_refused_locally(query, field) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        messages.query_parts(**query)
    assert raised.value.metadata["field"] == field
    assert raised.value.domain == LOCAL_DOMAIN


def test_a_part_of_weight_0_counts_as_positive() -> None:
    parts = messages.query_parts(parts=[search_pb2.QueryPart(text="x")])
    assert len(parts) == 1


def test_client_search_refuses_a_negative_only_query_without_calling() -> None:
    with Client(UNREACHABLE, max_attempts=1) as client, pytest.raises(InvalidArgumentError):
        client.search(not_text="night", timeout_s=0.5)


def test_ingest_sends_paths_as_given_with_titles_and_labels() -> None:
    request = messages.ingest_request(
        ["clips/a.mp4", Path("/data/b.mov"), "file:///data/c.mkv"],
        collection="raw",
        labels={"project": "demo", "take": 3},
        titles=["A", "B", "C"],
    )
    assert [i.uri for i in request.items] == ["clips/a.mp4", "/data/b.mov", "file:///data/c.mkv"]
    assert [i.title for i in request.items] == ["A", "B", "C"]
    assert all(dict(i.labels) == {"project": "demo", "take": "3"} for i in request.items)
    assert request.collection == "raw"


@pytest.mark.parametrize(
    ("paths", "titles"),
    [("one.mp4", None), ([], None), (["a.mp4", "b.mp4"], ["only one"])],
)
def test_ingest_refuses_a_bare_path_no_paths_or_mismatched_titles(paths, titles) -> None:
    with pytest.raises(InvalidArgumentError):
        messages.ingest_request(paths, titles=titles)


def test_list_requests_follow_the_page_token_until_it_is_empty() -> None:
    first = messages.list_request(collection="c", filter=equals("width", 1920), page_size=3)
    assert (first.page.page_size, first.page.page_token) == (3, "")
    page = ingest_pb2.ListVideosResponse(page=common_pb2.PageResponse(next_page_token="t2"))
    second = messages.next_page_request(first, page)
    assert second is not None
    assert (second.page.page_token, second.page.page_size, second.collection) == ("t2", 3, "c")
    assert second.filter == first.filter
    assert first.page.page_token == ""  # the previous request is not modified
    assert messages.next_page_request(second, ingest_pb2.ListVideosResponse()) is None


def test_delete_refuses_a_bare_id() -> None:
    with pytest.raises(InvalidArgumentError):
        messages.delete_request("v1")
    assert list(messages.delete_request(["v1", "v2"]).video_ids) == ["v1", "v2"]


def test_filter_helpers_build_one_clause_each_and_all_of_joins_them() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    combined = all_of(
        equals("labels.project", "demo"),
        any_of("source", ["ingested", "generated"]),
        between("duration_s", min=5, max=60, max_exclusive=True),
        between("create_time", min=start),
        not_(equals("width", 640)),
    )
    project, source, duration, created, width = combined.clauses
    assert (project.field, project.equals, project.negate) == ("labels.project", "demo", False)
    assert list(source.any_of.values) == ["ingested", "generated"]
    assert (duration.range.min, duration.range.max) == (5.0, 60.0)
    assert (duration.range.min_exclusive, duration.range.max_exclusive) == (False, True)
    assert created.range.min == start.timestamp()
    assert not created.range.HasField("max")  # an open bound stays unset
    assert (width.field, width.equals, width.negate) == ("width", "640", True)


def test_not_twice_restores_the_clause_and_leaves_the_input_alone() -> None:
    wide = equals("width", 1920)
    assert not_(not_(wide)) == wide
    assert not wide.clauses[0].negate


@pytest.mark.parametrize(
    "build",
    [
        lambda: between("duration_s"),
        lambda: any_of("source", "ingested"),
        lambda: any_of("source", []),
        lambda: equals("", "x"),
        lambda: not_(all_of(equals("a", 1), equals("b", 2))),
        lambda: between("create_time", min=datetime(2024, 1, 1)),  # naive: ambiguous
    ],
)
def test_malformed_filters_are_refused(build) -> None:
    with pytest.raises(InvalidArgumentError):
        build()


def _video_proto(video_id: str = "v1") -> common_pb2.Video:
    return common_pb2.Video(
        video_id=video_id,
        collection="default",
        uri="/data/beach.mp4",
        title="Beach",
        duration_s=12.5,
        fps=25.0,
        width=1920,
        height=1080,
        size_bytes=1_234_567,
        source=common_pb2.VIDEO_SOURCE_GENERATED,
        create_time=timestamp_pb2.Timestamp(seconds=1_700_000_000),
        labels={"project": "demo"},
        content_sha256="ab" * 32,
    )


def test_videos_convert_with_readable_source_and_an_aware_timestamp() -> None:
    video = models.video_from_proto(_video_proto())
    assert video == models.Video(
        video_id="v1",
        collection="default",
        uri="/data/beach.mp4",
        title="Beach",
        duration_s=12.5,
        fps=25.0,
        width=1920,
        height=1080,
        size_bytes=1_234_567,
        source="generated",
        created_at=datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
        labels={"project": "demo"},
        content_sha256="ab" * 32,
    )
    bare = models.video_from_proto(common_pb2.Video(video_id="v2"))
    assert (bare.created_at, bare.source) == (None, "")


def test_search_results_convert_hits_moments_and_timings() -> None:
    response = search_pb2.SearchVideosResponse(
        hits=[
            common_pb2.VideoHit(
                video=_video_proto(),
                score=0.75,
                moments=[
                    common_pb2.Moment(
                        start_s=1, end_s=3, peak_s=2, score=0.75, thumbnail_uri="t.jpg"
                    )
                ],
            )
        ],
        degraded=True,
        timings=[
            common_pb2.StageTiming(stage="encode", duration_ms=4.0),
            common_pb2.StageTiming(stage="index.search", duration_ms=1.5),
            common_pb2.StageTiming(stage="index.search", duration_ms=0.5),
        ],
        cache_hit=True,
        model_id="ViT-B-32",
        warnings=["random weights"],
    )
    result = models.search_result_from_proto(response)
    (hit,) = result.hits
    assert hit.video.video_id == "v1"
    assert hit.score == pytest.approx(0.75)
    assert hit.moments == (models.Moment(1.0, 3.0, 2.0, 0.75, "t.jpg"),)
    assert result.timings_ms == {"encode": 4.0, "index.search": 2.0}
    assert (result.degraded, result.cache_hit, result.model_id) == (True, True, "ViT-B-32")
    assert result.warnings == ("random weights",)


def test_ingest_events_convert_stages_errors_and_unknown_eta() -> None:
    failed = models.ingest_event_from_proto(
        ingest_pb2.IngestVideosResponse(
            progress=ingest_pb2.VideoProgress(
                uri="bad.mp4",
                stage=ingest_pb2.INGEST_STAGE_FAILED,
                eta_s=-1,
                error=ingest_pb2.IngestError(reason="NOT_A_VIDEO", message="no video stream"),
            )
        )
    )
    assert failed == IngestProgress(
        uri="bad.mp4",
        stage="failed",
        eta_s=None,
        error_reason="NOT_A_VIDEO",
        error_message="no video stream",
    )
    assert failed.finished
    shots = models.ingest_event_from_proto(
        ingest_pb2.IngestVideosResponse(
            progress=ingest_pb2.VideoProgress(
                uri="a.mp4", stage=ingest_pb2.INGEST_STAGE_DETECTING_SHOTS, eta_s=3.5
            )
        )
    )
    assert (shots.stage, shots.eta_s, shots.finished) == ("detecting_shots", 3.5, False)
    summary = models.ingest_event_from_proto(
        ingest_pb2.IngestVideosResponse(
            summary=ingest_pb2.IngestSummary(ingested=2, failed=1, segments=40, wall_seconds=9.0)
        )
    )
    assert summary == IngestSummary(ingested=2, failed=1, segments=40, wall_seconds=9.0)


def test_stages_unknown_to_this_sdk_read_as_empty() -> None:
    assert models.stage_name(ingest_pb2.INGEST_STAGE_UNSPECIFIED) == ""
    assert models.stage_name(99) == ""
    assert models.stage_name(ingest_pb2.INGEST_STAGE_DUPLICATE) == "duplicate"


@pytest.mark.parametrize("options", [{"timeout_s": 0}, {"max_attempts": 0}, {"max_message_mb": 0}])
def test_client_options_out_of_range_are_refused(options) -> None:
    with pytest.raises(ValueError):
        Client(UNREACHABLE, **options)


def test_datetimes_in_other_zones_compare_by_instant() -> None:
    paris = timezone(timedelta(hours=1))
    here = between("create_time", max=datetime(2024, 1, 1, 1, tzinfo=paris))
    utc = between("create_time", max=datetime(2024, 1, 1, tzinfo=UTC))
    assert here == utc
