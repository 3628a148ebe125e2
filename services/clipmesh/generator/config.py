"""Generator gateway settings (`CLIPMESH_GENERATOR_*`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clipmesh.runtime.config import ServiceConfig, setting


@dataclass(frozen=True)
class GeneratorConfig(ServiceConfig):
    """How the generator gateway serves."""

    SERVICE = "generator"

    port: int = setting(50053, help="gRPC port.", minimum=0, maximum=65535)
    metrics_port: int = setting(9153, help="Prometheus metrics port.", minimum=0, maximum=65535)
    data_dir: Path = setting(
        Path("clipmesh-data/generator"), help="Directory for the job store and outputs."
    )
