"""The Milvus backend's own promises, on milvus-lite: filters evaluated inside Milvus, replaces
that readers never see half done, data that outlives the process, and clear errors when
Milvus is missing. (The shared contract is in test_index_contract.py.)"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import pytest_asyncio
from milvus_lite import server_manager_instance

from clipmesh.index.filters import parse_filter
from clipmesh.index.milvus_backend import MilvusBackend
from clipmesh.index.records import SearchQuery, VideoMeta, VideoWrite
from clipmesh.runtime.errors import InvalidArgument, NotFound, Unavailable
from clipmesh.runtime.server import StartupError
from clipmesh_api.common.v1 import common_pb2
from tests.index_data import DIMENSION, basis, random_unit, unit, video

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def backend(tmp_path_factory):
    """One milvus-lite file for the module; each test writes its own collection."""
    instance = MilvusBackend(str(tmp_path_factory.mktemp("milvus") / "milvus.db"))
    await instance.open()
    yield instance
    await instance.close()


def query(collection: str, vector, *, top_k: int = 5, moments: int = 3, clauses=()):
    video_filter = parse_filter(common_pb2.MetadataFilter(clauses=list(clauses)))
    return SearchQuery(collection, np.asarray(vector, np.float32), top_k, moments, video_filter)


def ids(result) -> list[str]:
    return [v.meta.video_id for v in result.videos]


async def test_a_search_finds_the_video_and_the_moment_of_the_matching_segment(backend) -> None:
    rng = np.random.default_rng(3)
    beach = random_unit(rng, 6)
    others = [video(name, random_unit(rng, 6)) for name in ("city", "forest")]
    sequence = await backend.upsert("find", [video("beach", beach), *others])
    result = await backend.search(query("find", unit(beach[3] + 0.1 * random_unit(rng, 1)[0])))
    best = result.videos[0]
    assert sequence > 0
    assert best.meta.video_id == "beach"
    assert best.moments[0].start_s <= 7.0 <= best.moments[0].end_s  # segment 3 spans 6-8 s
    assert best.moments[0].thumbnail == "thumb://beach/3"
    assert result.index_type == "milvus"
    assert set(result.timings_ms) == {"ann", "fetch", "rank"}


async def test_scores_are_inner_products_with_each_videos_best_segment(backend) -> None:
    rng = np.random.default_rng(4)
    vectors = {f"v{i}": random_unit(rng, 5) for i in range(8)}
    await backend.upsert("scores", [video(name, v) for name, v in vectors.items()])
    # A query with a negative weight arrives already combined: 1.0·a − 0.5·b over weight 1.
    a, b = random_unit(rng, 2)
    combined = a - 0.5 * b
    result = await backend.search(query("scores", combined, top_k=4))
    expected = {name: float((v @ combined).max()) for name, v in vectors.items()}
    assert ids(result) == sorted(expected, key=expected.get, reverse=True)[:4]
    for found in result.videos:
        assert found.score == pytest.approx(expected[found.meta.video_id], abs=1e-5)


async def test_a_replace_leaves_only_the_new_segments(backend) -> None:
    first = await backend.upsert("replace", [video("v", [basis(i) for i in range(6)], title="a")])
    second = await backend.upsert("replace", [video("v", [basis(6), basis(7)], title="b")])
    old = await backend.search(query("replace", basis(0)))
    new = await backend.search(query("replace", basis(7)))
    assert second > first
    assert old.videos[0].score == pytest.approx(0.0, abs=1e-5)  # segment 0 is gone
    assert new.videos[0].moments[0].peak_s == pytest.approx(3.0)
    meta, count = await backend.get_video("replace", "v")
    assert (meta.title, count) == ("b", 2)
    assert (await backend.stats("replace"))[0].segments == 2  # old rows deleted from Milvus


async def test_searches_during_replaces_see_the_old_segments_or_the_new_never_a_mix(
    backend,
) -> None:
    early = video("v", [basis(0), basis(0)])  # matches over 0-4 s
    late = video("v", [basis(1), basis(1), basis(0), basis(0)], segment_s=5.0)  # over 10-20 s
    await backend.upsert("race", [early])
    seen = []

    async def replace_back_and_forth() -> None:
        for write in [late, early] * 4:
            await backend.upsert("race", [write])
            await asyncio.sleep(0.03)

    writer = asyncio.create_task(replace_back_and_forth())
    while not writer.done():
        result = await backend.search(query("race", basis(0), moments=5))
        seen.append(tuple((m.start_s, m.end_s) for v in result.videos for m in v.moments))
    await writer
    assert set(seen) <= {((0.0, 4.0),), ((10.0, 20.0),)}
    assert len(seen) > 4


async def test_delete_removes_videos_and_names_the_unknown_ones(backend) -> None:
    await backend.upsert("delete", [video(n, [basis(i)] * 3) for i, n in enumerate("abc")])
    assert await backend.delete("delete", ["a", "c", "ghost"]) == (2, ["ghost"])
    assert ids(await backend.search(query("delete", basis(0)))) == ["b"]
    assert await backend.get_video("delete", "a") is None
    stats = (await backend.stats("delete"))[0]
    assert (stats.videos, stats.segments) == (1, 3)
    assert await backend.delete("delete", ["a"]) == (0, ["a"])


LIBRARY = [
    video(
        "sunset",
        [basis(0)],
        source="generated",
        width=640,
        title='say "hi"\\now',
        labels={"team": "red", "take": "3"},
    ),
    video(
        "harbor",
        [basis(0)] * 30,
        source="ingested",
        width=1920,
        labels={"team": "blue", "take": "12"},
    ),
    video(
        "market",
        [basis(0)] * 15,
        source="ingested",
        width=1280,
        labels={"team": "red", "take": "final"},
    ),
    video("alley", [basis(0)] * 5, source="ingested", width=1920),
]


def clause(field: str, *, negate: bool = False, **test) -> common_pb2.FilterClause:
    if "any_of" in test:
        test["any_of"] = common_pb2.StringList(values=test["any_of"])
    if "range" in test:
        test["range"] = common_pb2.NumericRange(**test["range"])
    return common_pb2.FilterClause(field=field, negate=negate, **test)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def library(backend):
    await backend.upsert("library", LIBRARY)
    return "library"


@pytest.mark.parametrize(
    ("clauses", "expected"),
    [
        ([clause("source", equals="generated")], {"sunset"}),
        ([clause("width", any_of=["1280", "1920"])], {"harbor", "market", "alley"}),
        (  # durations are 2 s per segment: 2, 60, 30, 10
            [clause("duration_s", range={"min": 10, "min_exclusive": True, "max": 60})],
            {"harbor", "market"},
        ),
        ([clause("duration_s", range={"max": 10})], {"sunset", "alley"}),
        ([clause("source", equals="ingested", negate=True)], {"sunset"}),
        ([clause("labels.team", equals="red")], {"sunset", "market"}),
        ([clause("labels.team", equals="red", negate=True)], {"harbor", "alley"}),
        ([clause("labels.team", any_of=["red", "blue"])], {"sunset", "harbor", "market"}),
        ([clause("labels.take", range={"min": 3, "max": 12, "max_exclusive": True})], {"sunset"}),
        ([clause("labels.take", range={"min": 3}, negate=True)], {"market", "alley"}),
        ([clause("title", equals='say "hi"\\now')], {"sunset"}),
        ([clause("source", equals="ingested"), clause("labels.team", equals="red")], {"market"}),
    ],
)
async def test_filters_select_the_videos_whose_metadata_passes(
    backend, library, clauses, expected
) -> None:
    result = await backend.search(query(library, basis(0), top_k=10, clauses=clauses))
    assert set(ids(result)) == expected
    video_filter = parse_filter(common_pb2.MetadataFilter(clauses=clauses))
    assert expected == {w.meta.video_id for w in LIBRARY if video_filter.matches(w.meta)}


async def test_a_selective_filter_still_fills_top_k(backend) -> None:
    generated = [video(f"g{i}", [basis(0)], source="generated") for i in range(12)]
    ingested = [video(f"i{i}", [basis(0) + basis(1)], source="ingested") for i in range(3)]
    await backend.upsert("selective", generated + ingested)
    result = await backend.search(
        query("selective", basis(0), top_k=3, clauses=[clause("source", equals="ingested")])
    )
    # The twelve better matches are filtered out inside Milvus, before candidates are chosen.
    assert sorted(ids(result)) == ["i0", "i1", "i2"]


async def test_unknown_collections_are_not_found(backend) -> None:
    for call in (
        backend.search(query("nowhere", basis(0))),
        backend.delete("nowhere", ["v"]),
        backend.stats("nowhere"),
        backend.get_video("nowhere", "v"),
    ):
        with pytest.raises(NotFound, match="collection 'nowhere' does not exist"):
            await call
    assert "nowhere" not in {s.collection for s in await backend.stats()}


async def test_vectors_of_another_dimension_are_refused_naming_the_field(backend) -> None:
    await backend.upsert("dims", [video("v", [basis(0)])])
    with pytest.raises(InvalidArgument) as upsert:
        await backend.upsert("dims", [video("w", [basis(1)]), video("x", [basis(1, 8)])])
    with pytest.raises(InvalidArgument) as search:
        await backend.search(query("dims", basis(0, 8)))
    assert upsert.value.field == "videos[1].segments[].vector"
    assert search.value.field == "queries[0].vector"
    assert await backend.get_video("dims", "w") is None  # nothing of a refused write is kept
    assert (await backend.stats("dims"))[0].dimension == DIMENSION


async def test_stats_list_every_collection_with_its_counts(backend) -> None:
    await backend.upsert("clips", [video("a", [basis(0)] * 4), video("b", [basis(1)])])
    await backend.upsert("clips_videos", [video("c", [basis(2)] * 2)])  # a name like a suffix
    stats = {s.collection: s for s in await backend.stats()}
    assert (stats["clips"].videos, stats["clips"].segments) == (2, 5)
    assert (stats["clips_videos"].videos, stats["clips_videos"].segments) == (1, 2)
    assert stats["clips"].index_type == "milvus"


async def test_everything_persists_across_close_and_reopen(tmp_path) -> None:
    path = str(tmp_path / "milvus.db")
    meta = VideoMeta(
        video_id="kept",
        uri="s3://bucket/kept.mp4",
        title="标题 🎬",
        duration_s=12.5,
        fps=29.97,
        width=3840,
        height=2160,
        size_bytes=5_000_000_000,
        source="ingested",
        create_time_s=1_700_000_000.25,
        content_sha256="ab" * 32,
        labels={"team": "red", "take": "3"},
    )
    first = MilvusBackend(path)
    await first.open()
    segments = video("kept", [basis(3), basis(4)]).segments
    written = await first.upsert("keep", [VideoWrite(meta, segments)])
    await first.close()
    second = MilvusBackend(path)
    await second.open()
    assert ids(await second.search(query("keep", basis(4)))) == ["kept"]
    assert await second.get_video("keep", "kept") == (meta, 2)
    assert await second.upsert("keep", [video("more", [basis(5)])]) > written
    await second.close()


async def test_open_fails_clearly_when_milvus_cannot_be_reached(free_ports) -> None:
    port = free_ports()
    backend = MilvusBackend(f"http://reader:s3cret@127.0.0.1:{port}")
    with pytest.raises(StartupError, match=f"cannot open Milvus at http://127.0.0.1:{port}") as e:
        await backend.open()
    assert "s3cret" not in str(e.value)


async def test_a_search_while_milvus_is_down_is_unavailable(tmp_path) -> None:
    path = str(tmp_path / "milvus.db")
    backend = MilvusBackend(path)
    await backend.open()
    await backend.upsert("down", [video("v", [basis(0)])])
    server_manager_instance.release_server(path)  # milvus-lite stops serving the file
    with pytest.raises(Unavailable, match="cannot be reached"):
        await backend.search(query("down", basis(0)))
    await backend.close()


async def test_the_index_service_serves_the_milvus_backend_over_grpc(tmp_path) -> None:
    """`CLIPMESH_INDEX_BACKEND=milvus`: the same API, answered from Milvus."""
    from clipmesh.index.config import IndexConfig
    from clipmesh.index.server import create_app
    from clipmesh.runtime.config import load_config
    from clipmesh_api.index.v1 import index_pb2, index_pb2_grpc
    from clipmesh_client.wire import open_aio_channel
    from tests.support import serve_in_process

    environ = {
        "CLIPMESH_INDEX_BACKEND": "milvus",
        "CLIPMESH_INDEX_MILVUS_URI": str(tmp_path / "m.db"),
    }
    config = load_config(IndexConfig, environ=environ)
    async with (
        serve_in_process(config, create_app(config)) as running,
        open_aio_channel(running.target) as channel,
    ):
        stub = index_pb2_grpc.IndexServiceStub(channel)
        request = index_pb2.UpsertSegmentsRequest(collection="grpc")
        entry = request.videos.add()
        entry.video.video_id = "over-grpc"
        entry.segments.add(start_s=0, end_s=2, keyframe_s=1, vector=[1.0, 0.0, 0.0, 0.0])
        await stub.UpsertSegments(request)
        response = await stub.Search(
            index_pb2.SearchRequest(
                collection="grpc",
                top_k=1,
                queries=[index_pb2.WeightedVector(vector=[1.0, 0.0, 0.0, 0.0], weight=1.0)],
            )
        )
        stats = await stub.GetStats(index_pb2.GetStatsRequest(collection="grpc"))
    assert response.hits[0].video.video_id == "over-grpc"
    assert response.index_type == "milvus"
    assert stats.backend == "milvus"
