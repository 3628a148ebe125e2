"""The Ray side of a bulk ingest: connecting to (or starting) a cluster, and the Ray Data
pipeline that turns a window of listed files into prepared, embedded videos.

    listed files ──► prepare (CPU actors: fetch, hash, skip indexed, probe, plan, keyframes)
                 ──► embed   (GPU actors holding the model, batched)           ──► the driver
                              or, on CPUs, the prepare actors embed their own videos

The model lives in actors (`ActorPoolStrategy`), loaded once per actor, not per task. On CPUs
the two stages are fused: a worker embeds the keyframes it just cut, which saves a trip
through the object store and keeps every CPU busy with whole videos; with GPUs the embedding
is a separate pool, so the GPUs see large batches from many CPU workers. Ray Data streams:
blocks flow as the driver consumes them, within the object-store budget in the config, so a
slow index holds the pipeline back instead of filling memory.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clipmesh.bulk.config import BulkIngestConfig
from clipmesh.bulk.records import PreparedVideo, pack, unpack
from clipmesh.bulk.sources import SourceFile
from clipmesh.encoder.config import EncoderConfig

log = logging.getLogger(__name__)

LOCAL = "local"
AUTO = "auto"
# Where object-storage credentials are found, never the credentials themselves: these names are
# passed from the driver to its workers (Ray's runtime environment is visible in its dashboard,
# so a key or secret never travels through it). Workers take keys from their own environment:
# on Kubernetes every Ray pod gets the Secret (components/bulk-ingest); a `local` cluster's
# workers inherit the driver's.
FORWARDED_TO_WORKERS = (
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_EC2_METADATA_DISABLED",
)


class PipelineError(RuntimeError):
    """The run cannot go on; the message says why in one line."""


class RayUnavailable(PipelineError):
    """Ray is not installed, or the cluster cannot be reached; the message says which."""


class PipelineFailed(PipelineError):
    """A stage failed as a whole (a worker could not load the model, say): not one file's
    failure, which is that file's outcome, but one that would fail every file."""

    @classmethod
    def from_ray(cls, error: Exception) -> PipelineFailed:
        # A Ray task error's text is the remote traceback; its last line says what happened.
        lines = [line for line in str(error).splitlines() if line.strip()]
        return cls(f"the Ray pipeline failed: {lines[-1] if lines else type(error).__name__}")


def import_ray():
    """Ray, or a clear error saying how to install it."""
    try:
        import ray
        import ray.data  # the pipeline's engine, a subpackage imported on its own
    except ImportError as error:
        raise RayUnavailable(
            f"bulk ingest runs on Ray Data, which is not installed ({error}); "
            "`pip install 'clipmesh[bulk]'` installs it"
        ) from None
    return ray


def connect(address: str, config: BulkIngestConfig, *, cpus: int | None = None) -> dict:
    """Starts a local Ray cluster (`local`), or joins one (`auto`, `ray://host:port`, or a
    head's `host:port`); returns the cluster's resources.

    Args:
        address: Where the cluster is.
        config: The object-store cap for a local cluster.
        cpus: CPUs of a local cluster (None: this machine's).
    """
    # Ray reports usage statistics to its vendor unless told not to; a media library's job
    # has no business calling out (and Ray Data's collector would query a Prometheus here).
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = import_ray()
    if ray.is_initialized():
        return ray.cluster_resources()
    forwarded = {name: os.environ[name] for name in FORWARDED_TO_WORKERS if name in os.environ}
    options: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.WARNING,
        "runtime_env": {"env_vars": forwarded} if forwarded else None,
    }
    try:
        if address == LOCAL:
            ray.init(num_cpus=cpus, object_store_memory=config.object_store_bytes, **options)
        else:
            ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise RayUnavailable(f"cannot reach the Ray cluster at {address!r}: {error}") from None
    return ray.cluster_resources()


def disconnect() -> None:
    ray = import_ray()
    if ray.is_initialized():
        ray.shutdown()


class _Stage:
    """Base of the actors: the worker's clients, built once per actor."""

    def __init__(self, config: BulkIngestConfig) -> None:
        # Warnings from every library (the random-weights announcement among them); the
        # configured level for clipmesh's own records.
        logging.basicConfig(level=logging.WARNING)
        logging.getLogger("clipmesh").setLevel(config.log_level)
        from clipmesh.bulk.workers import ServiceCalls

        self._calls = ServiceCalls(config)


class PrepareStage(_Stage):
    """Ray Data callable: a batch of listed files → prepared videos, embedded too unless a
    separate embedding stage follows (`embed`)."""

    def __init__(
        self,
        config: BulkIngestConfig,
        roots: Sequence[str],
        labels: Mapping[str, str],
        encoder: EncoderConfig | None,
        embed: bool,
    ) -> None:
        super().__init__(config)
        from clipmesh.bulk.workers import KeyframeEmbedder, VideoPreparer

        self._preparer = VideoPreparer(config, [Path(r) for r in roots], labels, self._calls)
        self._embedder = KeyframeEmbedder(config, encoder, self._calls) if embed else None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[bytes]]:
        files = [
            SourceFile(str(uri), int(size))
            for uri, size in zip(batch["uri"], batch["size_bytes"], strict=True)
        ]
        videos = [self._preparer.prepare(file) for file in files]
        if self._embedder is not None:
            videos = self._embedder.embed_videos(videos)
        return {"video": [pack(video) for video in videos]}


class EmbedStage(_Stage):
    """Ray Data callable: prepared videos → the same videos with their vectors."""

    def __init__(self, config: BulkIngestConfig, encoder: EncoderConfig) -> None:
        super().__init__(config)
        from clipmesh.bulk.workers import KeyframeEmbedder

        self._embedder = KeyframeEmbedder(config, encoder, self._calls)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[bytes]]:
        videos = self._embedder.embed_videos(unpack(bytes(data)) for data in batch["video"])
        return {"video": [pack(video) for video in videos]}


def plan_workers(config: BulkIngestConfig, resources: Mapping[str, float]) -> tuple[int, int]:
    """(CPU workers, embedding workers) for a cluster with `resources`."""
    embed_workers = config.embed_workers if config.separate_embedding else 0
    cpus = int(resources.get("CPU", 1))
    embed_cpus = embed_workers if config.embed_gpus == 0 else 0
    cpu_workers = config.cpu_workers or max(1, cpus - embed_cpus)
    return cpu_workers, embed_workers


def prepared_videos(
    files: Sequence[SourceFile],
    config: BulkIngestConfig,
    *,
    roots: Sequence[Path],
    labels: Mapping[str, str],
    encoder: EncoderConfig,
    workers: tuple[int, int],
) -> Iterator[list[PreparedVideo]]:
    """Runs one window of files through the pipeline; yields the videos as they come out, a
    batch of at most `write_batch_videos` at a time, in no particular order.

    Args:
        files: The window.
        config: Stage sizes and limits.
        roots: Where local paths may lie.
        labels: Stored with every video.
        encoder: The model's settings.
        workers: (CPU workers, embedding workers) from `plan_workers`.
    """
    ray = import_ray()
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the driver reports progress itself
    if config.object_store_bytes:
        limits = context.execution_options.resource_limits
        context.execution_options.resource_limits = limits.copy(
            object_store_memory=config.object_store_bytes
        )
    cpu_workers, embed_workers = workers
    items = [{"uri": f.uri, "size_bytes": f.size_bytes} for f in files]
    # One block per task's worth of files, so every worker gets some from the start.
    blocks = max(1, min(len(items), -(-len(items) // config.videos_per_task)))
    dataset = ray.data.from_items(items, override_num_blocks=blocks)
    dataset = dataset.map_batches(
        PrepareStage,
        fn_constructor_kwargs={
            "config": config,
            "roots": [str(root) for root in roots],
            "labels": dict(labels),
            "encoder": encoder,
            "embed": not config.separate_embedding,
        },
        batch_size=config.videos_per_task,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=min(cpu_workers, blocks)),
        num_cpus=1,
    )
    if embed_workers:
        dataset = dataset.map_batches(
            EmbedStage,
            fn_constructor_kwargs={"config": config, "encoder": encoder},
            batch_size=config.videos_per_task * 4,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=embed_workers),
            num_cpus=1 if config.embed_gpus == 0 else 0.5,
            num_gpus=config.embed_gpus,
        )
    batches = dataset.iter_batches(
        batch_size=config.write_batch_videos, batch_format="numpy", prefetch_batches=1
    )
    try:
        for batch in batches:
            yield [unpack(bytes(data)) for data in batch["video"]]
    except ray.exceptions.RayError as error:
        raise PipelineFailed.from_ray(error) from error
