"""The index over real gRPC: what callers send, what they get back, and every bad input
answered with the field it concerns — with nothing half-applied."""

from __future__ import annotations

import math

import grpc
import pytest
import pytest_asyncio

from clipmesh.index.config import IndexConfig
from clipmesh.index.server import create_app
from clipmesh.runtime.config import load_config
from clipmesh_api.common.v1 import common_pb2
from clipmesh_api.index.v1 import index_pb2, index_pb2_grpc
from clipmesh_client import errors as client_errors
from clipmesh_client.wire import ChannelPolicy, open_aio_channel
from tests.index_data import basis
from tests.support import serve_in_process

pytestmark = pytest.mark.asyncio(loop_scope="module")
D = 8


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def index(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("index")
    config = load_config(IndexConfig, environ={"CLIPMESH_INDEX_DATA_DIR": str(data_dir)})
    async with serve_in_process(config, create_app(config)) as running:
        channel = open_aio_channel(running.target, ChannelPolicy(timeout_s=10, max_attempts=1))
        running.stub = index_pb2_grpc.IndexServiceStub(channel)
        await running.stub.UpsertSegments(
            upsert(
                "default",
                [
                    ("sea", [basis(0, D), basis(1, D)], "ingested"),
                    ("forest", [basis(2, D), basis(3, D)], "ingested"),
                    ("sea_forest", [(basis(0, D) + basis(2, D)).tolist()], "generated"),
                ],
            )
        )
        yield running
        await channel.close()


def upsert(collection, videos) -> index_pb2.UpsertSegmentsRequest:
    request = index_pb2.UpsertSegmentsRequest(collection=collection)
    for video_id, vectors, source in videos:
        entry = request.videos.add()
        entry.video.video_id = video_id
        entry.video.source = {"ingested": 1, "generated": 2}[source]
        for i, vector in enumerate(vectors):
            entry.segments.add(
                start_s=2 * i, end_s=2 * i + 2, keyframe_s=2 * i + 1, vector=list(vector)
            )
    return request


def search(*parts, top_k=3, **fields) -> index_pb2.SearchRequest:
    queries = [index_pb2.WeightedVector(vector=list(v), weight=w) for v, w in parts]
    return index_pb2.SearchRequest(queries=queries, top_k=top_k, **fields)


async def _refusal(call) -> client_errors.ClipmeshError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return client_errors.from_rpc_error(caught.value)


async def test_search_returns_videos_with_moments_timings_and_index_type(index) -> None:
    response = await index.stub.Search(search((basis(1, D), 1.0)))
    assert response.hits[0].video.video_id == "sea"
    assert response.hits[0].moments[0].peak_s == pytest.approx(3.0)
    assert response.index_type == "flat"
    assert {t.stage for t in response.timings} >= {"ann", "rank"}


async def test_a_negative_weight_pushes_results_away(index) -> None:
    plain = await index.stub.Search(search((basis(0, D), 1.0)))
    assert {h.video.video_id for h in plain.hits[:2]} == {"sea", "sea_forest"}
    pushed = await index.stub.Search(search((basis(0, D), 1.0), (basis(2, D), -1.0)))
    assert pushed.hits[0].video.video_id == "sea"
    assert [h.video.video_id for h in pushed.hits][-1] in {"forest", "sea_forest"}
    scores = {h.video.video_id: h.score for h in pushed.hits}
    assert scores["sea_forest"] < scores["sea"]


async def test_unnormalised_vectors_are_normalised(index) -> None:
    response = await index.stub.Search(search((5 * basis(1, D), 1.0)))
    assert response.hits[0].score == pytest.approx(1.0, abs=1e-2)


async def test_a_filter_travels_through_the_api(index) -> None:
    only_generated = common_pb2.MetadataFilter(
        clauses=[common_pb2.FilterClause(field="source", equals="generated")]
    )
    response = await index.stub.Search(search((basis(0, D), 1.0), filter=only_generated))
    assert [h.video.video_id for h in response.hits] == ["sea_forest"]


async def test_stats_report_collections(index) -> None:
    stats = await index.stub.GetStats(index_pb2.GetStatsRequest())
    assert stats.backend == "faiss"
    default = next(c for c in stats.collections if c.collection == "default")
    assert (default.videos, default.segments, default.dimension) == (3, 5, D)


def _vector_with(value: float) -> list[float]:
    vector = [0.0] * D
    vector[0] = value
    return vector


@pytest.mark.parametrize(
    ("request_", "field", "reason"),
    [
        (search((basis(0, D), 1.0), top_k=0), "top_k", "BAD_TOP_K"),
        (search((basis(0, D), 1.0), top_k=10**6), "top_k", "BAD_TOP_K"),
        (search((basis(0, D), 0.0)), "queries[0].weight", "BAD_WEIGHT"),
        (search((basis(0, D), -1.0)), "queries", "BAD_WEIGHT"),
        (search((_vector_with(math.nan), 1.0)), "queries[0].vector", "BAD_VECTOR"),
        (search((_vector_with(math.inf), 1.0)), "queries[0].vector", "BAD_VECTOR"),
        (search(([0.0] * D, 1.0)), "queries[0].vector", "BAD_VECTOR"),
        (search((basis(0, D), 1.0), (basis(0, 4), 1.0)), "queries[1].vector", "DIMENSION_MISMATCH"),
        (search((basis(0, D), 1.0), collection="bad name!"), "collection", "BAD_COLLECTION"),
        (
            search(
                (basis(0, D), 1.0),
                filter=common_pb2.MetadataFilter(
                    clauses=[common_pb2.FilterClause(field="colour", equals="red")]
                ),
            ),
            "filter.clauses[0]",
            "BAD_FILTER",
        ),
        (
            search(
                (basis(0, D), 1.0),
                filter=common_pb2.MetadataFilter(
                    clauses=[
                        common_pb2.FilterClause(field="title", range=common_pb2.NumericRange(min=1))
                    ]
                ),
            ),
            "filter.clauses[0]",
            "BAD_FILTER",
        ),
        (
            search(
                (basis(0, D), 1.0),
                filter=common_pb2.MetadataFilter(
                    clauses=[
                        common_pb2.FilterClause(
                            field="fps", range=common_pb2.NumericRange(min=30, max=1)
                        )
                    ]
                ),
            ),
            "filter.clauses[0]",
            "BAD_FILTER",
        ),
        (
            search(
                (basis(0, D), 1.0),
                filter=common_pb2.MetadataFilter(clauses=[common_pb2.FilterClause(field="fps")]),
            ),
            "filter.clauses[0]",
            "BAD_FILTER",
        ),
        (
            search(
                (basis(0, D), 1.0),
                filter=common_pb2.MetadataFilter(
                    clauses=[common_pb2.FilterClause(field="fps", equals="x")] * 65
                ),
            ),
            "filter.clauses",
            "FILTER_TOO_LARGE",
        ),
    ],
)
async def test_bad_searches_name_the_field(index, request_, field, reason) -> None:
    error = await _refusal(index.stub.Search(request_))
    assert isinstance(error, client_errors.InvalidArgumentError)
    assert (error.metadata.get("field"), error.reason) == (field, reason)


async def test_searching_a_collection_that_does_not_exist_is_not_found(index) -> None:
    error = await _refusal(index.stub.Search(search((basis(0, D), 1.0), collection="nowhere")))
    assert isinstance(error, client_errors.NotFoundError)


@pytest.mark.parametrize(
    ("videos", "field", "reason"),
    [
        ([("", [basis(0, D)], "ingested")], "videos[1].video.video_id", "EMPTY_ID"),
        (
            [("ok", [basis(0, D)], "ingested"), ("ok", [basis(1, D)], "ingested")],
            "videos[2].video.video_id",
            "DUPLICATE_ID",
        ),
        (
            [("ok", [basis(0, D), basis(0, 4)], "ingested")],
            "videos[1].segments[1].vector",
            "DIMENSION_MISMATCH",
        ),
        (
            [("ok", [_vector_with(math.nan)], "ingested")],
            "videos[1].segments[].vector[0]",
            "BAD_VECTOR",
        ),
    ],
)
async def test_bad_upserts_name_the_field_and_change_nothing(index, videos, field, reason) -> None:
    before = await index.stub.GetStats(index_pb2.GetStatsRequest(collection="default"))
    good_then_bad = [("innocent", [basis(5, D)], "ingested"), *videos]  # the bad ones follow
    error = await _refusal(index.stub.UpsertSegments(upsert("default", good_then_bad)))
    assert isinstance(error, client_errors.InvalidArgumentError)
    assert error.reason == reason
    assert error.metadata["field"] == field
    after = await index.stub.GetStats(index_pb2.GetStatsRequest(collection="default"))
    assert after.collections[0].videos == before.collections[0].videos  # nothing half-applied


async def test_wrong_dimension_for_an_existing_collection_is_refused(index) -> None:
    request = upsert("default", [("wide", [basis(0, 2 * D)], "ingested")])
    error = await _refusal(index.stub.UpsertSegments(request))
    assert error.reason == "DIMENSION_MISMATCH"


async def test_bad_times_are_refused(index) -> None:
    request = upsert("default", [("t", [basis(0, D)], "ingested")])
    request.videos[0].segments[0].end_s = -1
    error = await _refusal(index.stub.UpsertSegments(request))
    assert (error.reason, error.metadata["field"]) == ("BAD_TIME", "videos[0].segments[0]")


async def test_delete_with_no_ids_is_refused_and_unknown_ids_are_reported(index) -> None:
    error = await _refusal(index.stub.DeleteVideos(index_pb2.DeleteVideosRequest()))
    assert error.reason == "EMPTY_REQUEST"
    response = await index.stub.DeleteVideos(
        index_pb2.DeleteVideosRequest(collection="default", video_ids=["ghost"])
    )
    assert (response.deleted_count, list(response.not_found_ids)) == (0, ["ghost"])


async def test_get_list_and_segments_through_the_api(index) -> None:
    video = await index.stub.GetVideo(index_pb2.GetVideoRequest(video_id="sea"))
    assert (video.video.video_id, video.segments) == ("sea", 2)
    first = await index.stub.ListVideos(
        index_pb2.ListVideosRequest(page=common_pb2.PageRequest(page_size=2))
    )
    second = await index.stub.ListVideos(
        index_pb2.ListVideosRequest(
            page=common_pb2.PageRequest(page_size=2, page_token=first.page.next_page_token)
        )
    )
    listed = [v.video_id for v in [*first.videos, *second.videos]]
    assert sorted(listed) == ["forest", "sea", "sea_forest"]
    assert first.page.total_size == 3 and second.page.next_page_token == ""
    segments = await index.stub.GetSegments(
        index_pb2.GetSegmentsRequest(
            video_id="sea", span=common_pb2.TimeRange(start_s=2.5, end_s=3.0)
        )
    )
    assert [s.start_s for s in segments.segments] == [2.0]
    assert len(segments.segments[0].vector) == D


async def test_unknown_videos_and_bad_pages_are_refused(index) -> None:
    missing = await _refusal(index.stub.GetVideo(index_pb2.GetVideoRequest(video_id="ghost")))
    assert (type(missing), missing.reason) == (client_errors.NotFoundError, "VIDEO_NOT_FOUND")
    bad_token = await _refusal(
        index.stub.ListVideos(
            index_pb2.ListVideosRequest(page=common_pb2.PageRequest(page_token="../../etc"))
        )
    )
    assert bad_token.metadata["field"] == "page.page_token"
    bad_span = await _refusal(
        index.stub.GetSegments(
            index_pb2.GetSegmentsRequest(
                video_id="sea", span=common_pb2.TimeRange(start_s=5, end_s=1)
            )
        )
    )
    assert bad_span.reason == "BAD_TIME"
