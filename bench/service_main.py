"""One service's process as `clipmesh serve <service>` runs it — its config from the
`CLIPMESH_<SERVICE>_*` environment, its logging and tracing, `runtime.server.serve` — without
importing the CLI, whose commands reach every service's dependencies (PyAV, FAISS,
OpenTimelineIO, …). A GPU machine that carries only the encoder's packages runs the encoder
this way for bench/gpu.py (`service_process(..., via_cli=False)`).

    python -m bench.service_main encoder
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clipmesh.runtime.config import ConfigError, ServiceConfig, load_config
from clipmesh.runtime.logs import configure_logging
from clipmesh.runtime.server import StartupError, serve
from clipmesh.runtime.tracing import configure_tracing


def config_type(service: str) -> type[ServiceConfig]:
    """The config class of `service` (the one in `clipmesh.<service>.config` named for it)."""
    module = importlib.import_module(f"clipmesh.{service}.config")
    for value in vars(module).values():
        is_config = isinstance(value, type) and issubclass(value, ServiceConfig)
        if is_config and service == value.SERVICE:
            return value
    raise ValueError(f"clipmesh.{service}.config has no config for {service!r}")


def main() -> None:
    service = sys.argv[1]
    try:
        config = load_config(config_type(service))
    except ConfigError as exc:
        sys.exit(f"error: {exc}")
    configure_logging(service, config.log_level)
    configure_tracing(service, config.otlp_endpoint)
    app = importlib.import_module(f"clipmesh.{service}.server").create_app(config)
    try:
        asyncio.run(serve(config, app))
    except StartupError as exc:
        sys.exit(f"error: {service} cannot start: {exc}")


if __name__ == "__main__":
    main()
