"""The five services, by name, loaded lazily so the CLI starts without importing torch."""

from __future__ import annotations

import importlib
from typing import Any

from clipmesh.encoder.config import EncoderConfig
from clipmesh.generator.config import GeneratorConfig
from clipmesh.index.config import IndexConfig
from clipmesh.orchestrator.config import OrchestratorConfig
from clipmesh.previs.config import PrevisConfig
from clipmesh.runtime.config import ServiceConfig
from clipmesh.runtime.server import Application

# Start order for `clipmesh up`: dependencies first, the public front doors last.
CONFIG_TYPES: dict[str, type[ServiceConfig]] = {
    "encoder": EncoderConfig,
    "index": IndexConfig,
    "generator": GeneratorConfig,
    "orchestrator": OrchestratorConfig,
    "previs": PrevisConfig,
}
SERVICE_NAMES = tuple(CONFIG_TYPES)


def create_app(config: ServiceConfig) -> Application:
    """Builds the application for `config`'s service (importing its heavy modules now)."""
    module: Any = importlib.import_module(f"clipmesh.{config.SERVICE}.server")
    return module.create_app(config)
