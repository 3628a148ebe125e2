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
    max_concurrent_rpcs_per_caller: int = setting(
        128,
        help="Most RPCs one caller runs at once on the public API (token identity, else the "
        "x-clipmesh-caller header): one team's batch cannot take every slot. 0 = no limit.",
        minimum=0,
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
    ingest_max_file_gb: float = setting(
        20.0, help="Largest video file ingest reads, in GiB (checked before hashing).", minimum=0
    )
    ingest_max_duration_s: float = setting(
        4 * 3600.0, help="Longest video ingest accepts.", minimum=1
    )
    ingest_max_frame_side: int = setting(
        8192, help="Longest frame side ingest accepts, in pixels.", minimum=16, maximum=65_536
    )
    ingest_max_frame_megapixels: float = setting(
        36.0,
        help="Most pixels in one frame, in millions (8K is 35.4); the decoders refuse to "
        "allocate larger frames, whatever the file's header claims.",
        minimum=0.01,
    )
    ingest_max_decode_s: float = setting(
        1800.0,
        help="Longest probing and decoding of one file may take, all passes together; a "
        "file past it fails with MEDIA_TOO_SLOW (raise it for videos of several hours).",
        minimum=1,
    )
    previs_enabled: bool = setting(
        True,
        help="Serve PrevisService. Its project store is one SQLite file in data_dir, so only a "
        "single replica may serve previs; a horizontally scaled search and ingest tier turns "
        "this off.",
    )
    previs_max_shots: int = setting(
        200, help="Most shots one previs project may have.", minimum=1, maximum=5000
    )
    previs_max_variants: int = setting(
        4, help="Most style variants per shot a project may ask for.", minimum=1, maximum=16
    )
    previs_max_attempts: int = setting(
        3,
        help="Tries per clip: a clip below the quality thresholds is regenerated with a new "
        "seed until it passes or this many were made.",
        minimum=1,
        maximum=10,
    )
    previs_parallel_clips: int = setting(
        32,
        help="Clips this orchestrator has in flight on the generator at once, all projects "
        "together (the gateway's own queue and limits still set the pace).",
        minimum=1,
        maximum=10_000,
    )
    previs_clip_timeout_s: float = setting(
        1800.0, help="Longest one clip may take on the generator, queueing included.", minimum=1
    )
    previs_max_reference_mb: int = setting(
        10, help="Largest reference image, in MiB.", minimum=1, maximum=100
    )
    previs_min_sharpness: float = setting(
        50.0, help="Quality floor: mean variance of the Laplacian (docs/previs.md).", minimum=0
    )
    previs_max_flicker: float = setting(
        3.0, help="Quality ceiling: brightness flicker on the 0–255 scale.", minimum=0
    )
    previs_min_smoothness: float = setting(
        0.75, help="Quality floor: motion smoothness, 0 to 1.", minimum=0, maximum=1
    )
    previs_min_text_match: float = setting(
        0.2,
        help="Quality floor: prompt–frames cosine (not enforced with random encoder weights).",
        minimum=-1,
        maximum=1,
    )
    previs_sensitive_terms_files: tuple[str, ...] = setting(
        (), help="Comma-separated extra files of sensitive terms (one a line), zh or en."
    )
    previs_real_people_files: tuple[str, ...] = setting(
        (), help="Comma-separated extra files of real people's names (one a line), zh or en."
    )

    def validate(self) -> None:
        super().validate()
        for name in ("encoder_target", "index_target", "generator_target"):
            if not getattr(self, name).strip():
                raise ConfigError(
                    f"{self.env_name(name)} / {self.flag_name(name)} must not be empty"
                )
        for root in self.allowed_roots:
            if not Path(root).is_absolute():
                raise ConfigError(f"{self.env_name('allowed_roots')}: {root!r} is not absolute")
