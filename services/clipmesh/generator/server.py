"""Wiring of the generator gateway: its backends, the gateway core, the servicer."""

from __future__ import annotations

import logging
from collections.abc import Callable

from clipmesh.generator.admission import GatewayLimits
from clipmesh.generator.backends.base import Backend
from clipmesh.generator.backends.registry import build_backends
from clipmesh.generator.config import GeneratorConfig
from clipmesh.generator.gateway import Gateway, GatewayStorage
from clipmesh.generator.servicer import GeneratorServicer
from clipmesh.generator.webhooks import WebhookSettings
from clipmesh.runtime.access import AccessControl, PolicySource
from clipmesh.runtime.server import Application, GrpcService
from clipmesh.runtime.usage import QUOTA_METRICS
from clipmesh_api.generator.v1 import generator_pb2, generator_pb2_grpc

log = logging.getLogger(__name__)


class GeneratorApp(Application):
    """The generator gateway as the runtime runs it.

    Args:
        config: The gateway's settings.
        extra_backends: Backends to run besides the configured ones (an embedding program's
            own, or a test's), by name.
    """

    def __init__(
        self, config: GeneratorConfig, *, extra_backends: dict[str, Backend] | None = None
    ) -> None:
        self.config = config
        backends, unavailable = build_backends(config)
        backends.update(extra_backends or {})
        for name, why in unavailable.items():
            log.info("backend %s off: %s", name, why)
        self.policies = PolicySource.from_config(config)
        if config.policy_file and not config.tls_client_auth:
            log.warning(
                "the policy names callers by the x-clipmesh-caller header of any peer that "
                "reaches this port; set %s so that only the mesh's services can",
                config.env_name("tls_client_auth"),
            )
        self.gateway = Gateway(
            config.data_dir,
            backends,
            default_backend=config.default_backend,
            unavailable=unavailable,
            limits=GatewayLimits(
                max_queued_jobs=config.max_queued_jobs,
                max_active_jobs_per_caller=config.max_active_jobs_per_caller,
            ),
            policies=self.policies,
            webhook_settings=WebhookSettings(
                timeout_s=config.webhook_timeout_s,
                initial_backoff_s=config.webhook_initial_backoff_s,
                max_backoff_s=config.webhook_max_backoff_s,
                max_age_s=config.webhook_max_age_s,
            ),
            cache_memory_entries=config.cache_memory_entries,
            cache_max_bytes=config.cache_max_mb << 20,
            storage=storage_of(config),
        )
        self._servicer = GeneratorServicer(self.gateway)
        self._unregister_quota_metrics: Callable[[], None] | None = None

    def grpc_services(self) -> list[GrpcService]:
        return [GrpcService.generated(generator_pb2, generator_pb2_grpc, self._servicer)]

    def interceptors(self) -> list:
        # Internal: the front doors checked the caller's roles; this names the caller and its
        # policy for ownership and quotas.
        return [AccessControl(self.policies, enforce_roles=False)]

    async def start(self) -> None:
        await self.gateway.start()
        self._unregister_quota_metrics = QUOTA_METRICS.add(self.gateway.quota_rows)

    def watch_readiness(self, set_ready: Callable[[bool], None]) -> None:
        # Not ready while the job store is out of reach (the lease cannot be renewed).
        self.gateway.replica.lease.on_health = set_ready

    async def stop(self) -> None:
        if self._unregister_quota_metrics is not None:
            self._unregister_quota_metrics()
        await self.gateway.stop()


def storage_of(config: GeneratorConfig) -> GatewayStorage:
    """Where the configured gateway keeps its state."""
    target = config.database_target()
    return GatewayStorage(
        target=target,
        outputs_dir=config.outputs_path(),
        pool_size=config.store_pool_size,
        lease_s=config.lease_s,
        max_running_per_caller=config.max_running_jobs_per_caller,
        stop_grace_s=config.grace_s,
    )


def create_app(config: GeneratorConfig) -> GeneratorApp:
    """Builds the generator application from its config."""
    return GeneratorApp(config)
