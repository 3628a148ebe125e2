"""`clipmesh ingest`, `clipmesh search` and `clipmesh videos`: the library from a terminal.

They talk to the orchestrator through the SDK (`clipmesh_client`), like any other caller.
Tables for people, `--json` for scripts; an error is one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from clipmesh.cli import connection
from clipmesh.cli.connection import client_options
from clipmesh.cli.quotas import human_amount, human_reset, quota_unit
from clipmesh_client import (
    Client,
    ClipmeshError,
    IngestProgress,
    IngestSummary,
    PermissionDeniedError,
    QuotaExceededError,
)

console = Console()
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
DEFAULT_TARGET = "127.0.0.1:50050"
target_option = connection.target_option("CLIPMESH_TARGET", DEFAULT_TARGET, "Orchestrator")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Ends the command with one clear line and exit code 1 when a call fails."""
    try:
        yield
    except ClipmeshError as error:
        reason = f" [{error.reason}]" if error.reason else ""
        details = refusal_details(error)
        details = f" ({details})" if details else ""
        click.echo(f"error: {error.code.name}{reason}: {error.message}{details}", err=True)
        sys.exit(1)


def refusal_details(error: ClipmeshError) -> str:
    """What a refusal by the policy adds to its message, from the status's details rather than
    its text: the quota, its use and limit and when it resets; or the missing permission and
    the collection. "" for other errors."""
    if isinstance(error, QuotaExceededError) and error.quota:
        unit = quota_unit(error.quota)
        used, limit = (
            "?" if value is None else human_amount(value, unit)
            for value in (error.used, error.limit)
        )
        details = f"quota {error.quota}: {used} used of {limit}"
        if error.reset_time is not None:
            details += f", resets {human_reset(error.reset_time)}"
        return details
    if isinstance(error, PermissionDeniedError) and error.permission:
        where = f" in collection {error.collection!r}" if error.collection else ""
        return f"missing permission: {error.permission}{where}"
    return ""


@contextmanager
def client_for(target: str, timeout_s: float = 10.0) -> Iterator[Client]:
    """An orchestrator client whose failures end the command with one clear line."""
    with one_line_errors(), Client(target, timeout_s=timeout_s, **client_options()) as client:
        yield client


def _jsonable(value: object) -> object:
    if dataclasses.is_dataclass(value):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def print_json(value: object) -> None:
    click.echo(json.dumps(_jsonable(value), indent=2, ensure_ascii=False, default=str))


def timestamp(seconds: float) -> str:
    """1:02.5 style, the way editors read a timecode."""
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}:{rest:04.1f}"


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--collection", default="", help="Collection to add to (default: the service's).")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Metadata to store.")
@target_option
@json_option
def ingest(
    paths: tuple[str, ...], collection: str, labels: tuple[str, ...], target: str, as_json: bool
) -> None:
    """Ingest video files (paths as the orchestrator sees them, under its allowed roots)."""
    label_map = dict(item.split("=", 1) for item in labels if "=" in item)
    # Relative paths become absolute here (the server refuses relative ones); anything with a
    # scheme goes as typed, and symlinks are left for the server to judge.
    absolute = [p if _SCHEME.match(p) else str(Path(p).absolute()) for p in paths]
    summary: IngestSummary | None = None
    failures: list[IngestProgress] = []
    with (
        client_for(target) as client,
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[stage]}"),
            TimeRemainingColumn(),
            console=console,
            disable=as_json,
        ) as progress,
    ):
        bars = {
            uri: progress.add_task(Path(uri).name, total=1.0, stage="queued") for uri in absolute
        }
        for event in client.ingest(absolute, collection=collection, labels=label_map):
            if isinstance(event, IngestSummary):
                summary = event
                continue
            if as_json:
                print_json(event)
            task = bars.get(event.uri)
            if task is not None:
                progress.update(task, completed=event.fraction, stage=event.stage)
            if event.stage == "failed":
                failures.append(event)
    if as_json:
        print_json(summary)
    else:
        for failed in failures:
            console.print(
                f"[red]failed[/] {failed.uri}: {failed.error_reason}: {failed.error_message}"
            )
        if summary is not None:
            console.print(
                f"ingested {summary.ingested}, duplicates {summary.duplicates}, failed "
                f"{summary.failed}; {summary.segments} segments from {summary.video_seconds:.1f} s "
                f"of video in {summary.wall_seconds:.1f} s"
            )
    sys.exit(1 if failures else 0)


def _parse_like(value: str) -> tuple[str, float, float]:
    """VIDEO@SECONDS or VIDEO@START-END → (video_id, start_s, end_s)."""
    video_id, _, when = value.rpartition("@")
    try:
        if "-" in when:
            start, end = (float(x) for x in when.split("-", 1))
        else:
            start = float(when)
            end = start + 0.01  # the segment that contains this instant
    except ValueError:
        raise click.BadParameter(
            "use VIDEO@SECONDS or VIDEO@START-END", param_hint="--like"
        ) from None
    if not video_id:
        raise click.BadParameter("use VIDEO@SECONDS or VIDEO@START-END", param_hint="--like")
    return video_id, start, end


@click.command()
@click.option(
    "--image",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Find videos that look like this picture.",
)
@click.option("--text", help="Find videos matching this description (any language).")
@click.option("--like", help="Find videos like a moment of an indexed video: VIDEO@SECONDS.")
@click.option("--not", "not_text", help="…but not like this description.")
@click.option("--top-k", type=int, default=5, show_default=True)
@click.option("--collection", default="")
@click.option("--budget-ms", type=int, default=0, help="Latency budget (default: the service's).")
@click.option(
    "--min-score",
    type=click.FloatRange(-1, 1),
    default=None,
    help="Leave out videos and moments scoring below this (-1 to 1).",
)
@target_option
@json_option
def search(
    *,
    image: Path | None,
    text: str | None,
    like: str | None,
    not_text: str | None,
    top_k: int,
    collection: str,
    budget_ms: int,
    min_score: float | None,
    target: str,
    as_json: bool,
) -> None:
    """Search videos, and the moments inside them, by image, text or clip."""
    if not (image or text or like):
        raise click.UsageError("give --image, --text or --like")
    with client_for(target) as client:
        result = client.search(
            image=image.read_bytes() if image else None,
            text=text,
            like=_parse_like(like) if like else None,
            not_text=not_text,
            top_k=top_k,
            collection=collection,
            budget_ms=budget_ms,
            min_score=min_score,
        )
    if as_json:
        print_json(result)
        return
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    title = f"{len(result.hits)} videos" + (" (cached)" if result.cache_hit else "")
    if result.hits_below_min_score:
        title += f", {result.hits_below_min_score} below --min-score left out"
    table = Table(title=title)
    for column in ("#", "video", "title", "score", "moments (start–end, peak)"):
        table.add_column(column)
    for rank, hit in enumerate(result.hits, 1):
        moments = "; ".join(
            f"{timestamp(m.start_s)}–{timestamp(m.end_s)} @ {timestamp(m.peak_s)} ({m.score:.3f})"
            for m in hit.moments
        )
        table.add_row(str(rank), hit.video.video_id, hit.video.title, f"{hit.score:.3f}", moments)
    console.print(table)
    total = result.timings_ms.get("total")
    if total is not None:
        console.print(f"{total:.0f} ms" + (" (degraded)" if result.degraded else ""))


@click.group()
def videos() -> None:
    """List, show and delete library videos."""


@videos.command("list")
@click.option("--collection", default="")
@click.option("--limit", type=int, default=50, show_default=True)
@target_option
@json_option
def list_videos(collection: str, limit: int, target: str, as_json: bool) -> None:
    """List videos, newest first."""
    with client_for(target) as client:
        listed = []
        for video in client.list_videos(collection=collection):
            listed.append(video)
            if len(listed) >= limit:
                break
    if as_json:
        print_json(listed)
        return
    table = Table(title=f"{len(listed)} videos")
    for column in ("video", "title", "duration", "source", "size"):
        table.add_column(column)
    for video in listed:
        table.add_row(
            video.video_id,
            video.title,
            timestamp(video.duration_s),
            video.source,
            f"{video.width}×{video.height}",
        )
    console.print(table)


@videos.command("get")
@click.argument("video_id")
@click.option("--collection", default="")
@target_option
def get_video(video_id: str, collection: str, target: str) -> None:
    """Show one video's metadata (JSON)."""
    with client_for(target) as client:
        print_json(client.get_video(video_id, collection=collection))


@videos.command("delete")
@click.argument("video_ids", nargs=-1, required=True)
@click.option("--collection", default="")
@target_option
def delete_videos(video_ids: tuple[str, ...], collection: str, target: str) -> None:
    """Delete videos from the library."""
    with client_for(target) as client:
        result = client.delete_videos(list(video_ids), collection=collection)
    console.print(
        f"deleted {result.deleted_count}"
        + (f"; not found: {', '.join(result.not_found_ids)}" if result.not_found_ids else "")
    )
