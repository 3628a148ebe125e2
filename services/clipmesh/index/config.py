"""Index service settings (`CLIPMESH_INDEX_*`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clipmesh.runtime.config import ServiceConfig, setting


@dataclass(frozen=True)
class IndexConfig(ServiceConfig):
    """How the index serves."""

    SERVICE = "index"

    port: int = setting(50052, help="gRPC port.", minimum=0, maximum=65535)
    metrics_port: int = setting(9152, help="Prometheus metrics port.", minimum=0, maximum=65535)
    data_dir: Path = setting(Path("clipmesh-data/index"), help="Directory for WAL and snapshots.")
