"""SearchVideos through the real encoder, index and orchestrator on free ports: image, text
and clip parts, weights, filters, the cache, the budget, and every bad query."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import grpc
import pytest
import pytest_asyncio

from clipmesh.orchestrator.server import create_app as create_orchestrator
from clipmesh_api.common.v1 import common_pb2
from clipmesh_api.encoder.v1 import encoder_pb2, encoder_pb2_grpc
from clipmesh_api.index.v1 import index_pb2, index_pb2_grpc
from clipmesh_api.orchestrator.v1 import ingest_pb2, ingest_pb2_grpc, search_pb2, search_pb2_grpc
from clipmesh_client import errors as client_errors
from clipmesh_client.wire import ChannelPolicy, open_aio_channel
from tests.media import encode, gradient_image
from tests.support import serve_in_process

pytestmark = pytest.mark.asyncio(loop_scope="module")
CALLS = ChannelPolicy(timeout_s=10, max_attempts=1)
FRAMES = {"harbour": [11, 12, 13, 14], "desert": [21, 22, 23], "forest": [31, 32, 33, 34, 35]}


def frame(seed: int) -> bytes:
    return encode(gradient_image(96, 64, seed=seed))


async def _library(mesh) -> None:
    """Indexes three videos whose segments are the embeddings of known frames."""
    encoder = mesh.stub("encoder", encoder_pb2_grpc.EncoderServiceStub)
    request = index_pb2.UpsertSegmentsRequest(collection="default")
    for video_id, seeds in FRAMES.items():
        embedded = await encoder.EmbedImages(
            encoder_pb2.EmbedImagesRequest(images=[frame(s) for s in seeds])
        )
        entry = request.videos.add()
        entry.video.video_id, entry.video.title = video_id, video_id.title()
        entry.video.source = (
            common_pb2.VIDEO_SOURCE_GENERATED
            if video_id == "desert"
            else common_pb2.VIDEO_SOURCE_INGESTED
        )
        for i, embedding in enumerate(embedded.embeddings):
            entry.segments.add(
                start_s=3 * i, end_s=3 * i + 3, keyframe_s=3 * i + 1.5, vector=embedding.vector
            )
    await mesh.stub("index", index_pb2_grpc.IndexServiceStub).UpsertSegments(request)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(mesh_factory):
    async with mesh_factory.in_process("encoder", "index", "orchestrator") as running:
        await _library(running)
        running.search = running.stub("orchestrator", search_pb2_grpc.SearchServiceStub, CALLS)
        running.library = running.stub("orchestrator", ingest_pb2_grpc.IngestServiceStub, CALLS)
        running.config = running.configs["orchestrator"]
        yield running


def query(*parts, **fields) -> search_pb2.SearchVideosRequest:
    return search_pb2.SearchVideosRequest(parts=list(parts), **fields)


def image(seed: int, weight: float = 1.0) -> search_pb2.QueryPart:
    return search_pb2.QueryPart(image=frame(seed), weight=weight)


async def _refusal(call) -> client_errors.ClipmeshError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return client_errors.from_rpc_error(caught.value)


async def test_an_image_finds_its_video_and_the_moment_it_comes_from(mesh) -> None:
    response = await mesh.search.SearchVideos(query(image(33), skip_cache=True))
    best = response.hits[0]
    assert best.video.video_id == "forest"
    assert best.moments[0].start_s <= 7.5 <= best.moments[0].end_s  # frame 33 is at 6-9 s
    assert best.moments[0].peak_s == pytest.approx(7.5)
    assert response.model_id == "clipmesh-tiny/random-seed-0"
    assert any("random weights" in w for w in response.warnings)
    stages = {t.stage for t in response.timings}
    assert {"encode", "index", "total"} <= stages


async def test_text_queries_in_any_language_return_results(mesh) -> None:
    response = await mesh.search.SearchVideos(
        query(search_pb2.QueryPart(text="海边的港口 at dusk 🌅"))
    )
    assert len(response.hits) == 3
    assert all(hit.moments for hit in response.hits)
    # The tiny model's text tower is declared English: the Chinese letters are warned about,
    # by the caller's name of the part.
    assert [w for w in response.warnings if "script" in w] == [
        "parts[0].text is written in Han script, but the text tower was trained on en only: "
        "its vector is unreliable. Mount multilingual weights (docs/languages.md) or query in en."
    ]


async def test_a_negative_part_pushes_its_video_down(mesh) -> None:
    plain = await mesh.search.SearchVideos(query(image(12), image(22, weight=0.5), top_k=3))
    pushed = await mesh.search.SearchVideos(
        query(image(12), image(22, weight=0.5), image(12, weight=-1.0), top_k=3)
    )
    assert plain.hits[0].video.video_id == "harbour"
    assert pushed.hits[0].video.video_id == "desert"  # "like 22, not like 12"


async def test_query_by_clip_finds_the_clip_itself_first(mesh) -> None:
    clip = search_pb2.ClipReference(
        video_id="desert", span=common_pb2.TimeRange(start_s=3, end_s=6)
    )
    response = await mesh.search.SearchVideos(query(search_pb2.QueryPart(clip=clip)))
    assert response.hits[0].video.video_id == "desert"
    assert response.hits[0].moments[0].peak_s == pytest.approx(4.5)


async def test_filters_reach_the_index(mesh) -> None:
    generated = common_pb2.MetadataFilter(
        clauses=[common_pb2.FilterClause(field="source", equals="generated")]
    )
    response = await mesh.search.SearchVideos(query(image(33), filter=generated))
    assert [h.video.video_id for h in response.hits] == ["desert"]


async def test_a_repeated_query_is_answered_from_the_cache(mesh) -> None:
    first = await mesh.search.SearchVideos(query(image(14)))
    second = await mesh.search.SearchVideos(query(image(14), budget_ms=300))
    assert not first.cache_hit and second.cache_hit
    assert [h.video.video_id for h in second.hits] == [h.video.video_id for h in first.hits]
    assert [t.stage for t in second.timings] == ["cache"]


async def test_deleting_a_video_clears_the_cache(mesh) -> None:
    await mesh.search.SearchVideos(query(image(22)))
    deleted = await mesh.library.DeleteVideos(ingest_pb2.DeleteVideosRequest(video_ids=["desert"]))
    assert deleted.deleted_count == 1
    after = await mesh.search.SearchVideos(query(image(22)))
    assert not after.cache_hit
    assert "desert" not in [h.video.video_id for h in after.hits]
    listed = await mesh.library.ListVideos(ingest_pb2.ListVideosRequest())
    assert sorted(v.video_id for v in listed.videos) == ["forest", "harbour"]
    video = await mesh.library.GetVideo(ingest_pb2.GetVideoRequest(video_id="forest"))
    assert (video.video.title, video.segments) == ("Forest", 5)


async def test_min_score_leaves_out_the_videos_and_moments_below_it(mesh) -> None:
    everything = await mesh.search.SearchVideos(
        query(image(33), top_k=3, max_moments_per_video=5, skip_cache=True)
    )
    scores = [hit.score for hit in everything.hits]
    assert len(scores) >= 2 and scores[0] > scores[1]
    threshold = (scores[0] + scores[1]) / 2
    cut = await mesh.search.SearchVideos(
        query(image(33), top_k=3, max_moments_per_video=5, min_score=threshold, skip_cache=True)
    )
    assert [hit.video.video_id for hit in cut.hits] == [everything.hits[0].video.video_id]
    assert cut.hits_below_min_score == len(scores) - 1
    kept_moments = [m.score for m in everything.hits[0].moments if m.score >= threshold]
    assert [m.score for m in cut.hits[0].moments] == kept_moments
    assert everything.hits_below_min_score == 0


async def test_min_score_applies_to_answers_from_the_cache(mesh) -> None:
    await mesh.search.SearchVideos(query(image(32), top_k=3))  # fills the cache, uncut
    everything = await mesh.search.SearchVideos(query(image(32), top_k=3))
    assert everything.cache_hit and len(everything.hits) >= 2
    top = everything.hits[0].score
    cut = await mesh.search.SearchVideos(query(image(32), top_k=3, min_score=top))
    assert cut.cache_hit
    assert [hit.video.video_id for hit in cut.hits] == [everything.hits[0].video.video_id]
    assert cut.hits_below_min_score == len(everything.hits) - 1
    nothing_cut = await mesh.search.SearchVideos(query(image(32), top_k=3, min_score=-1))
    assert len(nothing_cut.hits) == len(everything.hits)
    assert nothing_cut.hits_below_min_score == 0


async def test_the_sdk_sends_min_score_and_reads_how_many_were_cut(mesh) -> None:
    from clipmesh_client import AsyncClient

    async with AsyncClient(mesh.target("orchestrator")) as client:
        everything = await client.search(image=frame(12), top_k=3, skip_cache=True)
        threshold = (everything.hits[0].score + everything.hits[1].score) / 2
        cut = await client.search(image=frame(12), top_k=3, min_score=threshold, skip_cache=True)
    assert [hit.video.video_id for hit in cut.hits] == [everything.hits[0].video.video_id]
    assert cut.hits_below_min_score == len(everything.hits) - 1


@pytest.mark.parametrize(
    ("request_", "reason", "field"),
    [
        (query(image(11), min_score=1.5), "BAD_MIN_SCORE", "min_score"),
        (query(image(11), min_score=float("nan")), "BAD_MIN_SCORE", "min_score"),
        (query(image(11), min_score=-2), "BAD_MIN_SCORE", "min_score"),
        (query(), "EMPTY_QUERY", "parts"),
        (query(search_pb2.QueryPart(weight=1.0)), "EMPTY_PART", "parts[0]"),
        (query(image(11, weight=-1.0)), "BAD_WEIGHT", "parts"),
        (
            query(search_pb2.QueryPart(text="ok"), search_pb2.QueryPart(image=b"not an image")),
            "UNSUPPORTED_IMAGE_FORMAT",
            "parts[1].image",
        ),
        (query(search_pb2.QueryPart(image=frame(1)[:200])), "CORRUPT_IMAGE", "parts[0].image"),
        (query(search_pb2.QueryPart(text="   ")), "EMPTY_TEXT", "parts[0].text"),
        (query(image(11), top_k=10_000), "BAD_TOP_K", "top_k"),
        (query(image(11), budget_ms=-5), "BAD_BUDGET", "budget_ms"),
        (
            query(
                search_pb2.QueryPart(
                    clip=search_pb2.ClipReference(
                        video_id="forest", span=common_pb2.TimeRange(start_s=100, end_s=200)
                    )
                )
            ),
            "EMPTY_CLIP",
            "parts[0].clip",
        ),
    ],
)
async def test_bad_queries_get_clear_errors_naming_the_part(mesh, request_, reason, field) -> None:
    error = await _refusal(mesh.search.SearchVideos(request_))
    assert isinstance(error, client_errors.InvalidArgumentError)
    assert (error.reason, error.metadata.get("field")) == (reason, field)


async def test_a_clip_of_an_unknown_video_is_not_found(mesh) -> None:
    clip = search_pb2.ClipReference(video_id="ghost")
    error = await _refusal(mesh.search.SearchVideos(query(search_pb2.QueryPart(clip=clip))))
    assert isinstance(error, client_errors.NotFoundError)


class StalledEncoder(encoder_pb2_grpc.EncoderServiceServicer):
    """Accepts calls and never answers."""

    async def EmbedImages(self, request, context):
        await asyncio.sleep(3600)


async def test_a_stalled_encoder_fails_fast_within_the_budget(mesh, free_ports) -> None:
    server = grpc.aio.server()
    encoder_pb2_grpc.add_EncoderServiceServicer_to_server(StalledEncoder(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    config = replace(mesh.config, encoder_target=f"127.0.0.1:{port}")
    try:
        async with (
            serve_in_process(config, create_orchestrator(config)) as stalled,
            open_aio_channel(stalled.target, CALLS) as channel,
        ):
            started = time.monotonic()
            error = await _refusal(
                search_pb2_grpc.SearchServiceStub(channel).SearchVideos(
                    query(image(11), budget_ms=300)
                )
            )
            elapsed = time.monotonic() - started
    finally:
        await server.stop(0)
    assert isinstance(error, client_errors.DeadlineExceededError)
    assert error.reason == "BUDGET_EXCEEDED"
    assert elapsed < 3  # bounded by the 300 ms budget, not by the stalled call


async def test_an_absent_encoder_answers_unavailable_at_once(mesh, free_ports) -> None:
    config = replace(mesh.config, encoder_target=f"127.0.0.1:{free_ports()}")
    async with (
        serve_in_process(config, create_orchestrator(config)) as orphan,
        open_aio_channel(orphan.target, CALLS) as channel,
    ):
        error = await _refusal(
            search_pb2_grpc.SearchServiceStub(channel).SearchVideos(query(image(11)))
        )
    assert isinstance(error, client_errors.UnavailableError)
    assert error.reason == "ENCODER_UNAVAILABLE"
