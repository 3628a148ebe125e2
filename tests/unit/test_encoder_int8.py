"""precision=int8: CPU only and refused elsewhere by name, int8 weights converted from the same
weights, embeddings within the quality guard of fp32 on the demo library's keyframes, and a
cache under the data dir that is used when it matches and rebuilt when it does not."""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pytest
import torch

from clipmesh.demo.library import library_keyframes, make_library
from clipmesh.encoder.config import EncoderConfig
from clipmesh.encoder.int8 import (
    MIN_MEAN_COSINE,
    Int8Error,
    Int8Setup,
    build_int8_towers,
    check_fidelity,
)
from clipmesh.encoder.model import ModelLoadError, choose_precision, load_model
from clipmesh.encoder.weights import WeightsSpec
from clipmesh.runtime.config import ConfigError, load_config
from tests.mesh import TINY_ENCODER_ENV

RANDOM = WeightsSpec.parse("random:0")
DEMO_TEXTS = ["a slow pan across a colourful landscape", "aerial shot of a coastline", "雨中咖啡馆"]


@pytest.fixture(scope="module")
def demo_keyframes(tmp_path_factory) -> list:
    """The keyframes ingest takes of the demo library (`make demo`'s eight videos)."""
    return library_keyframes(make_library(tmp_path_factory.mktemp("demo"), count=8, seed=0))


@pytest.fixture(scope="module")
def tiny_fp32():
    return load_model("clipmesh-tiny", RANDOM, device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def tiny_int8(tmp_path_factory):
    cache = tmp_path_factory.mktemp("int8-cache")
    return load_model("clipmesh-tiny", RANDOM, device="cpu", precision="int8", int8_cache_dir=cache)


def _cosines(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    return np.sum(first * second, axis=1)


def _pixels(model, images) -> torch.Tensor:
    return torch.stack([model.preprocess(image) for image in images])


def test_int8_on_a_gpu_is_refused_at_configuration_naming_the_settings() -> None:
    environ = {**TINY_ENCODER_ENV, "CLIPMESH_ENCODER_PRECISION": "int8"}
    with pytest.raises(ConfigError, match="CLIPMESH_ENCODER_PRECISION=int8 runs on CPU only"):
        load_config(EncoderConfig, environ={**environ, "CLIPMESH_ENCODER_DEVICE": "cuda:0"})
    assert load_config(EncoderConfig, environ=environ).precision == "int8"


def test_int8_is_refused_when_auto_resolves_the_device_to_a_gpu() -> None:
    with pytest.raises(ModelLoadError, match=r"int8 \(CLIPMESH_ENCODER_PRECISION\) runs on CPU"):
        choose_precision("int8", torch.device("cuda"))


def test_auto_never_chooses_int8() -> None:
    assert choose_precision("auto", torch.device("cpu")) in ("bf16", "fp32")


def test_int8_reports_its_precision_and_runtime_and_embeds_unit_vectors(
    tiny_int8, demo_keyframes
) -> None:
    assert (tiny_int8.info.precision, tiny_int8.info.device) == ("int8", "cpu")
    assert re.fullmatch(r"openvino \d{4}\.\d+\.\d+", tiny_int8.info.runtime)
    assert tiny_int8.info.model_id == "clipmesh-tiny/random-seed-0"  # the same weights
    vectors = tiny_int8.embed_images(_pixels(tiny_int8, demo_keyframes[:5]))
    assert vectors.shape == (5, 64) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    texts = tiny_int8.embed_tokens(tiny_int8.tokenizer(DEMO_TEXTS))
    assert np.allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)


def test_the_weights_of_both_towers_are_stored_as_int8(tmp_path) -> None:
    load_model("clipmesh-tiny", RANDOM, device="cpu", precision="int8", int8_cache_dir=tmp_path)
    (cached,) = tmp_path.iterdir()
    for tower in ("image", "text"):
        ir = (cached / f"{tower}.xml").read_text()
        int8_weights = re.findall(r'element_type="u8" shape="(\d+), (\d+)"', ir)
        # clipmesh-tiny: 2 blocks × (in_proj, out_proj, c_fc, c_proj) at least, per tower
        assert len(int8_weights) >= 8, tower
        assert 'element_type="f32" shape="256, 64"' not in ir  # no float copy of an MLP weight


def test_int8_embeddings_of_the_demo_keyframes_stay_within_the_guard_of_fp32(
    tiny_fp32, tiny_int8, demo_keyframes
) -> None:
    assert len(demo_keyframes) >= 30
    pixels = _pixels(tiny_fp32, demo_keyframes)
    images = _cosines(tiny_fp32.embed_images(pixels), tiny_int8.embed_images(pixels))
    tokens = tiny_fp32.tokenizer(DEMO_TEXTS)
    texts = _cosines(tiny_fp32.embed_tokens(tokens), tiny_int8.embed_tokens(tokens))
    assert images.mean() >= MIN_MEAN_COSINE, images
    assert texts.mean() >= MIN_MEAN_COSINE, texts
    # int8 is not fp32 under another name: the vectors differ, slightly
    assert images.min() < 1.0 - 1e-7


def test_the_cache_is_used_when_it_matches_and_rebuilt_when_damaged(
    tmp_path, tiny_fp32, demo_keyframes, caplog
) -> None:
    pixels = _pixels(tiny_fp32, demo_keyframes[:6])
    first = load_model(
        "clipmesh-tiny", RANDOM, device="cpu", precision="int8", int8_cache_dir=tmp_path
    )
    (cached,) = tmp_path.iterdir()
    again = load_model(
        "clipmesh-tiny", RANDOM, device="cpu", precision="int8", int8_cache_dir=tmp_path
    )
    assert (first.towers.source, again.towers.source) == ("converted", "cache")
    assert np.array_equal(first.embed_images(pixels), again.embed_images(pixels))

    weights = cached / "image.bin"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the int8 weights
    weights.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="clipmesh.encoder.int8"):
        rebuilt = load_model(
            "clipmesh-tiny", RANDOM, device="cpu", precision="int8", int8_cache_dir=tmp_path
        )
    assert rebuilt.towers.source == "converted"
    assert any(
        "image.bin does not match its recorded digest" in r.getMessage() for r in caplog.records
    )
    assert np.array_equal(first.embed_images(pixels), rebuilt.embed_images(pixels))


def test_a_cache_of_other_weights_or_versions_is_never_used(tmp_path, caplog) -> None:
    load_model("clipmesh-tiny", RANDOM, device="cpu", precision="int8", int8_cache_dir=tmp_path)
    other = WeightsSpec.parse("random:1")
    load_model("clipmesh-tiny", other, device="cpu", precision="int8", int8_cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2  # keyed by the weights: one directory each

    (cached,) = [d for d in tmp_path.iterdir() if "random-seed-0" in d.name]
    manifest = json.loads((cached / "manifest.json").read_text())
    manifest["key"]["openvino"] = "1999.0.0"  # as if written by another OpenVINO
    (cached / "manifest.json").write_text(json.dumps(manifest))
    with caplog.at_level(logging.WARNING, logger="clipmesh.encoder.int8"):
        model = load_model(
            "clipmesh-tiny", RANDOM, device="cpu", precision="int8", int8_cache_dir=tmp_path
        )
    assert model.towers.source == "converted"
    assert any("other weights or library versions" in r.getMessage() for r in caplog.records)


def test_towers_that_do_not_match_the_loaded_weights_are_refused(tiny_fp32) -> None:
    """The start-up guard: int8 towers of other weights (a wrong cache, a broken conversion)
    are compared with the float32 model and refused, never served."""
    other = load_model(
        "clipmesh-tiny", WeightsSpec.parse("random:1"), device="cpu", precision="fp32"
    ).towers.model
    towers = build_int8_towers(other, "clipmesh-tiny/random-seed-1", 64, 77, Int8Setup(None))
    with pytest.raises(Int8Error, match=r"image tower's embeddings have mean cosine .* below 0.99"):
        check_fidelity(tiny_fp32.towers.model, towers, tiny_fp32.preprocess, tiny_fp32.tokenizer)


@pytest.mark.slow
def test_int8_embeddings_match_fp32_on_the_served_model(tmp_path, demo_keyframes) -> None:
    """ViT-B-32, the default model: int8 keeps mean cosine ≥ 0.99 to fp32 on the demo
    library's keyframes (0.9999 measured; docs/benchmarks.md)."""
    fp32 = load_model("ViT-B-32", RANDOM, device="cpu", precision="fp32")
    int8 = load_model("ViT-B-32", RANDOM, device="cpu", precision="int8", int8_cache_dir=tmp_path)
    pixels = _pixels(fp32, demo_keyframes)
    images = _cosines(fp32.embed_images(pixels), int8.embed_images(pixels))
    tokens = fp32.tokenizer(DEMO_TEXTS)
    texts = _cosines(fp32.embed_tokens(tokens), int8.embed_tokens(tokens))
    assert images.mean() >= MIN_MEAN_COSINE and texts.mean() >= MIN_MEAN_COSINE, (images, texts)
