"""The `clipmesh` console script."""

from __future__ import annotations

import json
import shutil
import signal
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from clipmesh import __version__
from clipmesh.cli.account import whoami
from clipmesh.cli.bulk import bulk_ingest
from clipmesh.cli.certs import CLIENT_NAME, dev_certs
from clipmesh.cli.connection import channel_credentials, connection_options
from clipmesh.cli.evaluation import eval_command
from clipmesh.cli.generation import generate, jobs
from clipmesh.cli.library import ingest, search, videos
from clipmesh.cli.mesh import LocalMesh, MeshError
from clipmesh.cli.policy import policy, webhook_secret
from clipmesh.cli.previs import export, previs, review
from clipmesh.cli.probe import connect_address, health_status, list_services
from clipmesh.cli.serve import serve_group
from clipmesh.cli.services import CONFIG_TYPES
from clipmesh.runtime.config import ConfigError, load_config

console = Console()


@click.group()
@click.version_option(__version__, prog_name="clipmesh")
@connection_options
def cli() -> None:
    """clipmesh: find videos by image, text or clip; generate video; previs from a script."""


cli.add_command(serve_group)
cli.add_command(ingest)
cli.add_command(bulk_ingest)
cli.add_command(search)
cli.add_command(videos)
cli.add_command(eval_command)
cli.add_command(generate)
cli.add_command(jobs)
cli.add_command(previs)
cli.add_command(review)
cli.add_command(export)
cli.add_command(dev_certs)
cli.add_command(whoami)
cli.add_command(policy)
cli.add_command(webhook_secret)


class _Stop(Exception):
    """Raised from a signal handler to leave the supervisor's wait."""


def _raise_stop(signum: int, _frame: object) -> None:
    raise _Stop(signal.Signals(signum).name)


def run_mesh(mesh: LocalMesh, *, startup_timeout_s: float, then=None) -> int:
    """Starts `mesh`, shows it, then runs `then(mesh)` or waits for a signal; always stops it."""
    try:
        mesh.plan()
    except ConfigError as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2
    previous = {s: signal.signal(s, _raise_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    exit_code = 0
    try:
        console.print(f"starting the clipmesh mesh (data in {mesh.data_dir}) …")
        mesh.start()
        started = time.monotonic()
        mesh.wait_until_serving(startup_timeout_s)
        console.print(_mesh_table(mesh, time.monotonic() - started))
        if mesh.random_weights:
            console.print(
                "[bold yellow]RANDOM WEIGHTS:[/] the encoder runs on seeded random weights, so "
                "search results carry no meaning. Set CLIPMESH_ENCODER_WEIGHTS=checkpoint:/path "
                "to mount real ones."
            )
        if mesh.tls:
            console.print(_tls_hint(mesh), soft_wrap=True)  # unwrapped: lines to copy
        if then is not None:
            exit_code = then(mesh)
        else:
            console.print("all services SERVING — Ctrl-C stops them")
            while True:
                mesh.check_alive()
                time.sleep(0.5)
    except _Stop as stop:
        console.print(f"{stop}: stopping")
    except MeshError as exc:
        console.print(f"[red]error:[/] {exc}")
        exit_code = 1
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        codes = mesh.stop()
        unclean = {n: c for n, c in codes.items() if c not in (0, None)}
        console.print("stopped" + (f" (unclean exits: {unclean})" if unclean else " cleanly"))
    return exit_code


def _tls_hint(mesh: LocalMesh) -> str:
    """How to point the CLI at a `--tls` mesh: its CA, client certificate and token."""
    credentials = mesh.dev_credentials
    return (
        "[bold]TLS on[/] (mTLS between services, a token for the public API). For the CLI:\n"
        f"  export CLIPMESH_CA_FILE={credentials.ca_file}\n"
        f'  export CLIPMESH_TOKEN="$(cat {credentials.token_file})"\n'
        "  # and a client certificate, for `clipmesh status` and the internal ports:\n"
        f"  export CLIPMESH_CERT_FILE={credentials.cert_file(CLIENT_NAME)}\n"
        f"  export CLIPMESH_KEY_FILE={credentials.key_file(CLIENT_NAME)}"
    )


def _mesh_table(mesh: LocalMesh, elapsed_s: float) -> Table:
    table = Table(title=f"clipmesh is up ({elapsed_s:.1f}s)")
    for column in ("service", "gRPC", "metrics", "pid", "log"):
        table.add_column(column)
    for s in mesh.services:
        log = "console" if mesh.log_to_console else str(s.log_path)
        table.add_row(s.name, s.address, s.metrics_url, str(s.process.pid), log)
    return table


@cli.command()
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=Path("clipmesh-data"),
    show_default=True,
    help="Root of every service's state and logs.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address services bind.")
@click.option(
    "--startup-timeout-s",
    type=float,
    default=180.0,
    show_default=True,
    help="How long to wait for every service to report SERVING.",
)
@click.option("--log-to-console", is_flag=True, help="Show service logs here instead of files.")
@click.option(
    "--tls",
    is_flag=True,
    help="TLS everywhere, mTLS between services and a token for the public API, from "
    "development credentials in DATA_DIR/certs (see `clipmesh dev-certs`).",
)
def up(data_dir: Path, host: str, startup_timeout_s: float, log_to_console: bool, tls: bool):
    """Run the whole mesh locally with the embedded defaults until Ctrl-C or SIGTERM."""
    mesh = LocalMesh(data_dir=data_dir.resolve(), host=host, log_to_console=log_to_console, tls=tls)
    sys.exit(run_mesh(mesh, startup_timeout_s=startup_timeout_s))


def _service_addresses() -> dict[str, str]:
    addresses = {}
    for name, config_type in CONFIG_TYPES.items():
        config = load_config(config_type)
        addresses[name] = connect_address(config.host, config.port)
    return addresses


def mesh_status(addresses: dict[str, str]) -> list[dict[str, object]]:
    """Health and exposed services of each service at `addresses`."""
    rows = []
    credentials = channel_credentials()  # --ca/--cert/--key, for a mesh with TLS on
    for name, target in addresses.items():
        status = health_status(target, credentials=credentials)
        services = list_services(target, credentials=credentials) if status != "UNREACHABLE" else []
        rows.append(
            {"service": name, "address": target, "health": status, "grpc_services": services}
        )
    return rows


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def status(as_json: bool) -> None:
    """Health of every service (addresses from CLIPMESH_<SERVICE>_HOST/PORT)."""
    try:
        rows = mesh_status(_service_addresses())
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    _print_status(rows, as_json)
    sys.exit(0 if all(r["health"] == "SERVING" for r in rows) else 1)


def _print_status(rows: list[dict[str, object]], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="clipmesh status")
    for column in ("service", "address", "health", "gRPC services"):
        table.add_column(column)
    for row in rows:
        colour = "green" if row["health"] == "SERVING" else "red"
        services = ", ".join(s for s in row["grpc_services"] if s.startswith("clipmesh."))
        table.add_row(row["service"], row["address"], f"[{colour}]{row['health']}[/]", services)
    console.print(table)


@cli.command()
def demo() -> None:
    """The main job on the embedded defaults: ingest a generated library and search it."""
    from clipmesh.cli.demo import demo_main

    sys.exit(demo_main())


@cli.command("demo-library")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--count", type=click.IntRange(1, 64), default=8, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def demo_library(directory: Path, count: int, seed: int) -> None:
    """Write the demo's procedural video library (deterministic) into DIRECTORY, with its
    labelled queries (DIRECTORY/queries.jsonl, for `clipmesh eval`) when --seed is 0."""
    from clipmesh.demo.library import DEMO_QUERIES, make_library

    specs = make_library(directory, count=count, seed=seed)
    if seed == 0 and count >= 8:
        shutil.copyfile(DEMO_QUERIES, directory / "queries.jsonl")
    for spec in specs:
        shots = len(spec.shots)
        click.echo(f"{spec.path.name}  {spec.title}  {spec.duration_s:.0f} s, {shots} shots")


def main() -> None:
    """Entry point of the `clipmesh` console script."""
    cli()
