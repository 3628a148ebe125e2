"""The text tower's tokenizer and languages, for both kinds of open_clip text tower.

Most open_clip models (ViT-B-32, ViT-L-14, …) read text with open_clip's own byte-level BPE,
which ships inside the library, and were trained on English captions. Multilingual models
(`xlm-roberta-base-ViT-B-32`, `xlm-roberta-large-ViT-H-14`) have a Hugging Face model as their
text tower: open_clip builds it, and its tokenizer, from a Hugging Face repository name, which
means the hub. A cluster without one mounts those files instead, and
`CLIPMESH_ENCODER_TOKENIZER` names the directory (config.json and tokenizer.json or
sentencepiece.bpe.model, as the model's Hugging Face repository publishes them). The encoder
then builds the tower and the tokenizer from that directory only, with the hub forced offline:
nothing is downloaded at start-up, and a missing or mismatched directory stops it, naming the
setting. The CLIP checkpoint (CLIPMESH_ENCODER_WEIGHTS) holds the text tower's trained weights;
the directory gives its shape and its tokenizer.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import open_clip

from clipmesh.runtime.languages import MULTILINGUAL
from clipmesh.runtime.server import StartupError

TOKENIZER_SETTING = "CLIPMESH_ENCODER_TOKENIZER"
LANGUAGES_SETTING = "CLIPMESH_ENCODER_TEXT_LANGUAGES"
# Either file makes a Hugging Face tokenizer; tokenizer.json (the fast tokenizer) is preferred.
TOKENIZER_FILES = ("tokenizer.json", "sentencepiece.bpe.model")
# The model_type a directory's config.json must declare, by the family open_clip's model
# config names (its `hf_model_name`, with any organisation prefix removed).
_FAMILY_MODEL_TYPES = {
    "xlm-roberta": "xlm-roberta",
    "roberta": "roberta",
    "mt5": "mt5",
    "bert": "bert",
}
# What each kind of tower reads when the operator has not said (CLIPMESH_ENCODER_TEXT_LANGUAGES):
# open_clip's BPE towers were trained on English captions (OpenAI's WIT, LAION-2B-en, DataComp);
# the Hugging Face towers open_clip ships were trained on LAION-5B's captions in ~100 languages.
OPEN_CLIP_DEFAULT_LANGUAGES = ("en",)
HUGGING_FACE_DEFAULT_LANGUAGES = (MULTILINGUAL,)


class TokenizerSetupError(StartupError):
    """The text tower's tokenizer directory is missing, unreadable or does not fit the model."""


@dataclass(frozen=True)
class TextTower:
    """How a model reads text: its tokenizer, how many tokens it reads, and in which languages.

    Attributes:
        tokenizer: Callable on a list of texts, giving (N, context_length) token ids.
        context_length: Tokens the tokenizer gives per text; longer texts are truncated.
        languages: ISO 639-1 codes, or ("multilingual",), the tower was trained on.
        tokenizer_source: "open_clip" or the mounted directory.
        identity: A short hash of the mounted files ("" for open_clip's tokenizer): the
            vectors depend on them, so it is part of the model id.
    """

    tokenizer: Any
    context_length: int
    languages: tuple[str, ...]
    tokenizer_source: str
    identity: str = ""


def hugging_face_family(model_name: str) -> str | None:
    """The Hugging Face model open_clip's config names as `model_name`'s text tower, or None
    for a tower read with open_clip's own tokenizer."""
    config = open_clip.get_model_config(model_name) or {}
    return config.get("text_cfg", {}).get("hf_model_name") or None


def force_hub_offline() -> None:
    """Refuses every Hugging Face hub request in this process, however late it is asked.

    huggingface_hub reads HF_HUB_OFFLINE once, when it is first imported, and transformers asks
    it; so the module's constant is set as well as the environment.
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import huggingface_hub.constants

    huggingface_hub.constants.HF_HUB_OFFLINE = True


def check_setting(model_name: str, tokenizer_dir: Path | None) -> None:
    """Fails fast when the tokenizer setting does not fit the model's kind of text tower.

    Raises:
        TokenizerSetupError: a Hugging Face tower without the setting, or the setting for a
            model that uses open_clip's own tokenizer, or a directory missing its files.
    """
    family = hugging_face_family(model_name)
    if family is None:
        if tokenizer_dir is not None:
            raise TokenizerSetupError(
                f"{TOKENIZER_SETTING}={tokenizer_dir} is set, but {model_name}'s text tower reads "
                f"text with open_clip's own tokenizer, which ships with the library; unset it"
            )
        return
    if tokenizer_dir is None:
        raise TokenizerSetupError(
            f"{model_name}'s text tower is the Hugging Face model {family!r}: set "
            f"{TOKENIZER_SETTING} to a directory with its config.json and tokenizer.json "
            f"(docs/languages.md says how to prepare it); the hub is never asked"
        )
    if not tokenizer_dir.is_dir():
        raise TokenizerSetupError(
            f"{TOKENIZER_SETTING}={tokenizer_dir} does not exist or is not a directory"
        )
    if not os.access(tokenizer_dir, os.R_OK | os.X_OK):
        raise TokenizerSetupError(
            f"{TOKENIZER_SETTING}={tokenizer_dir} is not readable by this process"
        )
    if not (tokenizer_dir / "config.json").is_file():
        raise TokenizerSetupError(
            f"{TOKENIZER_SETTING}={tokenizer_dir} has no config.json (the text tower's shape, "
            f"from {family}'s Hugging Face repository)"
        )
    if not any((tokenizer_dir / name).is_file() for name in TOKENIZER_FILES):
        raise TokenizerSetupError(
            f"{TOKENIZER_SETTING}={tokenizer_dir} has neither {' nor '.join(TOKENIZER_FILES)} "
            f"(the tokenizer, from {family}'s Hugging Face repository)"
        )


def text_config_override(model_name: str, tokenizer_dir: Path) -> dict:
    """The model's text config with the Hugging Face model and tokenizer read from
    `tokenizer_dir`, and never their pretrained weights (the CLIP checkpoint holds them)."""
    text_cfg = dict(open_clip.get_model_config(model_name)["text_cfg"])
    text_cfg["hf_model_name"] = str(tokenizer_dir)
    text_cfg["hf_tokenizer_name"] = str(tokenizer_dir)
    text_cfg["hf_model_pretrained"] = False
    return text_cfg


def open_clip_text_tower(model_name: str, languages: tuple[str, ...] | None) -> TextTower:
    """The tokenizer open_clip ships for `model_name`."""
    tokenizer = open_clip.get_tokenizer(model_name)
    return TextTower(
        tokenizer=tokenizer,
        context_length=int(tokenizer.context_length),
        languages=languages or OPEN_CLIP_DEFAULT_LANGUAGES,
        tokenizer_source="open_clip",
    )


def hugging_face_text_tower(
    model_name: str, tokenizer_dir: Path, text_model: Any, languages: tuple[str, ...] | None
) -> TextTower:
    """The tokenizer in `tokenizer_dir`, checked against the text tower built from the same
    directory (`text_model`: the transformers model inside open_clip's HFTextEncoder).

    Raises:
        TokenizerSetupError: the files do not load, or do not fit the model.
    """
    family = hugging_face_family(model_name) or ""
    text_cfg = open_clip.get_model_config(model_name)["text_cfg"]
    context_length = int(text_cfg.get("context_length", 77))
    config = text_model.config
    expected_type = _expected_model_type(family)
    if expected_type and config.model_type != expected_type:
        raise TokenizerSetupError(
            f"{TOKENIZER_SETTING}={tokenizer_dir} holds a {config.model_type!r} model, but "
            f"{model_name}'s text tower is {family!r} ({expected_type})"
        )
    try:
        tokenizer = open_clip.tokenizer.HFTokenizer(
            str(tokenizer_dir),
            context_length=context_length,
            **text_cfg.get("tokenizer_kwargs", {}),
        )
    except Exception as exc:  # transformers raises OSError, ValueError or its own types
        raise TokenizerSetupError(
            f"{TOKENIZER_SETTING}={tokenizer_dir}: the tokenizer does not load: {exc}"
        ) from exc
    vocabulary = len(tokenizer.tokenizer)
    if vocabulary > config.vocab_size:
        raise TokenizerSetupError(
            f"{TOKENIZER_SETTING}={tokenizer_dir}: the tokenizer has {vocabulary} tokens but the "
            f"text tower's config.json has room for {config.vocab_size}: they are not a pair"
        )
    if tokenizer.tokenizer.pad_token_id != config.pad_token_id:
        raise TokenizerSetupError(
            f"{TOKENIZER_SETTING}={tokenizer_dir}: the tokenizer pads with id "
            f"{tokenizer.tokenizer.pad_token_id} but the text tower masks id "
            f"{config.pad_token_id} as padding: they are not a pair"
        )
    # RoBERTa-style towers number positions from pad_token_id + 1.
    positions = int(getattr(config, "max_position_embeddings", context_length + 2))
    if context_length + 2 > positions:
        raise TokenizerSetupError(
            f"{TOKENIZER_SETTING}={tokenizer_dir}: texts of {context_length} tokens do not fit "
            f"the text tower's {positions} positions (config.json max_position_embeddings)"
        )
    return TextTower(
        tokenizer=tokenizer,
        context_length=context_length,
        languages=languages or HUGGING_FACE_DEFAULT_LANGUAGES,
        tokenizer_source=str(tokenizer_dir),
        identity=_files_identity(tokenizer_dir),
    )


def _expected_model_type(family: str) -> str | None:
    name = family.rsplit("/", 1)[-1]
    for prefix in sorted(_FAMILY_MODEL_TYPES, key=len, reverse=True):
        if name.startswith(prefix):
            return _FAMILY_MODEL_TYPES[prefix]
    return None


def _files_identity(directory: Path) -> str:
    """A short hash of the files that decide the tokens and the tower's shape."""
    digest = hashlib.sha256()
    for name in ("config.json", *TOKENIZER_FILES, "tokenizer_config.json"):
        path = directory / name
        if path.is_file():
            digest.update(name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
