"""`clipmesh serve <service>`: run one service in the foreground (what a container runs)."""

from __future__ import annotations

import asyncio
import logging
import sys

import click

from clipmesh.cli.services import CONFIG_TYPES, create_app
from clipmesh.runtime.config import ConfigError, ServiceConfig, fields_of, load_config
from clipmesh.runtime.logs import configure_logging
from clipmesh.runtime.server import StartupError, serve
from clipmesh.runtime.tracing import configure_tracing

log = logging.getLogger(__name__)


def _service_command(name: str, config_type: type[ServiceConfig]) -> click.Command:
    """A click command whose flags are the service's config fields."""

    def run(**flags: str | None) -> None:
        try:
            config = load_config(config_type, flags=flags)
        except ConfigError as exc:
            raise click.UsageError(str(exc)) from exc
        configure_logging(name, config.log_level)
        configure_tracing(name, config.otlp_endpoint)
        try:
            asyncio.run(serve(config, create_app(config)))
        except StartupError as exc:
            log.error("%s cannot start: %s", name, exc)
            click.echo(f"error: {name} cannot start: {exc}", err=True)
            sys.exit(1)
        except Exception:
            log.exception("%s failed", name)
            sys.exit(1)

    params = [
        click.Option(
            [config_type.flag_name(f.name)],
            default=None,
            metavar="VALUE",
            help=f"{f.metadata['help']} [env {config_type.env_name(f.name)}; default {f.default}]",
        )
        for f in fields_of(config_type)
    ]
    return click.Command(name, callback=run, params=params, help=f"Run the {name} service.")


serve_group = click.Group(
    "serve",
    commands={name: _service_command(name, t) for name, t in CONFIG_TYPES.items()},
    help="Run one service in the foreground until SIGTERM/SIGINT.",
)
