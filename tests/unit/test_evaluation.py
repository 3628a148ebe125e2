"""`clipmesh eval`: query file parsing, judging answers, the per-category and per-language
figures, and the ranks of a query's versions in several languages side by side."""

from __future__ import annotations

import json
import re

import pytest
from rich.console import Console

from clipmesh.cli.evaluation import (
    EvalQuery,
    QueryFileError,
    judge,
    load_queries,
)
from clipmesh.cli.evaluation_report import (
    as_json,
    outcomes_by_pair,
    render,
    report_by_category,
    report_by_language,
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
        ({"text": "a", "lang": "xx", "expected": "v"}, "lang 'xx' is not a known ISO 639-1"),
        ({"text": "a", "lang": "EN", "expected": "v"}, "lang 'EN' is not a known ISO 639-1"),
        ({"text": "a", "lang": ["en"], "expected": "v"}, "is not a known ISO 639-1 code"),
        ({"image": "x.jpg", "lang": "en", "expected": "v"}, "lang is for text queries; image"),
        (
            {"frame": {"video": "v.mp4", "at_s": 1}, "lang": "zh", "expected": "v"},
            "lang is for text queries; frame",
        ),
        ({"text": "a", "pair": " ", "expected": "v"}, "pair must be a non-empty string"),
        ({"text": "a", "pair": 3, "expected": "v"}, "pair must be a non-empty string"),
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


def test_a_text_query_has_its_given_language_or_one_guessed_from_its_script(tmp_path) -> None:
    path = _write(
        tmp_path,
        {"id": "given", "text": "glaciar de noche", "lang": "es", "expected": "v"},
        {"id": "zh", "text": "夜晚的冰川", "expected": "v"},
        {"id": "en", "text": "a glacier at night", "expected": "v"},
        {"id": "ja", "text": "夜の氷河", "expected": "v"},
    )
    queries = {q.query_id: (q.lang, q.lang_inferred, q.language) for q in load_queries(path)}
    assert queries == {
        "given": ("es", False, "es"),
        "zh": ("zh", True, "zh"),
        "en": ("en", True, "en"),
        "ja": ("ja", True, "ja"),
    }


def test_image_and_frame_queries_group_as_image(tmp_path) -> None:
    (tmp_path / "still.jpg").write_bytes(b"\xff\xd8jpeg")
    (image,) = load_queries(_write(tmp_path, {"image": "still.jpg", "expected": "v"}))
    assert (image.lang, image.lang_inferred, image.language) == ("", False, "image")


def test_paired_queries_load_with_their_key(tmp_path) -> None:
    (tmp_path / "still.jpg").write_bytes(b"\xff\xd8jpeg")
    path = _write(
        tmp_path,
        {"id": "en", "text": "a glacier", "lang": "en", "pair": "glacier", "expected": "v1"},
        {"id": "zh", "text": "冰川", "pair": " glacier ", "expected": "v1"},
        {"id": "still", "image": "still.jpg", "pair": "glacier", "expected": "v1"},
        {"id": "alone", "text": "a market", "expected": "v2"},
    )
    assert [(q.query_id, q.pair, q.language) for q in load_queries(path)] == [
        ("en", "glacier", "en"),
        ("zh", "glacier", "zh"),
        ("still", "glacier", "image"),
        ("alone", "", "en"),
    ]


@pytest.mark.parametrize(
    ("records", "message"),
    [
        (
            [
                {"text": "a glacier", "pair": "glacier", "expected": "v"},
                {"text": "the glacier", "lang": "en", "pair": "glacier", "expected": "v"},
            ],
            "queries.jsonl:2: pair 'glacier' already has its en query, at queries.jsonl:1; "
            "give each language once",
        ),
        (
            [
                {"text": "a glacier", "lang": "en", "pair": "glacier", "expected": "v"},
                {"text": "un glacier", "pair": "glacier", "expected": "v"},  # French, guessed en
            ],
            "give each language once (this one's language was guessed from its script: give lang)",
        ),
        (
            [
                {"text": "a glacier", "pair": "glacier", "expected": "v"},
                {"text": "冰川", "pair": "glacer", "expected": "v"},
            ],
            "queries.jsonl:1: pair 'glacier' has no other query",
        ),
    ],
)
def test_a_pair_holds_each_language_once_and_more_than_one(tmp_path, records, message) -> None:
    with pytest.raises(QueryFileError) as raised:
        load_queries(_write(tmp_path, *records))
    assert message in str(raised.value)


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


def _text(
    query_id: str, expected: str, lang: str, pair: str = "", *, inferred: bool = False
) -> EvalQuery:
    return EvalQuery(
        query_id, "", "text", (expected,), text="x", lang=lang, lang_inferred=inferred, pair=pair
    )


@pytest.fixture
def bilingual_outcomes() -> list:
    """Two concepts asked in English and Chinese, plus a still: zh misses the glacier."""
    result = SearchResult(hits=tuple(_hit(f"v{i}", (0.0, 5.0)) for i in range(1, 11)))
    still = EvalQuery("still", "", "frame", ("v1",), image=b"\xff\xd8", expected_time_s=2.0)
    return [
        judge(_text("glacier-en", "v1", "en", "glacier"), result, 10.0),  # rank 1
        judge(_text("glacier-zh", "v20", "zh", "glacier", inferred=True), result, 30.0),  # miss
        judge(_text("market-en", "v4", "en", "market"), result, 20.0),  # rank 4
        judge(_text("market-zh", "v2", "zh", "market"), result, 40.0),  # rank 2
        judge(still, result, 50.0),  # rank 1, moment holds 2 s
    ]


def test_figures_per_language_put_languages_side_by_side(bilingual_outcomes) -> None:
    reports = report_by_language(bilingual_outcomes)
    assert list(reports) == ["en", "zh", "image"]
    en, zh, image = reports.values()
    assert (en.queries, en.recall, en.mrr) == (2, {1: 0.5, 5: 1.0, 10: 1.0}, 0.625)
    assert (zh.queries, zh.recall, zh.mrr) == (2, {1: 0.0, 5: 0.5, 10: 0.5}, 0.25)
    assert (image.recall[1], image.moment_hit_share, image.moment_judged) == (1.0, 1.0, 1)
    assert en.latency_p50_ms == 15.0 and zh.latency_p50_ms == 35.0


def test_pairs_show_each_languages_rank_so_a_miss_in_one_stands_out(bilingual_outcomes) -> None:
    pairs = outcomes_by_pair(bilingual_outcomes)
    ranks = {key: {lang: o.rank for lang, o in members.items()} for key, members in pairs.items()}
    assert ranks == {"glacier": {"en": 1, "zh": None}, "market": {"en": 4, "zh": 2}}

    console = Console(record=True, width=120)
    render(report_by_category(bilingual_outcomes), bilingual_outcomes, console)
    text = console.export_text()
    assert "retrieval by language" in text and "rank by language" in text
    assert re.search(r"zh\*\s*│\s*2\s*│\s*0%\s*│\s*50%\s*│\s*50%\s*│\s*0\.25", text)
    assert re.search(r"en\s*│\s*2\s*│\s*50%\s*│\s*100%\s*│\s*100%\s*│\s*0\.62", text)
    assert "*: language guessed from the script" in text
    assert re.search(r"pair\s*┃\s*en\s*┃\s*zh\s*┃", text)
    assert re.search(r"glacier\s*│\s*1\s*│\s*miss\s*│", text)
    assert re.search(r"market\s*│\s*4\s*│\s*2\s*│", text)


def test_one_language_and_no_pairs_show_no_language_tables() -> None:
    result = SearchResult(hits=(_hit("v1"),))
    outcomes = [
        judge(_text("a", "v1", "en"), result, 1.0),
        judge(_text("b", "v2", "en"), result, 1.0),
    ]
    console = Console(record=True, width=120)
    render(report_by_category(outcomes), outcomes, console)
    text = console.export_text()
    assert "retrieval over 2 queries" in text and "missed b: v2" in text
    assert "by language" not in text


def test_the_json_report_adds_languages_pairs_and_each_querys_language(bilingual_outcomes) -> None:
    document = as_json(report_by_category(bilingual_outcomes), bilingual_outcomes, top_k=10)
    assert list(document) == ["top_k", "groups", "languages", "pairs", "queries", "warnings"]
    assert list(document["groups"]) == ["overall", "uncategorised"]
    assert document["groups"]["overall"]["queries"] == 5
    languages = document["languages"]
    assert list(languages) == ["en", "zh", "image"]
    assert {lang: languages[lang]["recall@1"] for lang in languages} == {
        "en": 0.5,
        "zh": 0.0,
        "image": 1.0,
    }
    assert (languages["zh"]["mrr"], languages["zh"]["inferred"]) == (0.25, 1)
    assert languages["en"]["inferred"] == 0
    assert document["pairs"] == {"glacier": {"en": 1, "zh": None}, "market": {"en": 4, "zh": 2}}
    first, second, *_, still = document["queries"]
    assert set(first) == {
        "id", "category", "kind", "lang", "lang_inferred", "pair", "expected", "rank",
        "moment_hit", "latency_ms", "error",
    }  # fmt: skip
    assert (first["lang"], first["lang_inferred"], first["pair"]) == ("en", False, "glacier")
    assert (second["lang"], second["lang_inferred"], second["rank"]) == ("zh", True, None)
    assert (still["kind"], still["lang"], still["pair"]) == ("frame", "image", None)


def test_the_shipped_demo_queries_parse_against_the_demo_library(tmp_path) -> None:
    from clipmesh.demo.library import make_library

    specs = make_library(tmp_path, count=8, seed=0)
    queries = load_queries(DEMO_QUERIES, media_root=tmp_path)
    assert len(queries) == 24
    assert {q.kind for q in queries} == {"frame", "text"}
    assert all(q.image[:2] == b"\xff\xd8" for q in queries if q.kind == "frame")
    texts = [q for q in queries if q.kind == "text"]
    assert all(q.pair and not q.lang_inferred for q in texts)
    pairs: dict[str, dict[str, EvalQuery]] = {}
    for query in texts:
        pairs.setdefault(query.pair, {})[query.lang] = query
    assert set(pairs) == {"harbour", "glacier", "market", "desert"}
    titles = {spec.path.name: spec.title for spec in specs}
    for key, members in pairs.items():
        assert set(members) == {"en", "zh"}, key
        assert members["en"].expected == members["zh"].expected, key
        (expected,) = members["en"].expected
        assert titles[expected].lower().startswith(key), (key, titles[expected])
