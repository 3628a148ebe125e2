"""How the CLI's client commands reach a secured mesh: TLS files and a token, given once.

    clipmesh --ca certs/ca.crt search --text "a harbour at dawn"      # token from CLIPMESH_TOKEN

The options belong to the `clipmesh` group, so every command that talks to a service (search,
ingest, generate, previs, status…) uses them without options of its own. Each has an
environment variable: CLIPMESH_CA_FILE, CLIPMESH_CERT_FILE and CLIPMESH_KEY_FILE (a client
certificate, for calling an mTLS service such as the generator gateway's own port) and
CLIPMESH_TOKEN. Prefer the variable for the token: a flag's value shows in the process list.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import grpc

from clipmesh_client.wire import tls_credentials

_META_PREFIX = "clipmesh.connection."
_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
CommandT = TypeVar("CommandT", bound=Callable[..., Any])


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Keeps the option's value where subcommands find it (`Context.meta` is shared)."""
    if value is not None:
        ctx.meta[_META_PREFIX + str(param.name)] = value
    return value


# The values reach subcommands through `Context.meta`, not as arguments of the group.
_REMEMBERED: dict[str, Any] = {"expose_value": False, "callback": _remember}
_OPTIONS = (
    click.option(
        "--ca",
        "ca_file",
        type=_FILE,
        envvar="CLIPMESH_CA_FILE",
        **_REMEMBERED,
        help="CA bundle to verify the services with: turns TLS on [env CLIPMESH_CA_FILE].",
    ),
    click.option(
        "--cert",
        "cert_file",
        type=_FILE,
        envvar="CLIPMESH_CERT_FILE",
        **_REMEMBERED,
        help="Client certificate, for services that require one (mTLS) [env CLIPMESH_CERT_FILE].",
    ),
    click.option(
        "--key",
        "key_file",
        type=_FILE,
        envvar="CLIPMESH_KEY_FILE",
        **_REMEMBERED,
        help="Private key of --cert [env CLIPMESH_KEY_FILE].",
    ),
    click.option(
        "--token",
        envvar="CLIPMESH_TOKEN",
        **_REMEMBERED,
        help="Bearer token for a mesh with token auth on [env CLIPMESH_TOKEN, preferred].",
    ),
)


def target_option(
    env_var: str, default: str, service: str, note: str = ""
) -> Callable[[CommandT], CommandT]:
    """A `--target` option for the address of `service`, from `env_var` when set; `note` ends
    its help."""
    return click.option(
        "--target",
        default=lambda: os.environ.get(env_var, default),
        show_default=default,
        help=f"{service} address (env {env_var}).{f' {note}' if note else ''}",
    )


def connection_options(command: CommandT) -> CommandT:
    """Adds --ca, --cert, --key and --token to a command group, for all its commands."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def _given(name: str) -> Any:
    ctx = click.get_current_context(silent=True)
    return None if ctx is None else ctx.meta.get(_META_PREFIX + name)


def channel_credentials() -> grpc.ChannelCredentials | None:
    """TLS credentials from --ca/--cert/--key, or None (plaintext) when none was given."""
    ca_file, cert_file, key_file = _given("ca_file"), _given("cert_file"), _given("key_file")
    if ca_file is None and cert_file is None and key_file is None:
        return None
    try:
        return tls_credentials(ca_file, cert_file, key_file)
    except ValueError as exc:
        raise click.UsageError(f"--cert and --key: {exc}") from exc


def client_options() -> dict[str, Any]:
    """`credentials` and `token` keyword arguments for an SDK client."""
    return {"credentials": channel_credentials(), "token": _given("token")}
