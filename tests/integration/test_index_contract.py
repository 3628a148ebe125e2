"""The index backend contract, run against every backend (FAISS embedded, Milvus via
milvus-lite): the same writes must give the same answers."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from clipmesh.index.backend import IndexBackend
from clipmesh.index.collection import AnnSettings
from clipmesh.index.faiss_backend import FaissBackend
from clipmesh.index.filters import Clause, VideoFilter
from clipmesh.index.records import SearchQuery
from clipmesh.runtime.errors import InvalidArgument, NotFound
from tests.index_data import DIMENSION, basis, random_unit, unit, video

BACKENDS = ["faiss", "milvus"]


def make_backend(kind: str, tmp_path) -> IndexBackend:
    if kind == "faiss":
        return FaissBackend(tmp_path / "faiss", AnnSettings())
    if (
        importlib.util.find_spec("pymilvus") is None
        or importlib.util.find_spec("clipmesh.index.milvus_backend") is None
    ):
        pytest.fail("the Milvus backend needs `pip install -e .[milvus]` (make install does it)")
    from clipmesh.index.milvus_backend import MilvusBackend

    return MilvusBackend(str(tmp_path / "milvus.db"))


@pytest.fixture(params=BACKENDS)
async def backend(request, tmp_path):
    instance = make_backend(request.param, tmp_path)
    await instance.open()
    yield instance
    await instance.close()


def query(vector, *, top_k: int = 5, moments: int = 3, collection: str = "default", filter=None):
    return SearchQuery(collection, unit(vector), top_k, moments, filter=filter)


async def test_a_search_finds_the_video_and_the_moment_that_matches(backend) -> None:
    rng = np.random.default_rng(1)
    target = random_unit(rng, 6)
    await backend.upsert("default", [video("beach", target), video("city", random_unit(rng, 6))])
    result = await backend.search(query(target[3]))
    best = result.videos[0]
    assert best.meta.video_id == "beach"
    assert best.score == pytest.approx(1.0, abs=1e-2)
    assert best.moments[0].start_s <= 7.0 <= best.moments[0].end_s  # segment 3 spans 6-8 s
    assert best.moments[0].peak_s == pytest.approx(7.0)
    assert best.moments[0].thumbnail == "thumb://beach/3"


async def test_results_are_videos_not_segments(backend) -> None:
    same = np.tile(basis(0), (10, 1))
    await backend.upsert(
        "default", [video("repeats", same), video("other", [basis(0) + 0.5 * basis(1)])]
    )
    result = await backend.search(query(basis(0), top_k=2))
    assert [v.meta.video_id for v in result.videos] == ["repeats", "other"]


async def test_adjacent_matching_segments_merge_into_one_moment(backend) -> None:
    vectors = [basis(1), unit(basis(0) + 0.05 * basis(1)), basis(0), basis(2), basis(0)]
    await backend.upsert("default", [video("clip", vectors)])
    moments = (await backend.search(query(basis(0), moments=3))).videos[0].moments
    assert (moments[0].start_s, moments[0].end_s) == (2.0, 6.0)  # segments 1 and 2 merged
    assert moments[0].peak_s == pytest.approx(5.0)  # the exact match, segment 2
    assert [(m.start_s, m.end_s) for m in moments[1:]] == [(8.0, 10.0)]


async def test_upsert_replaces_every_segment_of_a_video(backend) -> None:
    await backend.upsert("default", [video("v", [basis(0), basis(1)])])
    await backend.upsert("default", [video("v", [basis(2)])])
    result = await backend.search(query(basis(0)))
    assert result.videos[0].score < 0.5  # the old segments are gone
    meta, count = await backend.get_video("default", "v")
    assert (meta.video_id, count) == ("v", 1)


async def test_delete_removes_videos_at_once(backend) -> None:
    await backend.upsert("default", [video("a", [basis(0)]), video("b", [basis(1)])])
    deleted, missing = await backend.delete("default", ["a", "ghost"])
    assert (deleted, missing) == (1, ["ghost"])
    result = await backend.search(query(basis(0)))
    assert [v.meta.video_id for v in result.videos] == ["b"]
    assert await backend.get_video("default", "a") is None


@pytest.mark.parametrize(
    ("clause", "expected"),
    [
        (Clause("source", "equals", values=("generated",)), {"gen"}),
        (Clause("video_id", "any_of", values=("old", "gen")), {"old", "gen"}),
        (Clause("duration_s", "range", low=4.0, low_inclusive=False), {"long"}),
        (Clause("source", "equals", values=("generated",), negate=True), {"old", "long"}),
        (Clause("labels.city", "equals", values=("成都",)), {"old"}),
        (Clause("labels.year", "range", low=2000, high=2010), {"old"}),
    ],
)
async def test_filters_select_by_metadata(backend, clause, expected) -> None:
    await backend.upsert(
        "default",
        [
            video(
                "old", [basis(0)] * 2, source="ingested", labels={"city": "成都", "year": "2005"}
            ),
            video("gen", [basis(0)] * 2, source="generated", labels={"year": "2024"}),
            video("long", [basis(0)] * 4, source="ingested"),
        ],
    )
    result = await backend.search(query(basis(0), filter=VideoFilter((clause,))))
    assert {v.meta.video_id for v in result.videos} == expected


async def test_unknown_collections_and_wrong_dimensions_are_refused(backend) -> None:
    with pytest.raises(NotFound):
        await backend.search(query(basis(0), collection="nowhere"))
    await backend.upsert("default", [video("v", [basis(0)])])
    with pytest.raises(InvalidArgument) as caught:
        await backend.upsert("default", [video("w", [np.ones(DIMENSION + 2)])])
    assert "dimension" in caught.value.message
    with pytest.raises(InvalidArgument):
        await backend.search(query(np.ones(DIMENSION + 2)))


async def test_collections_are_separate(backend) -> None:
    await backend.upsert("alpha", [video("a", [basis(0)])])
    await backend.upsert("beta", [video("b", [basis(0)])])
    result = await backend.search(query(basis(0), collection="beta"))
    assert [v.meta.video_id for v in result.videos] == ["b"]
    stats = {s.collection: s for s in await backend.stats()}
    assert (stats["alpha"].videos, stats["alpha"].segments) == (1, 1)


@pytest.mark.parametrize("kind", BACKENDS)
async def test_everything_survives_a_restart(tmp_path, kind) -> None:
    first = make_backend(kind, tmp_path)
    await first.open()
    await first.upsert("default", [video("kept", [basis(3), basis(4)], title="标题 🎬")])
    await first.upsert("default", [video("gone", [basis(5)])])
    await first.delete("default", ["gone"])
    await first.close()
    second = make_backend(kind, tmp_path)
    await second.open()
    result = await second.search(query(basis(4)))
    assert [v.meta.video_id for v in result.videos] == ["kept"]
    assert result.videos[0].meta.title == "标题 🎬"
    await second.close()


async def test_videos_list_newest_first_filtered_and_paged(backend) -> None:
    await backend.upsert(
        "default",
        [
            video(
                f"v{i}",
                [basis(i)],
                create_time_s=1_700_000_000 + i,
                source="generated" if i % 2 else "ingested",
            )
            for i in range(7)
        ],
    )
    first, total = await backend.list_videos("default", None, offset=0, limit=3)
    rest, _ = await backend.list_videos("default", None, offset=3, limit=10)
    assert total == 7
    assert [v.video_id for v in first + rest] == [f"v{i}" for i in range(6, -1, -1)]
    generated = VideoFilter((Clause("source", "equals", values=("generated",)),))
    chosen, count = await backend.list_videos("default", generated, offset=0, limit=10)
    assert (count, [v.video_id for v in chosen]) == (3, ["v5", "v3", "v1"])


async def test_segments_of_a_span_come_back_in_time_order(backend) -> None:
    vectors = [basis(0), basis(1), basis(2), basis(3)]  # 0-2, 2-4, 4-6, 6-8 s
    await backend.upsert("default", [video("clip", vectors)])
    segments = await backend.get_segments("default", "clip", (3.0, 5.0))
    assert segments.start_s.tolist() == [2.0, 4.0]
    assert np.allclose(segments.vectors[0], basis(1), atol=1e-3)
    assert len(await backend.get_segments("default", "clip")) == 4
    assert await backend.get_segments("default", "ghost") is None
