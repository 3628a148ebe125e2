"""Encoder service settings (`CLIPMESH_ENCODER_*`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clipmesh.runtime.config import ServiceConfig, setting


@dataclass(frozen=True)
class EncoderConfig(ServiceConfig):
    """How the encoder serves."""

    SERVICE = "encoder"

    port: int = setting(50051, help="gRPC port.", minimum=0, maximum=65535)
    metrics_port: int = setting(9151, help="Prometheus metrics port.", minimum=0, maximum=65535)
    data_dir: Path = setting(
        Path("clipmesh-data/encoder"), help="Directory for the service's state."
    )
