"""Multilingual text towers (Hugging Face xlm-roberta) loaded from mounted files only.

The directory is made here (tests/text_towers.py): an XLM-R tokenizer trained on a small zh/en
corpus and a tiny XLM-R config, for `clipmesh-tiny-xlm-roberta` (the family of
xlm-roberta-base-ViT-B-32 at toy size). Loading runs with every outgoing connection refused,
so a hub request would fail the test, not pass it.
"""

from __future__ import annotations

import json
import shutil
import socket

import huggingface_hub.constants
import numpy as np
import pytest
import torch

from clipmesh.encoder.config import EncoderConfig
from clipmesh.encoder.model import ModelLoadError, load_model
from clipmesh.encoder.text_tower import TokenizerSetupError
from clipmesh.encoder.weights import WeightsSpec
from clipmesh.runtime.config import ConfigError, load_config

MODEL = "clipmesh-tiny-xlm-roberta"
RANDOM = WeightsSpec.parse("random:0")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every connection this process tries fails, as on a cluster without a hub."""

    def refuse(*args, **kwargs):
        raise OSError("network access attempted during a test of offline loading")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _load(directory, weights=RANDOM, **kwargs):
    return load_model(
        MODEL, weights, device="cpu", precision="fp32", tokenizer_dir=directory, **kwargs
    )


def _copy(source, tmp_path):
    return shutil.copytree(source, tmp_path / "tokenizer")


def _edit_config(directory, **fields) -> None:
    path = directory / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))


def test_a_multilingual_model_loads_from_files_and_embeds_zh_and_en(xlm_roberta_dir) -> None:
    model = _load(xlm_roberta_dir)
    assert huggingface_hub.constants.HF_HUB_OFFLINE is True
    info = model.info
    assert info.text_languages == ("multilingual",)
    assert info.tokenizer == str(xlm_roberta_dir)
    assert info.context_length == 77  # the tokenizer's, not the tower's position table
    assert info.model_id.startswith(f"{MODEL}/random-seed-0/tokenizer-")
    texts = ["龙舟竞渡", "dragon boats race on the river", "穿汉服的女孩在樱花树下"]
    tokens = model.tokenizer(texts)
    assert tokens.shape == (3, 77)
    # The Chinese text is read as Chinese pieces, not byte fragments or unknown tokens.
    unknown = model.tokenizer.tokenizer.unk_token_id
    assert unknown not in tokens[0][1:5].tolist()
    vectors = model.embed_tokens(tokens)
    assert vectors.shape == (3, info.dimension)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[2])
    # Seeded: the same files and seed give the same vectors.
    again = _load(xlm_roberta_dir)
    assert np.allclose(again.embed_tokens(tokens), vectors, atol=1e-6)
    assert again.info.model_id == info.model_id


def test_a_checkpoint_and_the_mounted_files_give_the_saved_models_vectors(
    xlm_roberta_dir, tmp_path
) -> None:
    """The production path: the CLIP checkpoint holds the text tower's weights, the directory
    its shape and tokenizer."""
    source = _load(xlm_roberta_dir)
    path = tmp_path / "multilingual.pt"
    torch.save({"state_dict": source.towers.model.state_dict()}, path)
    loaded = _load(xlm_roberta_dir, WeightsSpec("checkpoint", str(path)))
    tokens = source.tokenizer(["一只狗在海滩上奔跑", "a dog runs on the beach"])
    assert np.allclose(source.embed_tokens(tokens), loaded.embed_tokens(tokens), atol=1e-6)
    assert loaded.info.model_id.startswith(f"{MODEL}/ckpt-")


def test_the_declared_languages_are_reported(xlm_roberta_dir) -> None:
    model = _load(xlm_roberta_dir, text_languages=("en", "zh"))
    assert model.info.text_languages == ("en", "zh")
    english = load_model("clipmesh-tiny", RANDOM, device="cpu", precision="fp32")
    assert english.info.text_languages == ("en",)
    assert english.info.tokenizer == "open_clip"


def test_other_tokenizer_files_make_another_model_id(xlm_roberta_dir, tmp_path) -> None:
    other = _copy(xlm_roberta_dir, tmp_path)
    tokenizer_json = other / "tokenizer.json"
    tokenizer_json.write_text(tokenizer_json.read_text().replace('"▁a"', '"▁ä"', 1))
    assert _load(other).info.model_id != _load(xlm_roberta_dir).info.model_id


def test_a_multilingual_model_without_the_setting_stops_start_up() -> None:
    with pytest.raises(TokenizerSetupError, match="set CLIPMESH_ENCODER_TOKENIZER"):
        _load(None)


def test_the_setting_for_a_model_with_open_clips_tokenizer_is_refused(xlm_roberta_dir) -> None:
    with pytest.raises(TokenizerSetupError, match=r"CLIPMESH_ENCODER_TOKENIZER=.* unset it"):
        load_model("clipmesh-tiny", RANDOM, device="cpu", tokenizer_dir=xlm_roberta_dir)


def test_a_missing_directory_stops_start_up(tmp_path) -> None:
    with pytest.raises(TokenizerSetupError, match="does not exist or is not a directory"):
        _load(tmp_path / "absent")


@pytest.mark.parametrize(
    ("remove", "message"),
    [("config.json", "has no config.json"), ("tokenizer.json", "has none of tokenizer.json")],
)
def test_a_directory_missing_its_files_stops_start_up(
    xlm_roberta_dir, tmp_path, remove, message
) -> None:
    directory = _copy(xlm_roberta_dir, tmp_path)
    (directory / remove).unlink()
    with pytest.raises(TokenizerSetupError, match=f"CLIPMESH_ENCODER_TOKENIZER=.*{message}"):
        _load(directory)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"model_type": "bert"}, "holds a 'bert' model, but .* is 'xlm-roberta-base'"),
        ({"vocab_size": 40}, r"tokens but the text tower \(config.json\) has room for 40"),
        ({"pad_token_id": 0}, "pads with id 1 but the text tower masks id 0"),
        ({"max_position_embeddings": 60}, "do not fit the text tower's 60 positions"),
    ],
)
def test_a_tokenizer_that_does_not_fit_the_tower_stops_start_up(
    xlm_roberta_dir, tmp_path, fields, message
) -> None:
    directory = _copy(xlm_roberta_dir, tmp_path)
    _edit_config(directory, **fields)
    with pytest.raises(TokenizerSetupError, match=message):
        _load(directory)


def test_a_checkpoint_of_another_shape_names_the_directory(xlm_roberta_dir, tmp_path) -> None:
    source = _load(xlm_roberta_dir)
    path = tmp_path / "multilingual.pt"
    torch.save({"state_dict": source.towers.model.state_dict()}, path)
    wider = _copy(xlm_roberta_dir, tmp_path)
    _edit_config(wider, hidden_size=48, intermediate_size=96)
    with pytest.raises(ModelLoadError, match=r"text tower's shape comes from .*size mismatch"):
        _load(wider, WeightsSpec("checkpoint", str(path)))


def test_int8_runs_a_multilingual_tower_at_the_tokenizers_length(xlm_roberta_dir) -> None:
    fp32 = _load(xlm_roberta_dir)
    int8 = load_model(MODEL, RANDOM, device="cpu", precision="int8", tokenizer_dir=xlm_roberta_dir)
    tokens = fp32.tokenizer(["龙舟竞渡", "dragon boats race"])
    cosine = (fp32.embed_tokens(tokens) * int8.embed_tokens(tokens)).sum(axis=1)
    assert cosine.min() > 0.99


def test_open_clips_own_tower_with_a_hugging_face_tokenizer_loads_it_from_the_directory(
    xlm_roberta_dir,
) -> None:
    """The SigLIP / MetaCLIP 2 kind: open_clip's text transformer, a Hugging Face tokenizer
    (`clipmesh-tiny-hf-tokenizer`, vocabulary 300, 32 tokens)."""
    with pytest.raises(TokenizerSetupError, match="set CLIPMESH_ENCODER_TOKENIZER"):
        load_model("clipmesh-tiny-hf-tokenizer", RANDOM, device="cpu")
    model = load_model(
        "clipmesh-tiny-hf-tokenizer", RANDOM, device="cpu", tokenizer_dir=xlm_roberta_dir
    )
    assert model.info.context_length == 32
    assert model.info.text_languages == ("multilingual",)  # an xlm-v tokenizer: worldwide data
    tokens = model.tokenizer(["龙舟竞渡", "dragon boats"])
    assert tokens.shape == (2, 32)
    assert model.embed_tokens(tokens).shape == (2, model.info.dimension)


def test_a_tokenizer_larger_than_open_clips_vocabulary_is_refused(
    xlm_roberta_dir, tmp_path
) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(xlm_roberta_dir)
    tokenizer.add_tokens([f"piece{i}" for i in range(300)])
    big = tmp_path / "big"
    tokenizer.save_pretrained(big)
    with pytest.raises(TokenizerSetupError, match=r"has room for 300: they are not a pair"):
        load_model("clipmesh-tiny-hf-tokenizer", RANDOM, device="cpu", tokenizer_dir=big)


def test_unknown_declared_languages_are_a_config_error() -> None:
    environ = {"CLIPMESH_ENCODER_WEIGHTS": "random:0", "CLIPMESH_ENCODER_TEXT_LANGUAGES": "en,xx"}
    with pytest.raises(ConfigError, match=r"CLIPMESH_ENCODER_TEXT_LANGUAGES='en,xx'.*unknown"):
        load_config(EncoderConfig, environ=environ)
    environ["CLIPMESH_ENCODER_TEXT_LANGUAGES"] = "zh, en"
    assert load_config(EncoderConfig, environ=environ).declared_languages == ("zh", "en")
