"""Encoder service settings (`CLIPMESH_ENCODER_*`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clipmesh.encoder.weights import WEIGHTS_FORMS, WeightsSpec
from clipmesh.runtime.config import ConfigError, ServiceConfig, setting
from clipmesh.runtime.languages import MULTILINGUAL, parse_languages


@dataclass(frozen=True)
class EncoderConfig(ServiceConfig):
    """How the encoder serves: which model, where, how it batches and what input it accepts."""

    SERVICE = "encoder"

    port: int = setting(50051, help="gRPC port.", minimum=0, maximum=65535)
    metrics_port: int = setting(9151, help="Prometheus metrics port.", minimum=0, maximum=65535)
    data_dir: Path = setting(
        Path("clipmesh-data/encoder"), help="Directory for the service's state."
    )
    model: str = setting(
        "ViT-B-32",
        help="open_clip architecture name (ViT-B-32, ViT-L-14, …) or clipmesh-tiny for tests.",
    )
    weights: str = setting(
        "",
        help=f"Where the weights come from: {WEIGHTS_FORMS}. Required: there is no silent "
        "default, and random weights give meaningless (but well-formed) embeddings.",
    )
    tokenizer: str = setting(
        "",
        help="Directory holding the text tower's Hugging Face files (config.json and "
        "tokenizer.json or sentencepiece.bpe.model), for models whose text tower is a Hugging "
        "Face model (xlm-roberta-base-ViT-B-32, xlm-roberta-large-ViT-H-14): required for them, "
        "refused for others. Read from that directory only; the hub is never asked.",
    )
    text_languages: str = setting(
        "",
        help=f"Languages the text tower was trained on: ISO 639-1 codes (en,zh) or "
        f"{MULTILINGUAL!r}. Reported by GetModelInfo; a text in a script none of them uses gets "
        f"a warning. Empty: en for open_clip's own tokenizer (OpenAI, LAION-2B-en weights), "
        f"{MULTILINGUAL} for Hugging Face text towers (LAION-5B weights).",
    )
    device: str = setting("auto", help="auto (CUDA if present), cpu, or cuda[:N].")
    precision: str = setting(
        "auto",
        help="auto (fp16 on CUDA, bf16 on CPUs with native bf16, else fp32), fp32, bf16, fp16, "
        "or int8 (CPU only: int8 weights and activations through OpenVINO, converted from the "
        "same weights at start-up and cached under data_dir; never chosen by auto).",
        choices=("auto", "fp32", "bf16", "fp16", "int8"),
    )
    max_batch: int = setting(
        16,
        help="Most items run together in one batch. 16 saturates a small CPU while leaving the "
        "next batch room to queue and preprocess; use 64-256 on a GPU.",
        minimum=1,
        maximum=1024,
    )
    max_queue_delay_ms: float = setting(
        0.0,
        help="Longest an item waits for a fuller batch when a full one cannot be formed. 0: a "
        "batch starts as soon as the model is free, and what arrives while it computes forms "
        "the next (continuous batching: no wait at low load, full batches at high load); a few "
        "ms can help a GPU whose larger batches are nearly free when callers arrive spread out.",
        minimum=0,
        maximum=1000,
    )
    background_min_share: float = setting(
        0.125,
        help="Share of each batch kept for batch-priority (ingest) items while any wait, so "
        "searches go first but ingest never starves (0.125 of 16 is 2 places).",
        minimum=0,
        maximum=0.5,
    )
    max_queue_items: int = setting(
        1024, help="Items queued per modality before requests are refused.", minimum=1
    )
    max_items_per_request: int = setting(
        256, help="Most images or texts in one request.", minimum=1, maximum=4096
    )
    max_request_mb: int = setting(
        48, help="Most bytes of images in one request, in MiB.", minimum=1, maximum=1024
    )
    max_image_mb: float = setting(
        16.0, help="Most bytes of one encoded image, in MiB.", minimum=0.01
    )
    max_image_megapixels: float = setting(
        40.0,
        help="Most pixels of one image, checked before decoding (decompression bombs).",
        minimum=0.01,
    )
    max_text_chars: int = setting(
        4096, help="Most characters of one text (longer texts are refused).", minimum=1
    )
    inference_threads: int = setting(
        0, help="Intra-op threads for CPU inference (0 = all cores).", minimum=0, maximum=256
    )
    preprocess_threads: int = setting(
        1, help="Threads that decode and resize images while a batch runs.", minimum=1, maximum=64
    )

    @property
    def tokenizer_dir(self) -> Path | None:
        """The mounted tokenizer directory, or None when none is set."""
        return Path(self.tokenizer) if self.tokenizer.strip() else None

    @property
    def declared_languages(self) -> tuple[str, ...] | None:
        """The declared text languages, or None to take the text tower's default."""
        return parse_languages(self.text_languages) if self.text_languages.strip() else None

    def validate(self) -> None:
        super().validate()
        try:
            WeightsSpec.parse(self.weights)
        except ValueError as exc:
            raise ConfigError(
                f"{self.env_name('weights')} / {self.flag_name('weights')}: {exc}"
            ) from exc
        try:
            _ = self.declared_languages
        except ValueError as exc:
            raise ConfigError(
                f"{self.env_name('text_languages')}={self.text_languages!r}: {exc}"
            ) from exc
        if self.precision == "int8" and self.device.startswith("cuda"):
            raise ConfigError(
                f"{self.env_name('precision')}=int8 runs on CPU only, but "
                f"{self.env_name('device')}={self.device}; use fp16 on a GPU"
            )
        if self.max_request_mb + 1 > self.max_message_mb:
            raise ConfigError(
                f"{self.env_name('max_request_mb')}={self.max_request_mb} must be below "
                f"{self.env_name('max_message_mb')}={self.max_message_mb}"
            )
