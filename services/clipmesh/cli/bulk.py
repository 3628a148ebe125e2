"""`clipmesh bulk-ingest`: a whole library into the index on a Ray cluster.

Unlike `clipmesh ingest`, which asks the orchestrator, this is an operator's tool: it reads the
files itself (a directory, a manifest of URIs, or `s3://bucket/prefix`), spreads the decoding
and embedding over Ray (`--ray-address local` starts Ray on this machine; nothing but `pip`
needed) and writes to the index service directly. Settings are `CLIPMESH_BULK_INGEST_*`
(clipmesh/bulk/config.py) and the encoder's `CLIPMESH_ENCODER_*` for the model.

Exit status: 0 when every file ended done or duplicate, 1 when some failed (the report says
which and why) or the job could not run, 2 for a bad setting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from clipmesh.runtime.config import ConfigError, load_config
from clipmesh.runtime.errors import ServiceError

console = Console(stderr=True)


def _labels(_ctx, _param, values: tuple[str, ...]) -> dict[str, str]:
    labels = {}
    for value in values:
        for pair in filter(None, value.split(",")):
            key, sep, text = pair.partition("=")
            if not sep or not key.strip():
                raise click.BadParameter(f"{pair!r}: use KEY=VALUE", param_hint="--label")
            labels[key.strip()] = text
    return labels


@click.command("bulk-ingest")
@click.argument("source")
@click.option("--collection", help="Collection the videos go to [CLIPMESH_BULK_INGEST_COLLECTION].")
@click.option(
    "--ray-address",
    default="local",
    show_default=True,
    help="local (start Ray on this machine), auto (the cluster this machine belongs to, as "
    "in a RayJob), ray://host:10001, or a head's host:6379.",
)
@click.option(
    "--label",
    "--labels",
    "labels",
    multiple=True,
    callback=_labels,
    metavar="KEY=VALUE[,KEY=VALUE]",
    help="Metadata stored with every video (repeatable).",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("bulk-ingest-report.jsonl"),
    show_default=True,
    help="JSON lines, one per file: uri, outcome (done, duplicate, failed), video_id, reason, "
    "message, segments, video_seconds. Replaced by each run.",
)
@click.option("--cpu-workers", type=click.IntRange(0), help="Decoding actors (0: one per CPU).")
@click.option("--local-cpus", type=click.IntRange(1), help="CPUs of a `local` Ray cluster.")
@click.option(
    "--dry-run", is_flag=True, help="List and check the settings and the index; write nothing."
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
def bulk_ingest(
    source: str,
    *,
    collection: str | None,
    ray_address: str,
    labels: dict[str, str],
    report_path: Path,
    cpu_workers: int | None,
    local_cpus: int | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Ingest SOURCE (a directory, a manifest file of paths or s3:// URIs, or
    s3://bucket/prefix) on Ray: the same segments and vectors as IngestVideos, resumable."""
    from clipmesh.bulk.config import BulkIngestConfig
    from clipmesh.bulk.run import BulkIngestJob
    from clipmesh.bulk.sources import Source
    from clipmesh.encoder.config import EncoderConfig

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    flags = {
        "collection": collection,
        "cpu_workers": None if cpu_workers is None else str(cpu_workers),
    }
    try:
        config = load_config(BulkIngestConfig, flags=flags)
        encoder = load_config(EncoderConfig) if not config.encoder_target else None
    except ConfigError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    with _one_line_errors():
        parsed = Source.parse(source, config)
        job = BulkIngestJob(parsed, ray_address, labels, report_path, local_cpus)
        if dry_run:
            asyncio.run(_dry_run(job, config, encoder))
            sys.exit(0)
        sys.exit(asyncio.run(_run(job, config, encoder, as_json=as_json)))


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    """Ends the command with one clear line when the job cannot run."""
    from clipmesh.bulk.pipeline import PipelineError

    try:
        yield
    except ServiceError as error:
        click.echo(f"error: {error.reason}: {error.message}", err=True)
        sys.exit(1)
    except PipelineError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)


async def _dry_run(job, config, encoder) -> None:
    from clipmesh.bulk.run import census, check_index

    counted = await asyncio.to_thread(census, job.source, config)
    await check_index(config)
    embedding = (
        f"through the encoder at {config.encoder_target}"
        if config.encoder_target
        else f"in the workers with {encoder.model} ({encoder.weights})"
    )
    console.print(
        f"dry run: {counted.files} files ({counted.known_bytes / 1e9:.2f} GB listed) in "
        f"{job.source.spec} → collection {config.collection!r} at {config.index_target} "
        f"(answering); embedding {embedding}; nothing written",
        highlight=False,
    )


async def _run(job, config, encoder, *, as_json: bool) -> int:
    from clipmesh.bulk.run import run_bulk_ingest

    totals = await run_bulk_ingest(
        job, config, encoder, on_progress=lambda t: console.print(t.line(), highlight=False)
    )
    if as_json:
        click.echo(json.dumps(totals.as_dict(), indent=2))
    else:
        console.print(_summary(totals, job.report_path))
    return 1 if totals.failed else 0


def _summary(totals, report_path: Path) -> Table:
    table = Table(title=f"bulk ingest finished in {totals.wall_s:.1f} s")
    table.add_column("")
    table.add_column("", justify="right")
    rows = [
        ("listed", totals.listed),
        ("done", totals.done),
        ("duplicate", totals.duplicates),
        ("failed", totals.failed),
        ("segments", totals.segments),
        ("video hours", f"{totals.video_seconds / 3600:.2f}"),
        ("real time ×", f"{totals.realtime_factor:.1f}"),
        ("videos/s", f"{totals.videos_per_s:.2f}"),
    ]
    rows += [(f"  failed: {reason}", count) for reason, count in totals.failure_reasons.items()]
    rows.append(("report", str(report_path)))
    for name, value in rows:
        table.add_row(name, str(value))
    return table
