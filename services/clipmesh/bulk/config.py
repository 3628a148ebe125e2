"""Bulk ingest settings (`CLIPMESH_BULK_INGEST_*`, or the command's flags).

The media bounds are `MediaIngestConfig`'s, the same names and defaults as the orchestrator's,
so a file IngestVideos refuses is refused here for the same reason. The model comes from the
encoder's own settings (`CLIPMESH_ENCODER_MODEL`, `_WEIGHTS`, `_PRECISION`, `_DEVICE`): give the
job the encoder deployment's values and its vectors are the service's vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clipmesh.index.records import collection_name
from clipmesh.media.settings import MediaIngestConfig
from clipmesh.runtime.config import ConfigError, setting
from clipmesh.runtime.errors import InvalidArgument

_MIB = 1 << 20


@dataclass(frozen=True)
class BulkIngestConfig(MediaIngestConfig):
    """Where a bulk ingest reads and writes, how it spreads over the Ray cluster, and its bounds."""

    SERVICE = "bulk_ingest"

    metrics_port: int = setting(
        0,
        help="Prometheus metrics port of the driver (progress, index writes); 0 = none.",
        minimum=0,
        maximum=65535,
    )
    index_target: str = setting("127.0.0.1:50052", help="Index service address.")
    encoder_target: str = setting(
        "",
        help="Encoder service address to embed keyframes through; empty = the Ray workers load "
        "the model themselves (from the CLIPMESH_ENCODER_* settings), on GPUs where they exist.",
    )
    collection: str = setting("default", help="Collection the videos go to.")
    thumbnails_dir: Path = setting(
        Path("clipmesh-data/orchestrator/thumbnails"),
        help="Where keyframe thumbnails are written: the orchestrator's data_dir/thumbnails "
        "(on Kubernetes, a volume both mount).",
    )
    allowed_roots: tuple[str, ...] = setting(
        (),
        help="Comma-separated directories a manifest's local paths may name (after resolving "
        "symlinks); a directory SOURCE is always its own root. Empty: a manifest's local paths "
        "must lie under the manifest's own directory.",
    )
    cpu_workers: int = setting(
        0,
        help="Ray actors that probe, cut and extract keyframes (one CPU each); 0 = one per CPU "
        "of the cluster (less the embedding actors' CPUs).",
        minimum=0,
        maximum=100_000,
    )
    embed_workers: int = setting(
        1,
        help="Ray actors that hold the model and embed keyframes when the embedding runs apart "
        "from the decoding (GPUs, or embed_stage=separate).",
        minimum=1,
        maximum=10_000,
    )
    embed_gpus: float = setting(
        0.0,
        help="GPUs each embedding actor holds (1 on GPU nodes; a fraction shares one); 0 = "
        "embed on CPUs.",
        minimum=0,
        maximum=16,
    )
    embed_stage: str = setting(
        "auto",
        help="auto: a separate actor pool holding the model on GPUs when embed_gpus > 0, else "
        "each CPU worker decodes and embeds its own videos (no hop through the object store); "
        "fused or separate to choose.",
        choices=("auto", "fused", "separate"),
    )
    embed_batch: int = setting(
        64, help="Most keyframes in one forward pass of the model.", minimum=1, maximum=4096
    )
    videos_per_task: int = setting(
        4,
        help="Videos a worker takes at once (a Ray Data batch); more amortises per-task costs, "
        "fewer spreads a small library better.",
        minimum=1,
        maximum=1024,
    )
    write_batch_videos: int = setting(
        32, help="Most videos in one UpsertSegments call to the index.", minimum=1, maximum=4096
    )
    max_writes_in_flight: int = setting(
        2,
        help="Index writes outstanding at once; when the index is slower, the pipeline waits "
        "(backpressure) instead of piling results up in the driver.",
        minimum=1,
        maximum=64,
    )
    object_store_mb: int = setting(
        512,
        help="Most object-store memory the pipeline's blocks may hold, in MiB (Ray Data's "
        "resource limit; a local cluster is also started with this much); 0 = Ray's default.",
        minimum=0,
    )
    listing_window: int = setting(
        10_000,
        help="Files listed into one block of the pipeline's input; the listing is put into "
        "the object store a window at a time, never held whole by the driver.",
        minimum=1,
        maximum=1_000_000,
    )
    spool_dir: str = setting(
        "",
        help="Where objects from object storage are streamed before decoding (one file per "
        "worker at a time, deleted after); empty = the system's temporary directory.",
    )
    s3_endpoint_url: str = setting(
        "",
        help="S3-compatible endpoint (MinIO, Ceph, a cloud's S3 API), e.g. "
        "https://minio.storage:9000; empty = AWS. Credentials come from the standard AWS "
        "variables and files (AWS_ACCESS_KEY_ID, AWS_SHARED_CREDENTIALS_FILE, …).",
    )
    s3_region: str = setting("", help="S3 region; empty = AWS_REGION or the library's default.")
    call_timeout_s: float = setting(
        120.0, help="Deadline of each call to the index or the encoder.", minimum=1
    )

    def validate(self) -> None:
        super().validate()
        self.require_set("index_target", "collection")
        try:  # the index's own rule, checked before any file is read
            collection_name(self.collection, self.env_name("collection"))
        except InvalidArgument as error:
            raise ConfigError(error.message) from None
        for root in self.allowed_roots:
            if not Path(root).is_absolute():
                raise ConfigError(f"{self.env_name('allowed_roots')}: {root!r} is not absolute")
        if self.embed_stage == "fused" and self.embed_gpus > 0:
            raise ConfigError(
                f"{self.env_name('embed_stage')}=fused runs the model in the CPU workers; it "
                f"cannot hold GPUs ({self.env_name('embed_gpus')}={self.embed_gpus})"
            )

    @property
    def separate_embedding(self) -> bool:
        """Whether keyframes go to a pool of embedding actors rather than being embedded by the
        worker that extracted them."""
        if self.encoder_target:
            return False  # the encoder service batches across workers itself
        if self.embed_stage == "auto":
            return self.embed_gpus > 0
        return self.embed_stage == "separate"

    @property
    def object_store_bytes(self) -> int | None:
        return self.object_store_mb * _MIB if self.object_store_mb else None
