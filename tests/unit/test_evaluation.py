"""`clipmesh eval`: query file parsing, judging answers and the per-category figures."""

from __future__ import annotations

import json

import pytest

from clipmesh.cli.evaluation import (
    EvalQuery,
    QueryFileError,
    judge,
    load_queries,
    report_by_category,
    summarise,
)
from clipmesh.demo.library import DEMO_QUERIES
from clipmesh_client import Moment, SearchResult, Video, VideoHit


def _write(tmp_path, *records) -> object:
    path = tmp_path / "queries.jsonl"
    path.write_text(
        "\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records)
    )
    return path


def test_text_and_image_queries_load_with_paths_from_the_media_root(tmp_path) -> None:
    (tmp_path / "still.jpg").write_bytes(b"\xff\xd8jpeg")
    path = _write(
        tmp_path,
        "# comments and blank lines are skipped",
        "",
        {"id": "t", "category": "人物", "text": "穿汉服的女孩", "expected": "v1"},
        {"image": "still.jpg", "expected": ["v2", "v3"], "expected_time_s": 3},
    )
    text, image = load_queries(path)
    assert (text.kind, text.text, text.expected, text.category) == (
        "text",
        "穿汉服的女孩",
        ("v1",),
        "人物",
    )
    assert (image.query_id, image.image, image.expected_time_s) == ("line-4", b"\xff\xd8jpeg", 3.0)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "must be a JSON object"),
        ({"text": "a", "image": "b", "expected": ["v"]}, "exactly one of image, frame or text"),
        ({"text": "  ", "expected": ["v"]}, "text must be a non-empty string"),
        ({"text": "a"}, "expected must be a video name"),
        ({"text": "a", "expected": [""]}, "expected must be a video name"),
        ({"text": "a", "expected": "v", "expected_time_s": -1}, "expected_time_s must be"),
        ({"text": "a", "expected": "v", "expected_time_s": True}, "expected_time_s must be"),
        ({"image": "missing.jpg", "expected": "v"}, "image: no file"),
        ({"frame": {"video": "v.mp4"}, "expected": "v"}, '"at_s": SECONDS'),
    ],
)
def test_a_bad_line_is_refused_naming_its_line(tmp_path, record, message) -> None:
    path = _write(tmp_path, {"text": "fine", "expected": "v"}, record)
    with pytest.raises(QueryFileError, match=r"queries\.jsonl:2: ") as raised:
        load_queries(path)
    assert message in str(raised.value)


def test_duplicate_ids_and_empty_files_are_refused(tmp_path) -> None:
    with pytest.raises(QueryFileError, match="used twice"):
        load_queries(
            _write(tmp_path, {"id": "a", "text": "x", "expected": "v"})
            and _write(
                tmp_path,
                {"id": "a", "text": "x", "expected": "v"},
                {"id": "a", "text": "y", "expected": "v"},
            )
        )
    with pytest.raises(QueryFileError, match="no queries"):
        load_queries(_write(tmp_path, "# nothing"))


def _hit(video_id: str, *moments: tuple[float, float], title: str = "", uri: str = "") -> VideoHit:
    return VideoHit(
        video=Video(video_id=video_id, title=title, uri=uri),
        score=0.5,
        moments=tuple(Moment(start_s=a, end_s=b, peak_s=a, score=0.5) for a, b in moments),
    )


def _query(*expected: str, time_s: float | None = None, category: str = "") -> EvalQuery:
    return EvalQuery("q", category, "text", tuple(expected), text="x", expected_time_s=time_s)


def test_expected_videos_match_by_id_title_or_file_name() -> None:
    result = SearchResult(
        hits=(
            _hit("sha-1", title="Harbour"),
            _hit("sha-2", (4.0, 8.0), uri="file:///lib/video-02.mp4"),
        )
    )
    by_file = judge(_query("video-02.mp4", time_s=5.0), result, 12.0)
    assert (by_file.rank, by_file.moment_hit) == (2, True)
    assert judge(_query("video-02", time_s=9.0), result, 1.0).moment_hit is False
    assert judge(_query("Harbour"), result, 1.0).rank == 1
    missing = judge(_query("nowhere", time_s=1.0), result, 1.0)
    assert (missing.rank, missing.moment_hit) == (None, None)


def test_recall_counts_each_expected_video_and_groups_by_category() -> None:
    hits = tuple(_hit(f"v{i}") for i in range(1, 11))
    result = SearchResult(hits=hits)
    outcomes = [
        judge(_query("v1", category="a"), result, 10.0),  # rank 1
        judge(_query("v3", "v20", category="a"), result, 20.0),  # half found, at rank 3
        judge(_query("v7", category="b"), result, 30.0),  # rank 7
    ]
    overall = summarise(outcomes)
    assert overall.recall == {
        1: pytest.approx(1 / 3),
        5: pytest.approx(0.5),
        10: pytest.approx(2.5 / 3),
    }
    assert overall.mrr == pytest.approx((1 + 1 / 3 + 1 / 7) / 3)
    assert overall.moment_hit_share is None and overall.latency_p50_ms == 20.0
    reports = report_by_category(outcomes)
    assert list(reports) == ["overall", "a", "b"]
    assert reports["b"].recall[5] == 0.0 and reports["b"].recall[10] == 1.0


def test_the_shipped_demo_queries_parse_against_the_demo_library(tmp_path) -> None:
    from clipmesh.demo.library import make_library

    make_library(tmp_path, count=8, seed=0)
    queries = load_queries(DEMO_QUERIES, media_root=tmp_path)
    assert len(queries) == 20
    assert {q.kind for q in queries} == {"frame", "text"}
    assert all(q.image[:2] == b"\xff\xd8" for q in queries if q.kind == "frame")
