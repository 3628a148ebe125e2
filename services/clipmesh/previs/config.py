"""Previs settings (`CLIPMESH_PREVIS_*`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clipmesh.runtime.config import FrontDoorConfig, SharedStoreConfig, setting


@dataclass(frozen=True)
class PrevisConfig(FrontDoorConfig, SharedStoreConfig):
    """How previs serves, where the services it calls are, and its limits and quality bar."""

    SERVICE = "previs"

    port: int = setting(50054, help="gRPC port (PrevisService).", minimum=0, maximum=65535)
    metrics_port: int = setting(9154, help="Prometheus metrics port.", minimum=0, maximum=65535)
    data_dir: Path = setting(
        Path("clipmesh-data/previs"),
        help="Directory for the project store (previs.sqlite3, unless store names a database), "
        "the projects' clips and cuts, and the clips' thumbnails. With a PostgreSQL store, a "
        "volume every replica mounts (ReadWriteMany).",
    )
    generator_target: str = setting("127.0.0.1:50053", help="Generator gateway address.")
    max_shots: int = setting(200, help="Most shots one project may have.", minimum=1, maximum=5000)
    max_variants: int = setting(
        4, help="Most style variants per shot a project may ask for.", minimum=1, maximum=16
    )
    max_attempts: int = setting(
        3,
        help="Tries per clip: a clip below the quality thresholds is regenerated with a new "
        "seed until it passes or this many were made.",
        minimum=1,
        maximum=10,
    )
    parallel_clips: int = setting(
        32,
        help="Clips this service has in flight on the generator at once, all projects "
        "together (the gateway's own queue and limits still set the pace).",
        minimum=1,
        maximum=10_000,
    )
    clip_timeout_s: float = setting(
        1800.0, help="Longest one clip may take on the generator, queueing included.", minimum=1
    )
    max_reference_mb: int = setting(
        10, help="Largest reference image, in MiB.", minimum=1, maximum=100
    )
    min_sharpness: float = setting(
        50.0, help="Quality floor: mean variance of the Laplacian (docs/previs.md).", minimum=0
    )
    max_flicker: float = setting(
        3.0, help="Quality ceiling: brightness flicker on the 0–255 scale.", minimum=0
    )
    min_smoothness: float = setting(
        0.75, help="Quality floor: motion smoothness, 0 to 1.", minimum=0, maximum=1
    )
    min_text_match: float = setting(
        0.2,
        help="Quality floor: prompt–frames cosine (not enforced with random encoder weights, "
        "nor for a prompt holding words in a script the encoder's text tower was not trained "
        "on).",
        minimum=-1,
        maximum=1,
    )
    sensitive_terms_files: tuple[str, ...] = setting(
        (), help="Comma-separated extra files of sensitive terms (one a line), zh or en."
    )
    real_people_files: tuple[str, ...] = setting(
        (), help="Comma-separated extra files of real people's names (one a line), zh or en."
    )

    def validate(self) -> None:
        super().validate()
        self.require_set("generator_target")
