"""Orchestrator settings (`CLIPMESH_ORCHESTRATOR_*`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clipmesh.media.settings import MediaIngestConfig
from clipmesh.runtime.config import ConfigError, FrontDoorConfig, StoreConfig, setting


@dataclass(frozen=True)
class OrchestratorConfig(FrontDoorConfig, StoreConfig, MediaIngestConfig):
    """How the orchestrator serves, where its dependencies are, and its budgets and limits."""

    SERVICE = "orchestrator"

    port: int = setting(50050, help="gRPC port (the public API).", minimum=0, maximum=65535)
    metrics_port: int = setting(9150, help="Prometheus metrics port.", minimum=0, maximum=65535)
    data_dir: Path = setting(
        Path("clipmesh-data/orchestrator"),
        help="Directory for the keyframe thumbnails and (unless store names a database) the "
        "callers' ingest quota charges.",
    )
    store_pool_size: int = setting(
        4,
        help="PostgreSQL connections this replica keeps at most (the quota ledger's few small "
        "transactions; replicas scale out under the HPA, so each keeps few).",
        minimum=2,
        maximum=200,
    )
    generator_target: str = setting(
        "127.0.0.1:50053",
        help="Generator gateway address: the public API's GeneratorService is passed on to it, "
        "with the caller's identity.",
    )
    allowed_roots: tuple[str, ...] = setting(
        (),
        help="Comma-separated directories ingest may read from (after resolving symlinks); "
        "nothing else is ever opened. Empty: ingest refuses every path.",
    )
    search_budget_ms: int = setting(
        500,
        help="End-to-end budget of a search when the caller sets none.",
        minimum=10,
        maximum=60_000,
    )
    max_top_k: int = setting(
        100, help="Most videos one search may return.", minimum=1, maximum=1000
    )
    max_query_image_mb: float = setting(
        16.0,
        help="Largest query image of a search, in MiB, refused here before it costs a call "
        "to the encoder; keep it at the encoder's max_image_mb.",
        minimum=0.01,
        maximum=1024,
    )
    cache_entries: int = setting(
        1024, help="Hot-query cache size (0 disables the cache).", minimum=0, maximum=1_000_000
    )
    cache_ttl_s: float = setting(
        60.0,
        help="Longest a cached answer is served (writes through this service also clear "
        "it at once).",
        minimum=0,
    )
    ingest_concurrency: int = setting(
        2, help="Videos of one ingest processed at the same time.", minimum=1, maximum=32
    )
    max_ingest_items: int = setting(
        1000, help="Most videos in one IngestVideos request.", minimum=1, maximum=100_000
    )

    def validate(self) -> None:
        super().validate()
        self.require_set("generator_target")
        for root in self.allowed_roots:
            if not Path(root).is_absolute():
                raise ConfigError(f"{self.env_name('allowed_roots')}: {root!r} is not absolute")
