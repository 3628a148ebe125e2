"""Wiring of previs: typed clients, the ingest core for its clips, the engine, the servicer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from clipmesh.encoder.client import EncoderClient
from clipmesh.generator.client import GatewayClient
from clipmesh.index.client import IndexClient
from clipmesh.media.ingest import VideoIngester
from clipmesh.media.probe import DEFAULT_LIMITS
from clipmesh.previs import metrics
from clipmesh.previs.checks import ClipChecker
from clipmesh.previs.compliance import REAL_PEOPLE, SENSITIVE_TERMS, CompliancePolicy
from clipmesh.previs.config import PrevisConfig
from clipmesh.previs.engine import PrevisEngine
from clipmesh.previs.generation import ClipMaker
from clipmesh.previs.library import ClipLibrary
from clipmesh.previs.production import ShotProducer
from clipmesh.previs.quality import QualityThresholds
from clipmesh.previs.servicer import PrevisServicer
from clipmesh.previs.store import ProjectStore, open_project_database
from clipmesh.previs.templates import TemplateLibrary
from clipmesh.runtime.access import AccessControl, PolicySource
from clipmesh.runtime.dependencies import DependencyChannels
from clipmesh.runtime.leases import new_replica_id
from clipmesh.runtime.server import Application, GrpcService
from clipmesh_api.orchestrator.v1 import previs_pb2, previs_pb2_grpc

# A generated clip is at most 10 s: one window per shot is the most a segment needs to be.
CLIP_WINDOW_S = 10.0


class PrevisApp(Application):
    """Previs as the runtime runs it."""

    def __init__(self, config: PrevisConfig) -> None:
        self.config = config
        self.channels: DependencyChannels | None = None
        self.policies = PolicySource.from_config(config)
        self._servicer = PrevisServicer()
        self._set_ready: Callable[[bool], None] | None = None

    def grpc_services(self) -> list[GrpcService]:
        return [GrpcService.generated(previs_pb2, previs_pb2_grpc, self._servicer)]

    def interceptors(self) -> list:
        return [AccessControl(self.policies, default_collection=self.config.default_collection)]

    async def start(self) -> None:
        metrics.create_series()
        config = self.config
        target = config.database_target()
        self.channels = DependencyChannels(config)
        encoder = EncoderClient(self.channels, config.encoder_target)
        index = IndexClient(self.channels, config.index_target)
        checker = ClipChecker(
            encoder,
            QualityThresholds(
                config.min_sharpness,
                config.max_flicker,
                config.min_smoothness,
                config.min_text_match,
            ),
        )
        ingester = VideoIngester(
            encoder,
            index,
            limits=DEFAULT_LIMITS,
            thumbnails_dir=config.data_dir / "thumbnails",
            max_window_s=CLIP_WINDOW_S,
        )
        producer = ShotProducer(
            store=ProjectStore(
                open_project_database(config.data_dir, target, pool_size=config.store_pool_size),
                owner=new_replica_id(),
            ),
            templates=TemplateLibrary.load(),
            policy=CompliancePolicy.load(
                extra_paths={
                    SENSITIVE_TERMS: [Path(p) for p in config.sensitive_terms_files],
                    REAL_PEOPLE: [Path(p) for p in config.real_people_files],
                }
            ),
            checker=checker,
            maker=ClipMaker(
                GatewayClient(self.channels, config.generator_target),
                asyncio.Semaphore(config.parallel_clips),
                config.clip_timeout_s,
            ),
            footage=ClipLibrary(index, ingester, checker),
            projects_dir=config.data_dir / "projects",
            max_attempts=config.max_attempts,
        )
        engine = PrevisEngine(producer, config)
        await engine.start()
        self._servicer.engine = engine
        if self._set_ready is not None:
            engine.lease.on_health = self._set_ready

    def watch_readiness(self, set_ready: Callable[[bool], None]) -> None:
        # Not ready while the project store is out of reach (the lease cannot be renewed).
        self._set_ready = set_ready
        if self._servicer.engine is not None:
            self._servicer.engine.lease.on_health = set_ready

    async def stop(self) -> None:
        if self._servicer.engine is not None:
            await self._servicer.engine.close()
        if self.channels is not None:
            await self.channels.close()


def create_app(config: PrevisConfig) -> PrevisApp:
    """Builds the previs application from its config."""
    return PrevisApp(config)
