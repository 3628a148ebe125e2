"""The text tower's tokenizer and languages, for every kind of open_clip text tower.

Most open_clip models (ViT-B-32, ViT-L-14, …) read text with open_clip's own byte-level BPE,
which ships inside the library, and were trained on English captions. Others read it with a
Hugging Face tokenizer that open_clip fetches by repository name, which means the hub:

- models whose text tower *is* a Hugging Face model (`xlm-roberta-base-ViT-B-32`,
  `xlm-roberta-large-ViT-H-14`, `nllb-clip-*`, `mt5-*`, `roberta-ViT-B-32`): open_clip builds
  the tower's shape (config.json) and the tokenizer from the repository;
- models with open_clip's own text transformer and a Hugging Face tokenizer (SigLIP and
  SigLIP 2, MetaCLIP 2's `*-worldwide`, CLIPA): only the tokenizer comes from the repository.

A cluster without a hub mounts those files, and `CLIPMESH_ENCODER_TOKENIZER` names the
directory: config.json (Hugging Face towers only) and tokenizer.json (or the SentencePiece
model), as the repository publishes them. The encoder then reads them from that directory only,
with the hub forced offline: nothing is downloaded at start-up, and a missing or mismatched
directory stops it, naming the setting. The CLIP checkpoint (CLIPMESH_ENCODER_WEIGHTS) holds
the trained weights of both towers; the directory gives the text tower's shape and tokenizer.
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
# Any of these makes a Hugging Face tokenizer; tokenizer.json (the fast tokenizer) is preferred.
# The others are the SentencePiece models of XLM-R, T5/mT5 and Gemma repositories.
TOKENIZER_FILES = ("tokenizer.json", "sentencepiece.bpe.model", "spiece.model", "tokenizer.model")
# The model_type a directory's config.json must declare, by the family open_clip's model
# config names (its `hf_model_name`, with any organisation prefix removed).
_FAMILY_MODEL_TYPES = {
    "xlm-roberta": "xlm-roberta",
    "roberta": "roberta",
    "mt5": "mt5",
    "nllb": "m2m_100",
    "bert": "bert",
}
# What a text tower reads when the operator has not said (CLIPMESH_ENCODER_TEXT_LANGUAGES), by
# what it was trained on: open_clip's BPE towers on English captions (OpenAI's WIT, LAION-2B-en,
# DataComp), SigLIP's on English WebLI, CLIPA's on LAION-2B-en; the multilingual ones on LAION-5B
# (xlm-roberta), NLLB-translated captions (nllb-clip), multilingual WebLI (SigLIP i18n and
# SigLIP 2) and MetaCLIP 2's worldwide data.
_MULTILINGUAL_TOKENIZER_FAMILIES = ("xlm-roberta", "xlm-v", "mt5", "nllb")
_MULTILINGUAL_NAME_MARKS = ("i18n", "siglip2", "worldwide", "nllb", "xlm-roberta", "mt5")


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
    for open_clip's own text transformer."""
    return _text_config(model_name).get("hf_model_name") or None


def hugging_face_tokenizer(model_name: str) -> str | None:
    """The Hugging Face repository `model_name`'s tokenizer comes from, or None for open_clip's
    own BPE tokenizer."""
    text_cfg = _text_config(model_name)
    return text_cfg.get("hf_tokenizer_name") or text_cfg.get("hf_model_name") or None


def default_languages(model_name: str) -> tuple[str, ...]:
    """What `model_name`'s text tower reads when the operator has not declared it."""
    name = model_name.lower()
    tokenizer = (hugging_face_tokenizer(model_name) or "").rsplit("/", 1)[-1].lower()
    if any(mark in name for mark in _MULTILINGUAL_NAME_MARKS) or tokenizer.startswith(
        _MULTILINGUAL_TOKENIZER_FAMILIES
    ):
        return (MULTILINGUAL,)
    return ("en",)


def _text_config(model_name: str) -> dict:
    return (open_clip.get_model_config(model_name) or {}).get("text_cfg", {})


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
    repository = hugging_face_tokenizer(model_name)
    if repository is None:
        if tokenizer_dir is not None:
            raise TokenizerSetupError(
                f"{TOKENIZER_SETTING}={tokenizer_dir} is set, but {model_name}'s text tower reads "
                f"text with open_clip's own tokenizer, which ships with the library; unset it"
            )
        return
    tower = hugging_face_family(model_name) is not None
    wanted = "config.json and tokenizer.json" if tower else "tokenizer.json"
    if tokenizer_dir is None:
        raise TokenizerSetupError(
            f"{model_name} reads text with the Hugging Face tokenizer of {repository!r}: set "
            f"{TOKENIZER_SETTING} to a directory with its {wanted} (docs/languages.md says how "
            f"to prepare it); the hub is never asked"
        )
    if not tokenizer_dir.is_dir():
        raise TokenizerSetupError(
            f"{TOKENIZER_SETTING}={tokenizer_dir} does not exist or is not a directory"
        )
    if not os.access(tokenizer_dir, os.R_OK | os.X_OK):
        raise TokenizerSetupError(
            f"{TOKENIZER_SETTING}={tokenizer_dir} is not readable by this process"
        )
    if tower and not (tokenizer_dir / "config.json").is_file():
        raise TokenizerSetupError(
            f"{TOKENIZER_SETTING}={tokenizer_dir} has no config.json (the text tower's shape, "
            f"from {repository}'s Hugging Face repository)"
        )
    if not any((tokenizer_dir / name).is_file() for name in TOKENIZER_FILES):
        raise TokenizerSetupError(
            f"{TOKENIZER_SETTING}={tokenizer_dir} has none of {', '.join(TOKENIZER_FILES)} "
            f"(the tokenizer, from {repository}'s Hugging Face repository)"
        )


def text_config_override(model_name: str, tokenizer_dir: Path) -> dict:
    """The model's text config with the Hugging Face model and tokenizer read from
    `tokenizer_dir`, and never their pretrained weights (the CLIP checkpoint holds them)."""
    text_cfg = dict(_text_config(model_name))
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
        languages=languages or default_languages(model_name),
        tokenizer_source="open_clip",
    )


def hugging_face_text_tower(
    model_name: str, tokenizer_dir: Path, text_model: Any | None, languages: tuple[str, ...] | None
) -> TextTower:
    """The tokenizer in `tokenizer_dir`, checked against the text tower: the transformers model
    built from the same directory (`text_model`, for Hugging Face towers), or the vocabulary
    size open_clip's config gives its own text transformer (`text_model` None).

    Raises:
        TokenizerSetupError: the files do not load, or do not fit the model.
    """
    text_cfg = _text_config(model_name)
    context_length = int(text_cfg.get("context_length", 77))
    config = text_model.config if text_model is not None else None
    family = hugging_face_family(model_name) or ""
    expected_type = _expected_model_type(family)
    if config is not None and expected_type and config.model_type != expected_type:
        raise TokenizerSetupError(
            f"{TOKENIZER_SETTING}={tokenizer_dir} holds a {config.model_type!r} model, but "
            f"{model_name}'s text tower is {family!r} ({expected_type})"
        )
    try:
        tokenizer = open_clip.tokenizer.HFTokenizer(
            str(tokenizer_dir),
            context_length=context_length,
            tokenizer_mode=text_cfg.get("tokenizer_mode"),
            **text_cfg.get("tokenizer_kwargs", {}),
        )
    except Exception as exc:  # transformers raises OSError, ValueError or its own types
        raise TokenizerSetupError(
            f"{TOKENIZER_SETTING}={tokenizer_dir}: the tokenizer does not load: {exc}"
        ) from exc
    vocabulary = len(tokenizer.tokenizer)
    room = config.vocab_size if config is not None else int(text_cfg.get("vocab_size", vocabulary))
    if vocabulary > room:
        where = "config.json" if config is not None else f"open_clip's {model_name} config"
        raise TokenizerSetupError(
            f"{TOKENIZER_SETTING}={tokenizer_dir}: the tokenizer has {vocabulary} tokens but the "
            f"text tower ({where}) has room for {room}: they are not a pair"
        )
    if config is not None:
        _check_tower_fits(tokenizer, config, tokenizer_dir, context_length)
    return TextTower(
        tokenizer=tokenizer,
        context_length=context_length,
        languages=languages or default_languages(model_name),
        tokenizer_source=str(tokenizer_dir),
        identity=_files_identity(tokenizer_dir),
    )


def _check_tower_fits(
    tokenizer: Any, config: Any, tokenizer_dir: Path, context_length: int
) -> None:
    """A Hugging Face tower masks its padding by id and numbers positions from it."""
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
