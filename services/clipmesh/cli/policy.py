"""`clipmesh policy check` and `clipmesh webhook-secret`: preparing the tenancy policy.

A running service that sees a policy it cannot parse keeps its previous one, but a pod that
starts with it refuses to start. `policy check` reads a file exactly as the services do (the
same parser, the same size limit) and says what it grants, so an SRE checks an edit before it
goes into the Kubernetes Secret. `webhook-secret` makes the Standard Webhooks secrets a
caller's `webhook_secrets` hold.
"""

from __future__ import annotations

import base64
import secrets
import sys
from pathlib import Path

import click

from clipmesh.cli.quotas import human_amount
from clipmesh.runtime.config import ConfigError
from clipmesh.runtime.policy import (
    MAX_POLICY_BYTES,
    ROLES,
    WEBHOOK_SECRET_PREFIX,
    CallerPolicy,
    Grant,
    Limits,
    Policy,
    Quota,
    parse_policy,
)

WEBHOOK_SECRET_BYTES = 32


def new_webhook_secret() -> str:
    """A new secret: `whsec_` and the base64 of 32 random bytes."""
    key = secrets.token_bytes(WEBHOOK_SECRET_BYTES)
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(key).decode("ascii")


@click.command("webhook-secret")
def webhook_secret() -> None:
    """Print a new Standard Webhooks secret (whsec_…, 32 random bytes).

    List it in a caller's `webhook_secrets` in the policy and give it to the team whose
    receiver checks the signatures (`clipmesh_client.webhooks.verify`).
    """
    click.echo(new_webhook_secret())


@click.group()
def policy() -> None:
    """Check the tenancy policy file before it goes into the Secret."""


@policy.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def check(file: Path) -> None:
    """Check a policy FILE as the services read it and summarise what it grants.

    Exit 0 when the services would accept it; 1, with the place at fault, when they would not.
    Run it before updating the Secret: a pod that starts with a bad file refuses to start.
    """
    try:
        loaded = read_policy(file)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    for line in summary(loaded, str(file)):
        click.echo(line)
    for warning in placeholder_secrets(loaded):
        click.echo(f"warning: {warning}", err=True)


def read_policy(path: Path) -> Policy:
    """The policy in `path`, read within the services' size limit.

    Raises:
        ConfigError: The file cannot be read, is too large, or is not a policy; the message
            names the file and the place.
    """
    try:
        size = path.stat().st_size
        if size > MAX_POLICY_BYTES:
            raise ConfigError(
                f"{path}: the file is {size:,} bytes; the limit is {MAX_POLICY_BYTES:,}"
            )
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc})") from exc
    return parse_policy(text, str(path))


def summary(loaded: Policy, source: str) -> list[str]:
    """What a policy grants, one caller a block, for people."""
    callers = len(loaded.callers)
    lines = [
        f"{source}: a valid policy with {callers} caller{'' if callers == 1 else 's'}",
        f"default quotas: {_quotas(loaded.default_quotas)}",
    ]
    rules = loaded.webhooks
    hosts = ", ".join(rules.allowed_hosts) or "none"
    lines.append(
        f"webhooks: allowed hosts {hosts}; private networks "
        f"{'allowed' if rules.allow_private_networks else 'refused'}; http to loopback "
        f"{'allowed' if rules.allow_http_loopback else 'refused'}"
    )
    for name, caller in sorted(loaded.callers.items()):
        lines += ["", name, *_caller_lines(caller)]
    lines += ["", "A caller not listed here may do nothing, whatever token it holds."]
    return lines


def placeholder_secrets(loaded: Policy) -> list[str]:
    """Webhook secrets of nothing but zero bytes, like the example policy's placeholders:
    the services accept them, but anyone could forge a signature with them."""
    return [
        f"callers.{name}.webhook_secrets[{index}] is all zero bytes, a placeholder anyone can "
        "forge signatures with; replace it with one from `clipmesh webhook-secret`"
        for name, caller in sorted(loaded.callers.items())
        for index, key in enumerate(caller.webhook_secrets)
        if not any(key)
    ]


def _caller_lines(caller: CallerPolicy) -> list[str]:
    grants = "; ".join(_grant(grant) for grant in caller.grants) or "none: may do nothing"
    lines = [f"  grants: {grants}", f"  quotas: {_quotas(caller.quotas)}"]
    if caller.webhook_secrets or caller.webhook_hosts:
        count = len(caller.webhook_secrets)
        hosts = ", ".join(caller.webhook_hosts) or "none of its own"
        lines.append(f"  webhooks: {count} secret{'' if count == 1 else 's'}; hosts {hosts}")
    return lines


def _grant(grant: Grant) -> str:
    roles = ", ".join(role for role in ROLES if role in grant.roles)
    return f"{roles} on {', '.join(grant.collections)}" if grant.collections else roles


def _quotas(limits: Limits) -> str:
    """Every quota's limit ("unlimited" where none is set)."""
    return ", ".join(f"{q.value} {human_amount(limits.get(q), q.unit)}" for q in Quota)
