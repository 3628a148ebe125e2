"""Orchestrator settings (`CLIPMESH_ORCHESTRATOR_*`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clipmesh.runtime.config import ConfigError, ServiceConfig, setting


@dataclass(frozen=True)
class OrchestratorConfig(ServiceConfig):
    """How the orchestrator serves and where its dependencies are."""

    SERVICE = "orchestrator"

    port: int = setting(50050, help="gRPC port (the public API).", minimum=0, maximum=65535)
    metrics_port: int = setting(9150, help="Prometheus metrics port.", minimum=0, maximum=65535)
    data_dir: Path = setting(
        Path("clipmesh-data/orchestrator"), help="Directory for projects and thumbnails."
    )
    encoder_target: str = setting(
        "127.0.0.1:50051",
        help="Encoder address; `dns:///encoder-headless:50051` on Kubernetes.",
    )
    index_target: str = setting("127.0.0.1:50052", help="Index address.")
    generator_target: str = setting("127.0.0.1:50053", help="Generator gateway address.")

    def validate(self) -> None:
        for name in ("encoder_target", "index_target", "generator_target"):
            if not getattr(self, name).strip():
                raise ConfigError(
                    f"{self.env_name(name)} / {self.flag_name(name)} must not be empty"
                )
