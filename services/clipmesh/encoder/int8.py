"""`precision=int8` on CPU: both towers as OpenVINO models with int8 weights.

NNCF compresses the weights of every matrix multiplication (and the patch embedding) to int8,
per output channel, from the very model the encoder loaded; OpenVINO's CPU plugin quantizes
the activations of each batch as it runs (dynamic quantization), so no calibration images are
needed and nothing depends on what the first batches happened to show. Why OpenVINO rather
than torch's dynamic quantization or ONNX Runtime is measured in docs/benchmarks.md.

Converting ViT-B-32 takes tens of seconds on two cores, so the converted towers are cached
under the encoder's data dir, named by the model id (architecture and weights identity) and the
versions of everything that took part in converting. Each file's digest is checked before use;
a stale, partial or damaged cache is rebuilt, never trusted. Whatever was loaded is compared
with the float32 model on probe inputs before the encoder serves (`check_fidelity`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
import torch.nn.functional as F

from clipmesh.demo.synthetic import gradient_image
from clipmesh.runtime.server import StartupError

log = logging.getLogger(__name__)

# The quality guard: int8 embeddings of the probe inputs must keep this mean cosine to fp32.
MIN_MEAN_COSINE = 0.99
# Activations are quantized in groups of this many input channels. Per row (the whole input
# dimension) was not faster here and 32 (OpenVINO's default) is slower; 128 measured best.
DYNAMIC_QUANTIZATION_GROUP_SIZE = 128
# Bumped when the way towers are converted changes, so older caches are rebuilt.
_CACHE_FORMAT = 1
_TOWERS = ("image", "text")
_PROBE_TEXTS = ("aerial shot of a coastline at dusk", "汉服女孩在樱花树下跳舞", "a red car", "雨")


class Int8Error(StartupError):
    """int8 towers could not be built or fall short of the quality guard: the encoder must not
    start (it never serves another precision instead)."""


@dataclass(frozen=True)
class Int8Setup:
    """How the int8 towers run.

    Attributes:
        cache_dir: Where converted towers are kept between starts; None converts every start.
        threads: Inference threads (0: OpenVINO's choice, every core).
        bf16_elsewhere: Run what is not an int8 matrix multiplication (attention scores,
            normalisation, activations) in bf16; where the CPU computes bf16 natively.
    """

    cache_dir: Path | None
    threads: int = 0
    bf16_elsewhere: bool = False


class Int8Towers:
    """The image and text towers as compiled OpenVINO models; same inputs and outputs as the
    open_clip model's `encode_image` / `encode_text` (unnormalised float features)."""

    def __init__(self, image: Any, text: Any, runtime: str, source: str) -> None:
        self._image = _Compiled(image)
        self._text = _Compiled(text)
        self.runtime = runtime
        self.source = source  # "converted" or "cache", for the start-up log

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return self._image(pixels.float())

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self._text(tokens)


class _Compiled:
    """One compiled model with its own infer request; callers may come from several threads."""

    def __init__(self, compiled: Any) -> None:
        self._request = compiled.create_infer_request()
        self._lock = threading.Lock()

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        with self._lock:
            outputs = self._request.infer([inputs.cpu().numpy()])
            return torch.from_numpy(np.array(outputs[0], copy=True))


def build_int8_towers(
    model: torch.nn.Module, model_id: str, image_size: int, context_length: int, setup: Int8Setup
) -> Int8Towers:
    """Converts `model` (float32, on CPU) to int8 towers, or loads them from the cache.

    Raises:
        Int8Error: OpenVINO or NNCF is missing, or conversion failed.
    """
    ov, nncf = _runtime_modules()
    key_fields = {
        "format": _CACHE_FORMAT,
        "model_id": model_id,
        "image_size": image_size,
        "context_length": context_length,
        "openvino": ov.__version__,
        "nncf": nncf.__version__,
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
    }
    directory = _cache_directory(setup.cache_dir, model_id, key_fields)
    models, source = None, "converted"
    if directory is not None and directory.exists():
        models = _load_cached(ov, directory, key_fields)
        source = "cache" if models is not None else "converted"
    if models is None:
        models = _convert(ov, nncf, model, image_size, context_length)
        if directory is not None:
            _store(ov, models, directory, key_fields)
    core = ov.Core()
    properties = {
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": "bf16" if setup.bf16_elsewhere else "f32",
        "DYNAMIC_QUANTIZATION_GROUP_SIZE": DYNAMIC_QUANTIZATION_GROUP_SIZE,
    }
    if setup.threads > 0:
        properties["INFERENCE_NUM_THREADS"] = setup.threads
    compiled = {name: core.compile_model(models[name], "CPU", properties) for name in _TOWERS}
    runtime = f"openvino {ov.__version__.split('-')[0]}"
    return Int8Towers(compiled["image"], compiled["text"], runtime, source)


def check_fidelity(
    reference: torch.nn.Module,
    towers: Int8Towers,
    preprocess: Callable[[Any], torch.Tensor],
    tokenizer: Callable[[list[str]], torch.Tensor],
) -> dict[str, float]:
    """Mean cosine of int8 to float32 embeddings of probe images and texts, refused below
    `MIN_MEAN_COSINE`: a broken conversion or a cache built from other weights cannot serve.

    Raises:
        Int8Error: naming the tower and the measured cosine.
    """
    pixels = torch.stack([preprocess(gradient_image(160, 120, seed=seed)) for seed in range(8)])
    tokens = tokenizer(list(_PROBE_TEXTS))
    with torch.inference_mode():
        pairs = {
            "image": (reference.encode_image(pixels), towers.encode_image(pixels)),
            "text": (reference.encode_text(tokens), towers.encode_text(tokens)),
        }
    cosines = {
        name: float(F.cosine_similarity(expected.float(), got.float(), dim=-1).mean())
        for name, (expected, got) in pairs.items()
    }
    for name, cosine in cosines.items():
        if not cosine >= MIN_MEAN_COSINE:
            raise Int8Error(
                f"precision int8: the {name} tower's embeddings have mean cosine {cosine:.4f} "
                f"to float32 on the probe inputs, below {MIN_MEAN_COSINE}; refusing to serve "
                "them (choose CLIPMESH_ENCODER_PRECISION=bf16 or fp32)"
            )
    return cosines


def _runtime_modules() -> tuple[Any, Any]:
    try:
        _decline_telemetry()
        import nncf
        import openvino
    except ImportError as exc:
        raise Int8Error(
            f"precision int8 needs OpenVINO and NNCF, which clipmesh installs ({exc}); "
            "reinstall clipmesh or choose CLIPMESH_ENCODER_PRECISION=bf16 or fp32"
        ) from exc
    nncf.set_log_level(logging.WARNING)  # not a table of layers at every start
    return openvino, nncf


def _decline_telemetry() -> None:
    """OpenVINO's converter and NNCF send usage statistics unless the user's consent file
    (~/intel/openvino_telemetry) says no; an encoder must not call out, so where no choice is
    recorded it records "no" through the library's own checker (sending nothing)."""
    from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker

    checker = OptInChecker()
    if checker.check(enable_opt_in_dialog=False) != ConsentCheckResult.NO_FILE:
        return
    if not checker.update_result(ConsentCheckResult.DECLINED):
        log.warning(
            "could not record the refusal of OpenVINO telemetry in %s (not writable); make "
            "HOME writable or write 0 into that file",
            checker.consent_file(),
        )


class _TextTower(torch.nn.Module):
    """`encode_text` as a module's forward, for conversion."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.encode_text(tokens)


class _ImageTower(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels)


def _convert(
    ov: Any, nncf: Any, model: torch.nn.Module, image_size: int, context_length: int
) -> dict[str, Any]:
    """Both towers exported by torch.export (batch dimension free), converted to OpenVINO
    and their weights compressed to int8. Texts are `context_length` tokens, the tokenizer's
    length (a Hugging Face tower's `model.context_length` is its longer position table)."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    examples = {
        "image": (_ImageTower(model), torch.zeros(2, 3, image_size, image_size)),
        "text": (_TextTower(model), torch.zeros(2, context_length, dtype=torch.long)),
    }
    models = {}
    for name, (tower, example) in examples.items():
        try:
            with torch.no_grad():
                program = torch.export.export(
                    tower.eval(), (example,), dynamic_shapes=({0: batch},)
                )
            converted = ov.convert_model(program)
            models[name] = nncf.compress_weights(converted, mode=nncf.CompressWeightsMode.INT8_ASYM)
        except Exception as exc:  # conversion errors come from three libraries, in any type
            raise Int8Error(f"precision int8: converting the {name} tower failed: {exc}") from exc
    return models


def _cache_directory(cache_dir: Path | None, model_id: str, key_fields: dict) -> Path | None:
    if cache_dir is None:
        return None
    key = hashlib.sha256(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()[:16]
    readable = "".join(c if c.isalnum() or c in "-_." else "-" for c in model_id)
    return cache_dir / f"{readable}-{key}"


def _load_cached(ov: Any, directory: Path, key_fields: dict) -> dict[str, Any] | None:
    """The cached towers, or None (logged with the reason) when they cannot be trusted."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
        if manifest.get("key") != key_fields:
            raise ValueError("it was built for other weights or library versions")
        for file_name, digest in manifest["files"].items():
            if _sha256(directory / file_name) != digest:
                raise ValueError(f"{file_name} does not match its recorded digest")
        return {name: ov.Core().read_model(directory / f"{name}.xml") for name in _TOWERS}
    except Exception as exc:  # a missing file, bad JSON, or a model OpenVINO cannot read
        log.warning(
            "int8 cache %s cannot be used (%s); converting again",
            directory,
            exc,
            extra={"cache": str(directory)},
        )
        return None


def _store(ov: Any, models: dict[str, Any], directory: Path, key_fields: dict) -> None:
    """Writes the towers and their manifest beside `directory`, then moves them into place, so
    a crash mid-write leaves no directory that looks complete."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".int8-", dir=directory.parent))
    try:
        for name in _TOWERS:
            ov.save_model(models[name], staging / f"{name}.xml", compress_to_fp16=False)
        files = {path.name: _sha256(path) for path in sorted(staging.iterdir()) if path.is_file()}
        manifest = {"key": key_fields, "files": files}
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        shutil.rmtree(directory, ignore_errors=True)
        staging.rename(directory)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        log.warning(
            "int8 cache %s could not be written (%s); the next start converts again",
            directory,
            exc,
            extra={"cache": str(directory)},
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
