"""Loading an open_clip model onto a device in a precision, and running its two towers.

Loading is explicit: the weights come from a checkpoint, a pretrained tag, or a seeded random
initialisation (announced loudly), and any failure to load stops start-up with a clear error.
fp32, bf16 and fp16 run the towers in torch; int8 (CPU only) runs them in OpenVINO, converted
from the same weights at start-up (`clipmesh.encoder.int8`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import open_clip
import torch
import torch.nn.functional as F

from clipmesh.encoder.config import EncoderConfig
from clipmesh.encoder.int8 import Int8Setup, build_int8_towers, check_fidelity
from clipmesh.encoder.text_tower import (
    TextTower,
    check_setting,
    force_hub_offline,
    hugging_face_family,
    hugging_face_text_tower,
    open_clip_text_tower,
    text_config_override,
)
from clipmesh.encoder.weights import WeightsSpec
from clipmesh.runtime.server import StartupError

log = logging.getLogger(__name__)

# Ships `clipmesh-tiny`, a two-layer CLIP for fast tests.
open_clip.add_model_config(Path(__file__).parent / "model_configs")

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# What the weights are loaded in: int8 is converted from the float32 model.
_LOAD_DTYPES = {**_DTYPES, "int8": torch.float32}
# Where under an encoder's data dir the int8 towers converted at start-up are kept.
INT8_CACHE_DIR = "int8"


class ModelLoadError(StartupError):
    """The model or its weights could not be loaded; the encoder must not start."""


@dataclass(frozen=True)
class ModelInfo:
    """What was loaded, for `GetModelInfo`, metrics and logs."""

    model_id: str
    model_name: str
    weights: WeightsSpec
    device: str
    precision: str
    dimension: int
    image_size: int
    context_length: int
    runtime: str = "torch"
    # The languages the text tower was trained on, as declared (runtime/languages.py).
    text_languages: tuple[str, ...] = ("en",)
    # "open_clip", or the directory the Hugging Face tokenizer was read from.
    tokenizer: str = "open_clip"


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX), where bf16 is fast."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def choose_device(requested: str) -> torch.device:
    """Resolves `auto` to CUDA when present; refuses CUDA when absent."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {requested!r} requested but CUDA is not available")
    return device


def choose_precision(requested: str, device: torch.device) -> str:
    """Resolves `auto`: fp16 on CUDA, bf16 on CPUs with native bf16, fp32 otherwise. `auto`
    never picks int8: its vectors differ slightly from fp32, so it is chosen by name."""
    if requested == "int8" and device.type != "cpu":
        raise ModelLoadError(
            f"precision int8 (CLIPMESH_ENCODER_PRECISION) runs on CPU only, but the device is "
            f"{device}; set CLIPMESH_ENCODER_DEVICE=cpu, or choose fp16 on a GPU"
        )
    if requested == "auto":
        if device.type == "cuda":
            return "fp16"
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if requested == "fp16" and device.type == "cpu":
        raise ModelLoadError("fp16 is not supported on CPU; use bf16 or fp32")
    return requested


class Towers(Protocol):
    """What runs the model: preprocessed pixels or tokens in, unnormalised features out."""

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor: ...

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor: ...


class TorchTowers:
    """Both towers of an open_clip model, run by torch on a device in a dtype."""

    def __init__(self, model: Any, device: torch.device, dtype: torch.dtype) -> None:
        self.model = model
        self._device = device
        self._dtype = dtype

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels.to(self._device, self._dtype))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.encode_text(tokens.to(self._device))


class EncoderModel:
    """An open_clip model ready for inference: preprocessing, tokenizer and both towers."""

    def __init__(
        self,
        towers: Towers,
        preprocess: Any,
        tokenizer: Any,
        info: ModelInfo,
        preprocess_config: dict,
    ) -> None:
        self.towers = towers
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.info = info
        self.preprocess_config = preprocess_config

    @torch.inference_mode()
    def embed_images(self, pixels: torch.Tensor) -> np.ndarray:
        """Embeds preprocessed images (N, 3, H, W) into L2-normalised float32 vectors."""
        features = self.towers.encode_image(pixels)
        return F.normalize(features.float(), dim=-1).cpu().numpy()

    @torch.inference_mode()
    def embed_tokens(self, tokens: torch.Tensor) -> np.ndarray:
        """Embeds tokenised texts (N, context_length) into L2-normalised float32 vectors."""
        features = self.towers.encode_text(tokens)
        return F.normalize(features.float(), dim=-1).cpu().numpy()


def load_model(
    model_name: str,
    weights: WeightsSpec,
    *,
    device: str = "auto",
    precision: str = "auto",
    threads: int = 0,
    int8_cache_dir: Path | None = None,
    tokenizer_dir: Path | None = None,
    text_languages: tuple[str, ...] | None = None,
) -> EncoderModel:
    """Loads `model_name` with `weights` onto a device in a precision.

    Args:
        int8_cache_dir: Where int8 towers converted from these weights are kept between starts
            (the encoder's data dir); None converts them at every start.
        tokenizer_dir: The mounted Hugging Face files of a model whose tokenizer is a Hugging
            Face one (`encoder.text_tower`); required for those models, refused for others.
        text_languages: The languages the text tower was trained on, as the operator declared
            them; None takes what its weights were trained on
            (`text_tower.default_languages`).

    Raises:
        ModelLoadError: unknown model, missing or unreadable checkpoint, failed download, or
            a device/precision this machine cannot run.
        TokenizerSetupError: the tokenizer directory is missing, set for a model that does not
            use one, or does not fit the model.
        Int8Error: int8 towers could not be built or fall short of the quality guard.
    """
    if model_name not in open_clip.list_models():
        raise ModelLoadError(f"unknown open_clip model {model_name!r}")
    check_setting(model_name, tokenizer_dir)
    hugging_face = hugging_face_family(model_name) is not None  # the text tower itself
    if tokenizer_dir is not None:
        # The tokenizer (and a Hugging Face tower's shape) come from the mounted directory;
        # nothing may be fetched.
        force_hub_offline()
    torch_device = choose_device(device)
    resolved_precision = choose_precision(precision, torch_device)
    if threads > 0:
        torch.set_num_threads(threads)
    pretrained = _pretrained_argument(weights)
    if weights.is_random:
        log.warning(
            "RANDOM WEIGHTS: %s initialised from seed %s; embeddings are well-formed but carry no "
            "meaning. Mount real weights with CLIPMESH_ENCODER_WEIGHTS=checkpoint:/path.",
            model_name,
            weights.seed,
            extra={"model": model_name, "weights": f"random:{weights.seed}"},
        )
        torch.manual_seed(weights.seed)
    overrides: dict[str, Any] = {}
    if hugging_face:
        assert tokenizer_dir is not None  # check_setting refused its absence
        overrides = {
            "pretrained_text": False,
            "text_cfg": text_config_override(model_name, tokenizer_dir),
        }
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name, pretrained=pretrained, **overrides
        )
    except Exception as exc:
        hint = f" (the text tower's shape comes from {tokenizer_dir})" if hugging_face else ""
        raise ModelLoadError(
            f"cannot load {model_name} with weights {weights.kind}:{weights.ref}{hint}: "
            f"{_first_problem(exc)}"
        ) from exc
    if tokenizer_dir is not None:  # check_setting required it for a Hugging Face tokenizer
        tower = model.text.transformer if hugging_face else None
        text = hugging_face_text_tower(model_name, tokenizer_dir, tower, text_languages)
    else:
        text = open_clip_text_tower(model_name, text_languages)
    model = model.eval().to(device=torch_device, dtype=_LOAD_DTYPES[resolved_precision])
    info = ModelInfo(
        model_id=_model_id(model_name, weights, text),
        model_name=model_name,
        weights=weights,
        device=str(torch_device),
        precision=resolved_precision,
        dimension=int(model.text_projection.shape[1])
        if hasattr(model, "text_projection")
        else int(model.visual.output_dim),
        image_size=_image_size(model),
        # The tokenizer's: a Hugging Face tower's own (model.context_length) is its position
        # table, longer than the texts its tokenizer makes.
        context_length=text.context_length,
        text_languages=text.languages,
        tokenizer=text.tokenizer_source,
    )
    tokenizer = text.tokenizer
    preprocess_config = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
    towers: Towers = TorchTowers(model, torch_device, _LOAD_DTYPES[resolved_precision])
    fidelity = {}
    if resolved_precision == "int8":
        setup = Int8Setup(int8_cache_dir, threads=threads, bf16_elsewhere=cpu_has_native_bf16())
        towers = build_int8_towers(
            model, info.model_id, info.image_size, info.context_length, setup
        )
        fidelity = check_fidelity(model, towers, preprocess, tokenizer)
        info = replace(info, runtime=towers.runtime)
        del model  # the float32 weights are no longer needed; the int8 towers hold their own
    log.info(
        "model loaded",
        extra={
            "model_id": info.model_id,
            "device": info.device,
            "precision": info.precision,
            "runtime": info.runtime,
            "dimension": info.dimension,
            "text_languages": ",".join(info.text_languages),
            "tokenizer": info.tokenizer,
            **({"int8_towers": towers.source} if fidelity else {}),
            **{f"{name}_cosine_to_fp32": round(value, 5) for name, value in fidelity.items()},
        },
    )
    return EncoderModel(towers, preprocess, tokenizer, info, preprocess_config)


def load_configured_model(config: EncoderConfig, *, threads: int) -> EncoderModel:
    """Loads the model an encoder's settings name, as the service and bulk ingest's own
    workers both do, so their vectors (and model ids) are the same."""
    return load_model(
        config.model,
        WeightsSpec.parse(config.weights),
        device=config.device,
        precision=config.precision,
        threads=threads,
        int8_cache_dir=config.data_dir / INT8_CACHE_DIR,
        tokenizer_dir=config.tokenizer_dir,
        text_languages=config.declared_languages,
    )


def _model_id(model_name: str, weights: WeightsSpec, text: TextTower) -> str:
    """Names the model and weights; a mounted tokenizer's files too, since they decide the
    tokens (and so the vectors) as much as the weights do."""
    model_id = f"{model_name}/{weights.identity()}"
    return f"{model_id}/tokenizer-{text.identity}" if text.identity else model_id


def _first_problem(exc: Exception) -> str:
    """torch lists every mismatched tensor of a checkpoint, one per line (hundreds for a large
    model); the first, and how many more, say what is wrong."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    problems = [line for line in lines if line.startswith(("size mismatch", "Missing key"))]
    if len(problems) <= 1:
        return " ".join(lines)
    return f"{lines[0]} {problems[0]} (and {len(problems) - 1} more)"


def _pretrained_argument(weights: WeightsSpec) -> str | None:
    if weights.kind == "random":
        return None
    if weights.kind == "checkpoint":
        path = Path(weights.ref)
        if not path.is_file():
            raise ModelLoadError(f"checkpoint {path} does not exist or is not a file")
        if not os.access(path, os.R_OK):
            raise ModelLoadError(f"checkpoint {path} is not readable by this process")
        return str(path)
    return weights.ref


def _image_size(model: Any) -> int:
    size = model.visual.image_size
    return int(size[0] if isinstance(size, tuple | list) else size)
