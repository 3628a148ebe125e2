"""The encoder over real gRPC: embeddings, model info, bad input, batching across callers."""

from __future__ import annotations

import asyncio
import os
import threading

import grpc
import numpy as np
import pytest
import pytest_asyncio
from prometheus_client import REGISTRY

from clipmesh.encoder import server as encoder_server
from clipmesh.encoder.config import EncoderConfig
from clipmesh.encoder.model import load_configured_model
from clipmesh.encoder.server import create_app
from clipmesh.runtime.config import load_config
from clipmesh_api.encoder.v1 import encoder_pb2, encoder_pb2_grpc
from clipmesh_client import errors as client_errors
from clipmesh_client.wire import ChannelPolicy, open_aio_channel
from tests.media import encode, gradient_image, png_declaring
from tests.mesh import TINY_ENCODER_ENV
from tests.support import run_cli, serve_in_process

ENV = {
    **TINY_ENCODER_ENV,
    "CLIPMESH_ENCODER_MAX_BATCH": "8",
    "CLIPMESH_ENCODER_MAX_QUEUE_DELAY_MS": "20",
    "CLIPMESH_ENCODER_MAX_ITEMS_PER_REQUEST": "16",
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def encoder():
    config = load_config(EncoderConfig, environ=ENV)
    async with serve_in_process(config, create_app(config)) as running:
        channel = open_aio_channel(running.target, ChannelPolicy(timeout_s=30, max_attempts=1))
        running.stub = encoder_pb2_grpc.EncoderServiceStub(channel)
        yield running
        await channel.close()


pytestmark = pytest.mark.asyncio(loop_scope="module")


def _vectors(response) -> np.ndarray:
    return np.array([list(e.vector) for e in response.embeddings], dtype=np.float32)


async def _refusal(call) -> client_errors.ClipmeshError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return client_errors.from_rpc_error(caught.value)


async def test_images_embed_to_unit_vectors_in_request_order(encoder) -> None:
    a, b = encode(gradient_image(seed=1)), encode(gradient_image(seed=2), "PNG")
    response = await encoder.stub.EmbedImages(encoder_pb2.EmbedImagesRequest(images=[a, b, a]))
    vectors = _vectors(response)
    assert response.model_id == "clipmesh-tiny/random-seed-0"
    assert response.dimension == vectors.shape[1] == 64
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert np.allclose(vectors[0], vectors[2], atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1], atol=1e-3)


async def test_the_same_image_embeds_the_same_alone_or_in_a_batch(encoder) -> None:
    image = encode(gradient_image(seed=5), "WEBP")
    alone = _vectors(await encoder.stub.EmbedImages(encoder_pb2.EmbedImagesRequest(images=[image])))
    others = [encode(gradient_image(seed=s)) for s in range(6)]
    batched = await encoder.stub.EmbedImages(
        encoder_pb2.EmbedImagesRequest(images=[*others, image])
    )
    assert np.allclose(alone[0], _vectors(batched)[-1], atol=1e-4)


async def test_texts_in_any_language_embed_and_long_ones_are_flagged(encoder) -> None:
    texts = ["汉服女孩在樱花树下跳舞", "drone shot over a glacier 🏔️", "slow pan " * 60]
    response = await encoder.stub.EmbedTexts(encoder_pb2.EmbedTextsRequest(texts=texts))
    assert [e.truncated for e in response.embeddings] == [False, False, True]
    assert np.allclose(np.linalg.norm(_vectors(response), axis=1), 1, atol=1e-5)


async def test_model_info_reports_random_weights_device_and_limits(encoder) -> None:
    info = await encoder.stub.GetModelInfo(encoder_pb2.GetModelInfoRequest())
    assert info.random_weights
    assert info.weights_source == encoder_pb2.WEIGHTS_SOURCE_RANDOM_INIT
    assert info.weights_ref == "seed=0"
    assert (info.device, info.precision, info.dimension) == ("cpu", "fp32", 64)
    assert info.model_id == "clipmesh-tiny/random-seed-0"
    assert info.max_items_per_request == 16
    assert info.context_length == 77


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (b"", "EMPTY_IMAGE"),
        (b"GIF89a" + bytes(100), "UNSUPPORTED_IMAGE_FORMAT"),
        (encode(gradient_image(300, 200))[:500], "CORRUPT_IMAGE"),
        (png_declaring(40_000, 40_000), "IMAGE_TOO_MANY_PIXELS"),
    ],
)
async def test_a_bad_image_fails_the_request_naming_its_index(encoder, bad, reason) -> None:
    good = encode(gradient_image())
    error = await _refusal(
        encoder.stub.EmbedImages(encoder_pb2.EmbedImagesRequest(images=[good, good, bad]))
    )
    assert isinstance(error, client_errors.InvalidArgumentError)
    assert error.reason == reason
    assert error.metadata["field"] == "images[2]"
    assert "images[2]" in error.message


async def test_request_limits_are_enforced(encoder) -> None:
    empty = await _refusal(encoder.stub.EmbedImages(encoder_pb2.EmbedImagesRequest()))
    assert empty.reason == "EMPTY_REQUEST"
    too_many = await _refusal(
        encoder.stub.EmbedTexts(encoder_pb2.EmbedTextsRequest(texts=["x"] * 17))
    )
    assert too_many.reason == "TOO_MANY_ITEMS"
    blank = await _refusal(
        encoder.stub.EmbedTexts(encoder_pb2.EmbedTextsRequest(texts=["ok", " "]))
    )
    assert blank.metadata["field"] == "texts[1]"


async def test_an_undefined_priority_is_refused_naming_the_field(encoder) -> None:
    # Regression: priority 99 parsed (proto3 keeps unknown enum numbers) and was served.
    good = encode(gradient_image())
    request = encoder_pb2.EmbedImagesRequest(images=[good], priority=99)
    error = await _refusal(encoder.stub.EmbedImages(request))
    assert isinstance(error, client_errors.InvalidArgumentError)
    assert error.reason == "UNKNOWN_ENUM_VALUE"
    assert error.metadata["field"] == "priority"
    assert "99" in error.message and "PRIORITY_INTERACTIVE" in error.message


async def test_the_service_keeps_serving_after_bad_input(encoder) -> None:
    await _refusal(encoder.stub.EmbedImages(encoder_pb2.EmbedImagesRequest(images=[b"\x00"])))
    response = await encoder.stub.EmbedTexts(encoder_pb2.EmbedTextsRequest(texts=["still here"]))
    assert len(response.embeddings) == 1


def _batch_sizes() -> tuple[float, float]:
    labels = {"modality": "image"}
    return (
        REGISTRY.get_sample_value("clipmesh_encoder_batch_size_sum", labels) or 0.0,
        REGISTRY.get_sample_value("clipmesh_encoder_batch_size_count", labels) or 0.0,
    )


async def test_concurrent_single_image_calls_are_batched_together(encoder) -> None:
    images = [encode(gradient_image(seed=s)) for s in range(24)]
    items_before, batches_before = _batch_sizes()
    await asyncio.gather(
        *(
            encoder.stub.EmbedImages(encoder_pb2.EmbedImagesRequest(images=[image]))
            for image in images
        )
    )
    items, batches = _batch_sizes()
    assert items - items_before == 24
    assert batches - batches_before < 24  # some calls shared a batch


async def test_model_info_metric_names_model_device_and_precision(encoder) -> None:
    labels = {
        "model": "clipmesh-tiny",
        "model_id": "clipmesh-tiny/random-seed-0",
        "weights": "random",
        "weights_ref": "seed=0",
        "device": "cpu",
        "precision": "fp32",
        "text_languages": "en",
        "tokenizer": "open_clip",
    }
    assert REGISTRY.get_sample_value("clipmesh_encoder_model_info", labels) == 1.0


async def test_a_missing_checkpoint_fails_start_up_with_one_clear_line(tmp_path) -> None:
    env = {
        **os.environ,
        **ENV,
        "CLIPMESH_ENCODER_WEIGHTS": f"checkpoint:{tmp_path}/missing.pt",
        "CLIPMESH_ENCODER_PORT": "0",
        "CLIPMESH_ENCODER_METRICS_PORT": "0",
    }
    code, _, stderr = await run_cli("serve", "encoder", env=env)
    assert code == 1
    assert "missing.pt does not exist" in stderr


async def test_the_model_loads_and_runs_on_one_thread(monkeypatch) -> None:
    """GNU OpenMP gives each thread that starts parallel work its own team of workers; a
    model loaded on one thread and run on another doubles them and slows every forward pass
    (encoding.inference_thread). Loading, image batches and text batches share one thread."""
    threads: dict[str, set[str]] = {"load": set(), "images": set(), "texts": set()}

    def load_here(*args, **kwargs):
        threads["load"].add(threading.current_thread().name)
        return load_configured_model(*args, **kwargs)

    monkeypatch.setattr(encoder_server, "load_configured_model", load_here)
    config = load_config(EncoderConfig, environ=ENV)
    app = create_app(config)
    async with serve_in_process(config, app) as running:
        model = app.encoder.model
        for name, method in (("images", "embed_images"), ("texts", "embed_tokens")):
            original = getattr(model, method)

            def spy(batch, _name=name, _original=original):
                threads[_name].add(threading.current_thread().name)
                return _original(batch)

            monkeypatch.setattr(model, method, spy)
        options = ChannelPolicy(timeout_s=30, max_attempts=1)
        async with open_aio_channel(running.target, options) as channel:
            stub = encoder_pb2_grpc.EncoderServiceStub(channel)
            image = encode(gradient_image(seed=3))
            await stub.EmbedImages(encoder_pb2.EmbedImagesRequest(images=[image]))
            await stub.EmbedTexts(encoder_pb2.EmbedTextsRequest(texts=["龙舟竞渡"]))
    assert threads["load"] == threads["images"] == threads["texts"]
    assert len(threads["load"]) == 1 and threads["load"].pop().startswith("encoder-inference")
