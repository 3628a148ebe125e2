"""Model loading: explicit weights, clear failures, deterministic random init, checkpoints,
and bf16 embeddings equivalent to fp32 on the same inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clipmesh.encoder.images import ImageLimits, PixelTransform, decode_image
from clipmesh.encoder.model import ModelLoadError, cpu_has_native_bf16, load_model
from clipmesh.encoder.weights import WeightsSpec
from tests.media import encode, gradient_image

RANDOM = WeightsSpec.parse("random:7")


def _pixels(model, count: int = 4) -> torch.Tensor:
    limits = ImageLimits(max_bytes=10**7, max_pixels=10**8)
    images = [
        decode_image(encode(gradient_image(160, 120, seed=i)), i, limits, model.info.image_size)
        for i in range(count)
    ]
    return torch.stack([model.preprocess(image) for image in images])


def test_random_weights_are_seeded_and_reported() -> None:
    first = load_model("clipmesh-tiny", RANDOM, device="cpu", precision="fp32")
    second = load_model("clipmesh-tiny", RANDOM, device="cpu", precision="fp32")
    other = load_model(
        "clipmesh-tiny", WeightsSpec.parse("random:8"), device="cpu", precision="fp32"
    )
    pixels = _pixels(first)
    assert np.allclose(first.embed_images(pixels), second.embed_images(pixels))
    assert not np.allclose(first.embed_images(pixels), other.embed_images(pixels))
    assert first.info.model_id == "clipmesh-tiny/random-seed-7"
    assert first.info.weights.is_random


def test_vectors_are_l2_normalised() -> None:
    model = load_model("clipmesh-tiny", RANDOM, device="cpu", precision="fp32")
    vectors = model.embed_images(_pixels(model))
    assert vectors.shape == (4, model.info.dimension)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    tokens = model.tokenizer(["a red car", "一辆红色的车"])
    assert np.allclose(np.linalg.norm(model.embed_tokens(tokens), axis=1), 1.0, atol=1e-5)


def test_a_checkpoint_loads_and_names_the_model_by_its_content(tmp_path) -> None:
    source = load_model("clipmesh-tiny", RANDOM, device="cpu", precision="fp32")
    path = tmp_path / "tiny.pt"
    torch.save({"state_dict": source.towers.model.state_dict()}, path)
    loaded = load_model(
        "clipmesh-tiny", WeightsSpec("checkpoint", str(path)), device="cpu", precision="fp32"
    )
    pixels = _pixels(source)
    assert np.allclose(source.embed_images(pixels), loaded.embed_images(pixels), atol=1e-6)
    assert loaded.info.model_id.startswith("clipmesh-tiny/ckpt-")
    assert not loaded.info.weights.is_random


def test_a_missing_checkpoint_stops_start_up(tmp_path) -> None:
    missing = WeightsSpec("checkpoint", str(tmp_path / "nope.safetensors"))
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model("clipmesh-tiny", missing, device="cpu")


def test_a_corrupt_checkpoint_stops_start_up_instead_of_falling_back(tmp_path) -> None:
    path = tmp_path / "corrupt.pt"
    path.write_bytes(b"this is not a checkpoint" * 100)
    with pytest.raises(ModelLoadError, match="cannot load clipmesh-tiny"):
        load_model("clipmesh-tiny", WeightsSpec("checkpoint", str(path)), device="cpu")


def test_an_unknown_model_is_refused() -> None:
    with pytest.raises(ModelLoadError, match="unknown open_clip model"):
        load_model("ViT-Q-99", RANDOM, device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU refusal")
def test_cuda_without_a_gpu_is_refused() -> None:
    with pytest.raises(ModelLoadError, match="CUDA is not available"):
        load_model("clipmesh-tiny", RANDOM, device="cuda")


def test_fp16_on_cpu_is_refused() -> None:
    with pytest.raises(ModelLoadError, match="fp16 is not supported on CPU"):
        load_model("clipmesh-tiny", RANDOM, device="cpu", precision="fp16")


def test_auto_precision_on_cpu_follows_native_bf16() -> None:
    model = load_model("clipmesh-tiny", RANDOM, device="cpu", precision="auto")
    assert model.info.precision == ("bf16" if cpu_has_native_bf16() else "fp32")


@pytest.mark.slow
def test_bf16_embeddings_match_fp32_on_the_served_model() -> None:
    """ViT-B-32, the default model: bf16 weights stay within cosine 0.995 of fp32."""
    weights = WeightsSpec.parse("random:0")
    fp32 = load_model("ViT-B-32", weights, device="cpu", precision="fp32")
    bf16 = load_model("ViT-B-32", weights, device="cpu", precision="bf16")
    pixels = _pixels(fp32, count=4)
    image_cosines = np.sum(fp32.embed_images(pixels) * bf16.embed_images(pixels), axis=1)
    tokens = fp32.tokenizer(["aerial shot of a coastline", "汉服女孩在樱花树下跳舞"])
    text_cosines = np.sum(fp32.embed_tokens(tokens) * bf16.embed_tokens(tokens), axis=1)
    assert image_cosines.min() >= 0.995, image_cosines
    assert text_cosines.min() >= 0.995, text_cosines


@pytest.mark.parametrize(("width", "height"), [(160, 120), (120, 300), (224, 224), (97, 61)])
def test_the_numpy_transform_matches_open_clips_preprocessing(width: int, height: int) -> None:
    model = load_model("ViT-B-32", RANDOM, device="cpu", precision="fp32")
    transform = PixelTransform.from_config(model.preprocess_config)
    assert transform is not None
    image = gradient_image(width, height, seed=3)
    expected = model.preprocess(image).numpy()
    assert np.abs(transform(image) - expected).max() < 1e-4
