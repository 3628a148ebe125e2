"""`clipmesh whoami`: who the public API takes you for, what you may do, and what is left.

The first thing to run when a call is refused: the identity your token proves, the grants the
policy gives it and each quota's use today, asked of the orchestrator through the SDK like any
other call (the same --target, CLIPMESH_TOKEN and CA options).
"""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from clipmesh.cli.library import client_for, json_option, print_json, target_option
from clipmesh.cli.quotas import human_amount, human_reset
from clipmesh_client import CallerInfo

console = Console()


@click.command()
@target_option
@json_option
def whoami(target: str, as_json: bool) -> None:
    """Who the API takes you for: your roles, collections and quota use."""
    with client_for(target) as client:
        info = client.whoami()
    if as_json:
        print_json(info)
    else:
        show_caller(info)


def show_caller(info: CallerInfo) -> None:
    """The caller, its grants and its quotas, as tables for people."""
    console.print(f"caller         {info.caller}")
    console.print(f"admin          {'yes' if info.admin else 'no'}")
    if info.authorization_enabled:
        console.print("authorization  on: the policy decides what each caller may do")
    else:
        console.print("authorization  off: no policy, every caller may do everything")
    if info.grants:
        grants = Table(title="grants", title_justify="left")
        grants.add_column("roles", no_wrap=True)
        grants.add_column("collections")
        for grant in info.grants:
            grants.add_row(", ".join(grant.roles), ", ".join(grant.collections) or "-")
        console.print(grants)
    else:
        console.print("[yellow]no grants:[/] the policy lets this caller do nothing")
    if info.quotas:
        quotas = Table(title="quotas", title_justify="left")
        for column in ("quota", "used", "limit"):
            quotas.add_column(column, no_wrap=True)
        quotas.add_column("resets")  # the column that wraps in a narrow terminal
        for quota in info.quotas:
            quotas.add_row(
                quota.quota,
                human_amount(quota.used, quota.unit),
                human_amount(quota.limit, quota.unit),
                human_reset(quota.reset_time) if quota.reset_time else "-",
            )
        console.print(quotas)
    for warning in info.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
