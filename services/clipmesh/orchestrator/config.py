"""Orchestrator settings (`CLIPMESH_ORCHESTRATOR_*`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clipmesh.runtime.config import ConfigError, ServiceConfig, setting


@dataclass(frozen=True)
class OrchestratorConfig(ServiceConfig):
    """How the orchestrator serves, where its dependencies are, and its budgets and limits."""

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
    allowed_roots: tuple[str, ...] = setting(
        (),
        help="Comma-separated directories ingest may read from (after resolving symlinks); "
        "nothing else is ever opened. Empty: ingest refuses every path.",
    )
    default_collection: str = setting("default", help="Collection used when a request names none.")
    search_budget_ms: int = setting(
        500,
        help="End-to-end budget of a search when the caller sets none.",
        minimum=10,
        maximum=60_000,
    )
    max_top_k: int = setting(
        100, help="Most videos one search may return.", minimum=1, maximum=1000
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
    max_window_s: float = setting(
        10.0,
        help="Longest segment inside one shot; longer shots are split.",
        minimum=0.5,
        maximum=600,
    )
    ingest_concurrency: int = setting(
        2, help="Videos of one ingest processed at the same time.", minimum=1, maximum=32
    )
    max_ingest_items: int = setting(
        1000, help="Most videos in one IngestVideos request.", minimum=1, maximum=100_000
    )

    def validate(self) -> None:
        for name in ("encoder_target", "index_target", "generator_target"):
            if not getattr(self, name).strip():
                raise ConfigError(
                    f"{self.env_name(name)} / {self.flag_name(name)} must not be empty"
                )
        for root in self.allowed_roots:
            if not Path(root).is_absolute():
                raise ConfigError(f"{self.env_name('allowed_roots')}: {root!r} is not absolute")
