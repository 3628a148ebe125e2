"""Wiring of the index service: choose the backend, open it, serve, keep gauges fresh."""

from __future__ import annotations

import asyncio
import contextlib
import time

from clipmesh.index import metrics
from clipmesh.index.backend import IndexBackend
from clipmesh.index.collection import AnnSettings
from clipmesh.index.config import IndexConfig
from clipmesh.index.requests import Limits
from clipmesh.index.servicer import IndexServicer
from clipmesh.runtime.server import Application, GrpcService
from clipmesh_api.index.v1 import index_pb2, index_pb2_grpc

GAUGE_REFRESH_S = 5.0


def create_backend(config: IndexConfig) -> IndexBackend:
    """The backend `config` asks for."""
    if config.backend == "milvus":
        from clipmesh.index.milvus_backend import MilvusBackend

        return MilvusBackend(config.milvus_uri, token=config.milvus_token, db_name=config.milvus_db)
    from clipmesh.index.faiss_backend import FaissBackend

    settings = AnnSettings(
        mode=config.index_mode,
        exact_max_segments=config.exact_max_segments,
        memory_budget_bytes=config.memory_budget_mb << 20,
        nprobe=config.nprobe,
        min_nprobe=config.min_nprobe,
        max_nprobe=max(config.nprobe * 4, config.nprobe),
    )
    return FaissBackend(
        config.data_dir,
        settings,
        snapshot_wal_bytes=config.snapshot_wal_mb << 20,
        snapshot_interval_s=config.snapshot_interval_s,
    )


class IndexApp(Application):
    """The index as the runtime runs it."""

    def __init__(self, config: IndexConfig) -> None:
        self.config = config
        self.backend = create_backend(config)
        limits = Limits(max_top_k=config.max_top_k)
        self._servicer = IndexServicer(self.backend, limits)
        self._gauges: asyncio.Task[None] | None = None

    def grpc_services(self) -> list[GrpcService]:
        return [GrpcService.generated(index_pb2, index_pb2_grpc, self._servicer)]

    async def start(self) -> None:
        await self.backend.open()
        metrics.create_series(self.backend.name)
        snapshots = self.config.backend == "faiss"  # Milvus persists on its own
        metrics.SNAPSHOT_INTERVAL_SECONDS.set(self.config.snapshot_interval_s if snapshots else 0)
        self._gauges = asyncio.create_task(self._refresh_gauges())

    async def stop(self) -> None:
        if self._gauges is not None:
            self._gauges.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._gauges
        await self.backend.close()

    async def _refresh_gauges(self) -> None:
        while True:
            await self.backend.maintain()
            metrics.INDEX_TYPE.clear()  # a collection's old index type must not linger
            for stats in await self.backend.stats():
                metrics.VECTORS.labels(stats.collection).set(stats.segments)
                metrics.VIDEOS.labels(stats.collection).set(stats.videos)
                metrics.INDEX_TYPE.labels(stats.collection, stats.index_type).set(1)
                metrics.WAL_BYTES.set(stats.wal_bytes)
                snapshot = stats.last_snapshot_time_s
                metrics.SNAPSHOT_AGE_SECONDS.set(-1 if snapshot is None else time.time() - snapshot)
            await asyncio.sleep(GAUGE_REFRESH_S)


def create_app(config: IndexConfig) -> IndexApp:
    """Builds the index application from its config."""
    return IndexApp(config)
