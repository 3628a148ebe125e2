"""Index service settings (`CLIPMESH_INDEX_*`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clipmesh.index.ann import MODES
from clipmesh.runtime.config import ConfigError, ServiceConfig, setting


@dataclass(frozen=True)
class IndexConfig(ServiceConfig):
    """How the index serves, which backend holds the data, and how it indexes."""

    SERVICE = "index"

    port: int = setting(50052, help="gRPC port.", minimum=0, maximum=65535)
    metrics_port: int = setting(9152, help="Prometheus metrics port.", minimum=0, maximum=65535)
    data_dir: Path = setting(Path("clipmesh-data/index"), help="Directory for WAL and snapshots.")
    backend: str = setting(
        "faiss",
        help="faiss (embedded, state in data_dir) or milvus (a Milvus deployment).",
        choices=("faiss", "milvus"),
    )
    milvus_uri: str = setting(
        "", help="Milvus address (http://milvus:19530) or a milvus-lite file path."
    )
    milvus_token: str = setting("", help="Milvus token (user:password or API key).", secret=True)
    milvus_db: str = setting("", help="Milvus database ('' = default).")
    index_mode: str = setting(
        "auto",
        help="auto (exact while small, then IVF-SQ8, or IVF-PQ over the memory budget), exact, "
        "balanced (IVF-SQ8), compact (IVF-PQ).",
        choices=MODES,
    )
    exact_max_segments: int = setting(
        50_000, help="Largest collection searched exactly (flat) in auto mode.", minimum=0
    )
    memory_budget_mb: int = setting(
        4096, help="Index memory per collection before auto mode turns compact.", minimum=1
    )
    nprobe: int = setting(32, help="Inverted lists probed per search at full effort.", minimum=1)
    min_nprobe: int = setting(
        4,
        help="Fewest lists probed when the deadline is short (results flagged degraded).",
        minimum=1,
    )
    max_top_k: int = setting(1000, help="Largest top_k accepted.", minimum=1, maximum=100_000)
    snapshot_wal_mb: int = setting(
        256, help="Write-ahead log size that triggers a background snapshot.", minimum=1
    )
    snapshot_interval_s: float = setting(
        3600.0,
        help="Longest unsnapshotted writes wait: after this a snapshot is taken whatever the "
        "log's size, which bounds replay time at restart and makes snapshot age an alertable "
        "health signal.",
        minimum=1,
    )

    def validate(self) -> None:
        super().validate()
        if self.backend == "milvus" and not self.milvus_uri:
            raise ConfigError(
                f"{self.env_name('milvus_uri')} must be set when {self.env_name('backend')}=milvus"
            )
        if self.min_nprobe > self.nprobe:
            raise ConfigError(
                f"{self.env_name('min_nprobe')}={self.min_nprobe} is above "
                f"{self.env_name('nprobe')}={self.nprobe}"
            )
