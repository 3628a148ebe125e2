"""Deadline-aware admission through the encoder's and the orchestrator's gRPC APIs: with work
queued ahead, a request that the forecast says would finish after its deadline is refused at
once (RESOURCE_EXHAUSTED WOULD_MISS_DEADLINE with a retry delay), while the queued work, and a
request with time to spare, complete."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import grpc
import pytest
import pytest_asyncio

from clipmesh.encoder.config import EncoderConfig
from clipmesh.encoder.server import create_app
from clipmesh.runtime.config import load_config
from clipmesh_api.encoder.v1 import encoder_pb2, encoder_pb2_grpc
from clipmesh_api.orchestrator.v1 import search_pb2, search_pb2_grpc
from clipmesh_client import errors as client_errors
from clipmesh_client.wire import ChannelPolicy, open_aio_channel
from tests.media import encode, gradient_image
from tests.mesh import TINY_ENCODER_ENV
from tests.support import serve_in_process

pytestmark = pytest.mark.asyncio(loop_scope="module")
IMAGES = [encode(gradient_image(64, 48, seed=i)) for i in range(64)]
# One item a batch: the backlog takes many batches, so its forecast is long on any machine.
ENV = {
    **TINY_ENCODER_ENV,
    "CLIPMESH_ENCODER_MAX_BATCH": "1",
    "CLIPMESH_ENCODER_MAX_QUEUE_DELAY_MS": "0",
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def encoder():
    config = load_config(EncoderConfig, environ=ENV)
    app = create_app(config)
    async with serve_in_process(config, app) as running:
        channel = open_aio_channel(running.target, ChannelPolicy(timeout_s=120, max_attempts=1))
        running.stub = encoder_pb2_grpc.EncoderServiceStub(channel)
        running.app = app
        await running.stub.EmbedImages(encoder_pb2.EmbedImagesRequest(images=IMAGES[:4]))
        yield running
        await channel.close()


@contextlib.asynccontextmanager
async def _backlog(encoder, requests: int = 4):
    """`requests` × 64 interactive images queued behind a batch held on the inference thread
    (released when the block ends); yields their pending calls."""
    held = threading.Event()
    entered = threading.Event()

    def hold() -> None:
        entered.set()
        held.wait(60)

    inference = encoder.app.encoder._inference_pool  # the thread every batch runs on
    blocker = asyncio.get_running_loop().run_in_executor(inference, hold)
    await asyncio.to_thread(entered.wait, 10)
    request = encoder_pb2.EmbedImagesRequest(images=IMAGES)
    calls = [asyncio.ensure_future(encoder.stub.EmbedImages(request)) for _ in range(requests)]
    images = encoder.app.encoder.images
    deadline = time.monotonic() + 60
    while images.queued < requests * len(IMAGES) - 1:  # one may be taken for the next batch
        assert time.monotonic() < deadline, "the backlog never queued"
        await asyncio.sleep(0.01)
    try:
        yield calls
    finally:
        held.set()
        await blocker


async def _refusal(call) -> client_errors.ClipmeshError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return client_errors.from_rpc_error(caught.value)


async def test_the_encoder_refuses_work_that_would_miss_its_deadline(encoder) -> None:
    async with _backlog(encoder) as backlog:
        forecast_s = encoder.app.encoder.images.forecast_wait_s(1, True, time.monotonic())
        probe = encoder_pb2.EmbedImagesRequest(images=IMAGES[:1])
        refused = await _refusal(encoder.stub.EmbedImages(probe, timeout=forecast_s / 4))
    assert isinstance(refused, client_errors.ResourceExhaustedError), refused
    assert refused.reason == "WOULD_MISS_DEADLINE"
    assert refused.retry_after_s and refused.retry_after_s > 0
    patient = encoder.stub.EmbedImages(probe, timeout=forecast_s * 10 + 30)
    answers = await asyncio.gather(*backlog, patient)
    assert all(
        len(answer.embeddings) == len(request)
        for answer, request in zip(answers, [IMAGES] * len(backlog) + [IMAGES[:1]], strict=True)
    )


async def test_the_orchestrator_passes_the_refusal_on_without_waiting(
    encoder, mesh_factory
) -> None:
    env = {"orchestrator": {"CLIPMESH_ORCHESTRATOR_ENCODER_TARGET": encoder.target}}
    async with mesh_factory.in_process("index", "orchestrator", env=env) as mesh:
        search = mesh.stub(
            "orchestrator", search_pb2_grpc.SearchServiceStub, ChannelPolicy(timeout_s=120)
        )
        async with _backlog(encoder) as backlog:
            forecast_s = encoder.app.encoder.images.forecast_wait_s(1, True, time.monotonic())
            query = search_pb2.SearchVideosRequest(
                parts=[search_pb2.QueryPart(image=IMAGES[0])],
                budget_ms=max(20, int(forecast_s * 1000 / 4)),
                skip_cache=True,
            )
            refused = await _refusal(search.SearchVideos(query))
        assert isinstance(refused, client_errors.ResourceExhaustedError), refused
        assert refused.reason == "WOULD_MISS_DEADLINE"
        assert refused.retry_after_s and refused.retry_after_s > 0
        await asyncio.gather(*backlog)
