"""`clipmesh generate` and `clipmesh jobs`: text-to-video jobs through the public API.

The orchestrator (127.0.0.1:50050 by default, CLIPMESH_GENERATOR_TARGET or --target) checks the
caller's token and `generate` role and relays to the generator gateway, as for any SDK caller.
A live progress bar for people, JSON lines for scripts; an error is one line on stderr and a
non-zero exit. Leaving with Ctrl-C stops watching, never the job (`clipmesh jobs watch ID`).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from clipmesh.cli import connection
from clipmesh.cli.connection import client_options
from clipmesh.cli.library import one_line_errors, print_json
from clipmesh_client.generation import (
    DEFAULT_GATEWAY_TARGET,
    GenerationJob,
    GeneratorClient,
    JobEvent,
)

console = Console()
_SIZE = re.compile(r"^(\d{2,5})[x*×](\d{2,5})$")
target_option = connection.target_option(
    "CLIPMESH_GENERATOR_TARGET",
    DEFAULT_GATEWAY_TARGET,
    "Public API",
    note="The orchestrator relays generation to the generator gateway; the gateway's own "
    "port (50053) also works where you can reach it.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@contextmanager
def gateway_for(target: str) -> Iterator[GeneratorClient]:
    """A generation client whose failures end the command with one clear line."""
    with (
        one_line_errors(),
        GeneratorClient(target, caller=os.environ.get("USER", ""), **client_options()) as client,
    ):
        yield client


def parse_size(value: str | None) -> tuple[int, int]:
    if not value:
        return (0, 0)
    match = _SIZE.match(value.strip())
    if not match:
        raise click.BadParameter("use WIDTHxHEIGHT, for example 832x480", param_hint="--size")
    return int(match[1]), int(match[2])


def follow(events: Iterator[JobEvent], *, as_json: bool) -> GenerationJob | None:
    """Shows a job's events (a progress bar, or JSON lines); returns its last state."""
    last = None
    if as_json:
        for event in events:
            print_json({"message": event.message, "job": event.job})
            last = event.job
        return last
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        bar = None
        for event in events:
            job = last = event.job
            if bar is None:
                bar = progress.add_task(f"job {job.job_id[:8]}", total=1.0, note="")
            note = event.message
            if job.state == "queued":
                note = f"queued (position {job.queue_position})"
            elif job.eta_s is not None and job.state == "running":
                note += f" · ~{job.eta_s:.0f}s left"
            progress.update(bar, completed=job.progress, note=note[:60])
    return last


def _report(job: GenerationJob | None) -> int:
    if job is None:
        return 1
    if job.state == "succeeded":
        cached = " (from the content cache)" if job.cache_hit else ""
        console.print(
            f"[green]succeeded[/]{cached}: {job.uri}  {job.size[0]}×{job.size[1]}, "
            f"{job.duration_s:g} s at {job.fps:g} fps"
        )
        return 0
    if job.state == "failed":
        code = f" ({job.provider_code})" if job.provider_code else ""
        console.print(f"[red]failed[/] {job.error_reason}{code}: {job.error_message}")
        return 1
    console.print(f"{job.state}: job {job.job_id}")
    return 1 if job.state == "cancelled" else 0


@click.command()
@click.argument("prompt")
@click.option("--backend", default="", help="animatic (offline) or dashscope (default: gateway's).")
@click.option("--model", default="", help="The backend's model (default: the backend's).")
@click.option("--duration", "duration_s", type=float, default=0.0, help="Seconds.")
@click.option("--size", help="WIDTHxHEIGHT, for example 832x480.")
@click.option("--fps", type=float, default=0.0)
@click.option("--seed", type=int, default=None, help="Fixes the result (and allows caching).")
@click.option("--negative", "negative_prompt", default="", help="What to avoid.")
@click.option("--key", "idempotency_key", default="", help="Idempotency key: safe retries.")
@click.option(
    "--shot-type",
    type=click.Choice(["single", "multi"]),
    default=None,
    help="multi: several shots the model cuts between (models that offer it, e.g. wan2.6-t2v).",
)
@click.option(
    "--audio/--no-audio",
    "generate_audio",
    default=None,
    help="Turn the model's soundtrack on or off (default: the model's).",
)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Save here.")
@click.option("--detach", is_flag=True, help="Print the job id and return at once.")
@target_option
@json_option
def generate(
    *,
    prompt: str,
    size: str | None,
    output: Path | None,
    detach: bool,
    target: str,
    as_json: bool,
    **options,
) -> None:
    """Generate a video from PROMPT, with live progress."""
    options["shot_type"] = options["shot_type"] or ""  # not given: the model's default
    with gateway_for(target) as gateway:
        events = gateway.generate(prompt, size=parse_size(size), **options)
        if detach:
            job = next(events).job
            events.close()
            if as_json:
                print_json(job)
            else:
                click.echo(job.job_id)
            return
        job = follow(events, as_json=as_json)
        if output is not None and job is not None and job.state == "succeeded":
            gateway.download_output(job.job_id, output)
            if not as_json:
                console.print(f"saved {output}")
    if not as_json:
        sys.exit(_report(job))
    sys.exit(0 if job is not None and job.state == "succeeded" else 1)


@click.group()
def jobs() -> None:
    """List, inspect, watch, cancel and download generation jobs."""


@jobs.command("list")
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(["queued", "running", "succeeded", "failed", "cancelled"]),
)
@click.option("--backend", default="")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@target_option
@json_option
def list_jobs(states: tuple[str, ...], backend: str, limit: int, target: str, as_json: bool):
    """Jobs, newest first."""
    with gateway_for(target) as gateway:
        listed = []
        for job in gateway.list_jobs(states=states, backend=backend, page_size=min(limit, 500)):
            listed.append(job)
            if len(listed) >= limit:
                break
    if as_json:
        print_json(listed)
        return
    table = Table(title=f"{len(listed)} jobs")
    for column in ("job", "state", "backend", "progress", "prompt"):
        table.add_column(column)
    for job in listed:
        table.add_row(job.job_id, job.state, job.backend, f"{job.progress:.0%}", job.prompt[:50])
    console.print(table)


@jobs.command("get")
@click.argument("job_id")
@target_option
def get_job(job_id: str, target: str) -> None:
    """One job (JSON)."""
    with gateway_for(target) as gateway:
        print_json(gateway.get_job(job_id))


@jobs.command("watch")
@click.argument("job_id")
@target_option
@json_option
def watch(job_id: str, target: str, as_json: bool) -> None:
    """Re-attach to a job and follow it to the end."""
    with gateway_for(target) as gateway:
        job = follow(gateway.watch(job_id), as_json=as_json)
    sys.exit(_report(job) if not as_json else 0)


@jobs.command("cancel")
@click.argument("job_id")
@target_option
def cancel(job_id: str, target: str) -> None:
    """Cancel a job (queued: always; running: as far as its backend allows)."""
    with gateway_for(target) as gateway:
        job, outcome = gateway.cancel_job(job_id)
    console.print(f"{outcome.replace('_', ' ')}: job {job.job_id} is {job.state}")
    sys.exit(0 if outcome != "not_cancellable" else 1)


@jobs.command("download")
@click.argument("job_id")
@click.argument("destination", type=click.Path(dir_okay=False, path_type=Path))
@target_option
def download(job_id: str, destination: Path, target: str) -> None:
    """Save a succeeded job's video (checked against its SHA-256)."""
    with gateway_for(target) as gateway:
        gateway.download_output(job_id, destination)
    console.print(f"saved {destination}")
