"""Wiring of the orchestrator: typed clients, cache, search, ingest, the library, servicers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from clipmesh.encoder.client import EncoderClient
from clipmesh.generator.client import GatewayClient
from clipmesh.index.client import IndexClient
from clipmesh.media.ingest import VideoIngester
from clipmesh.orchestrator import metrics
from clipmesh.orchestrator.account import Accounts
from clipmesh.orchestrator.cache import QueryCache
from clipmesh.orchestrator.config import OrchestratorConfig
from clipmesh.orchestrator.generation import GenerationRelay
from clipmesh.orchestrator.ingest import IngestPipeline
from clipmesh.orchestrator.library import VideoLibrary
from clipmesh.orchestrator.search import SearchEngine
from clipmesh.orchestrator.servicer import AccountServicer, IngestServicer, SearchServicer
from clipmesh.runtime.access import AccessControl, PolicySource
from clipmesh.runtime.dependencies import DependencyChannels
from clipmesh.runtime.policy import Quota
from clipmesh.runtime.server import Application, GrpcService
from clipmesh.runtime.usage import (
    QUOTA_METRICS,
    QuotaLedger,
    open_quota_database,
    policy_usage_rows,
)
from clipmesh_api.generator.v1 import generator_pb2, generator_pb2_grpc
from clipmesh_api.orchestrator.v1 import (
    account_pb2,
    account_pb2_grpc,
    ingest_pb2,
    ingest_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
)


class OrchestratorApp(Application):
    """The orchestrator as the runtime runs it."""

    def __init__(self, config: OrchestratorConfig) -> None:
        self.config = config
        self.channels: DependencyChannels | None = None
        self.policies = PolicySource.from_config(config)
        self.cache = QueryCache(config.cache_entries, config.cache_ttl_s)
        self.quotas: QuotaLedger | None = None
        self._unregister_quota_metrics: Callable[[], None] | None = None
        self._search = SearchServicer(config)
        self._ingest = IngestServicer(config)
        self._generation = GenerationRelay()
        self._account = AccountServicer()

    def grpc_services(self) -> list[GrpcService]:
        return [
            GrpcService.generated(search_pb2, search_pb2_grpc, self._search),
            GrpcService.generated(ingest_pb2, ingest_pb2_grpc, self._ingest),
            GrpcService.generated(generator_pb2, generator_pb2_grpc, self._generation),
            GrpcService.generated(account_pb2, account_pb2_grpc, self._account),
        ]

    def interceptors(self) -> list:
        return [AccessControl(self.policies, default_collection=self.config.default_collection)]

    async def start(self) -> None:
        metrics.create_series()
        # Channels are made on the serving event loop; dependencies may still be starting:
        # calls to them fail fast with UNAVAILABLE until they answer.
        config = self.config
        self.channels = DependencyChannels(config)
        encoder = EncoderClient(self.channels, config.encoder_target)
        index = IndexClient(self.channels, config.index_target)
        gateway = GatewayClient(self.channels, config.generator_target)
        # Every replica counts the same use when `store` names a shared database.
        self.quotas = QuotaLedger(
            await asyncio.to_thread(
                open_quota_database,
                config.data_dir,
                config.database_target(),
                pool_size=config.store_pool_size,
            )
        )
        self._unregister_quota_metrics = QUOTA_METRICS.add(
            policy_usage_rows(self.policies, self.quotas, [Quota.INGEST_BYTES_PER_DAY])
        )
        ingester = VideoIngester(
            encoder,
            index,
            limits=config.media_limits(),
            thumbnails_dir=config.data_dir / "thumbnails",
            max_window_s=config.max_window_s,
            allowed_roots=[Path(root) for root in config.allowed_roots],
        )
        self._search.engine = SearchEngine(encoder, index, self.cache)
        self._ingest.pipeline = IngestPipeline(
            ingester, self.cache, self.quotas, concurrency=config.ingest_concurrency
        )
        self._ingest.library = VideoLibrary(index, self.cache)
        self._generation.gateway = gateway
        self._account.accounts = Accounts(self.quotas, gateway)

    async def stop(self) -> None:
        if self._unregister_quota_metrics is not None:
            self._unregister_quota_metrics()
        if self.channels is not None:
            await self.channels.close()
        if self.quotas is not None:
            self.quotas.close()


def create_app(config: OrchestratorConfig) -> OrchestratorApp:
    """Builds the orchestrator application from its config."""
    return OrchestratorApp(config)
