"""`clipmesh previs`, `clipmesh review` and `clipmesh export`: a script to a reviewed cut, and
its timeline for an editor (OpenTimelineIO, Final Cut Pro 7 XML, FCPXML, CMX 3600 EDL).

Live progress for people (shots done, stage, time left), JSON lines for scripts; an error is
one line on stderr and a non-zero exit. Ctrl-C stops watching, never the project: the run goes
on in the previs service and `clipmesh export PROJECT` finds its cut once it is done.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from google.protobuf.json_format import MessageToDict
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from clipmesh.cli import connection
from clipmesh.cli.connection import client_options
from clipmesh.cli.generation import parse_size
from clipmesh.cli.library import json_option, one_line_errors
from clipmesh.media.paths import path_from_uri
from clipmesh_api.orchestrator.v1 import previs_pb2
from clipmesh_client.previs import DEFAULT_TARGET, EXPORT_FORMATS, FORMATS, PrevisClient

console = Console()
target_option = connection.target_option("CLIPMESH_PREVIS_TARGET", DEFAULT_TARGET, "Previs")


@contextmanager
def previs_for(target: str) -> Iterator[PrevisClient]:
    """A previs client whose failures end the command with one clear line."""
    with one_line_errors(), PrevisClient(target, **client_options()) as client:
        yield client


def follow(reports: Iterator[previs_pb2.ProjectProgress], *, as_json: bool):
    """Shows progress (a bar, or JSON lines); returns the project from the last report."""
    last = None
    if as_json:
        for last in reports:  # JSON lines: one report a line, the last with the project
            click.echo(json.dumps(_as_dict(last), ensure_ascii=False))
        return last.project if last else None
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.fields[shots]} shots"),
        TextColumn("eta {task.fields[eta]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task("parsing", total=None, eta="?", shots="?")
        for last in reports:
            eta = f"{last.eta_s:.0f}s" if last.eta_s >= 0 else "?"
            bar.update(
                task,
                description=f"{last.stage:<10}",
                completed=last.shots_done,
                total=last.shots_total or None,
                shots=last.shots_total,
                eta=eta,
            )
            bar.console.print(f"  [dim]{last.project_id}[/] {last.message}")
    return last.project if last else None


def _as_dict(message) -> dict:
    return MessageToDict(message, preserving_proto_field_name=True)


def _state(value: int) -> str:
    return previs_pb2.ShotState.Name(value).removeprefix("SHOT_STATE_").lower()


def show_project(project: previs_pb2.Project) -> None:
    """A table of the shots, then where the cut and the timeline are."""
    table = Table(title=f"{project.title} ({project.project_id})")
    for column in ("shot", "state", "s", "rev", "sharp", "flicker", "smooth", "text"):
        table.add_column(
            column,
            justify="left" if column in ("shot", "state") else "right",
            no_wrap=True,
            min_width=max(len(column), {"state": 8, "s": 4, "text": 5}.get(column, 0)),
        )
    table.add_column("shot / reason", no_wrap=True, overflow="ellipsis", min_width=10, max_width=24)
    for shot in project.shots:
        row = [shot.shot_id, _state(shot.state), f"{shot.duration_s:.1f}"]
        if shot.current_revision:
            revision = shot.revisions[shot.current_revision - 1]
            scores = revision.clips[revision.selected_clip].scores
            row.append(f"{revision.revision}/{len(shot.revisions)}")
            row += [f"{scores.sharpness:.0f}", f"{scores.flicker:.2f}"]
            row += [f"{scores.smoothness:.2f}", f"{scores.text_match:.2f}"]
            row.append(shot.blocked_reason or shot.description)
        else:
            row += ["-"] * 5 + [shot.blocked_reason]
        table.add_row(*row)
    console.print(table)
    for notice in project.notices:
        console.print(f"[yellow]note[/]: {notice}")
    if project.HasField("cut"):
        console.print(f"cut      {path_from_uri(project.cut.mp4_uri)}", soft_wrap=True)
        console.print(f"timeline {path_from_uri(project.cut.otio_uri)}", soft_wrap=True)
        console.print(f"         {project.cut.duration_s:.1f} s; prompts and scores: --json")
    console.print(f'review a shot: clipmesh review {project.project_id} SHOT "note"')


def _references(values: tuple[str, ...]) -> dict[int, bytes]:
    references = {}
    for value in values:
        order, _, path = value.partition("=")
        if not order.isdigit() or not path:
            raise click.BadParameter(
                f"{value!r}: use SHOT_ORDER=IMAGE_PATH", param_hint="--reference"
            )
        try:
            references[int(order)] = Path(path).read_bytes()
        except OSError as error:
            raise click.BadParameter(
                f"{path}: {error.strerror}", param_hint="--reference"
            ) from error
    return references


def _finish(project, as_json: bool) -> None:
    if project is None:
        sys.exit(1)
    if as_json:
        return
    show_project(project)


@click.command("previs")
@click.argument("script", type=click.File("r", encoding="utf-8"))
@click.option("--title", default="", help="Project title (default: the script's file name).")
@click.option("--format", "script_format", type=click.Choice(sorted(FORMATS)), default="auto")
@click.option("--variants", type=click.IntRange(0, 16), default=0, help="Style variants per shot.")
@click.option("--backend", default="", help="animatic (offline) or dashscope (default: gateway's).")
@click.option("--model", default="", help="The backend's model, e.g. wan2.6-t2v.")
@click.option(
    "--multi-shot",
    is_flag=True,
    help="Ask for multi-shot clips (coverage within each shot) where the model offers it.",
)
@click.option("--style", default="", help="Style template: cinematic, anime, ink_wash, …")
@click.option("--size", help="WIDTHxHEIGHT of the clips (default: the backend's).")
@click.option("--fps", type=float, default=0.0, help="Frame rate of the clips.")
@click.option(
    "--reference", "references", multiple=True, help="SHOT_ORDER=IMAGE: a reference image."
)
@target_option
@json_option
def previs(
    *,
    script,
    title,
    script_format,
    variants,
    backend,
    model,
    multi_shot,
    style,
    size,
    fps,
    references,
    target,
    as_json,
) -> None:
    """Turn SCRIPT (plain zh/en text or Fountain; '-' for stdin) into a previs cut."""
    text = script.read()
    name = Path(script.name).stem if script.name != "<stdin>" else "Untitled"
    with previs_for(target) as client:
        reports = client.create_project(
            text,
            title=title or name,
            format=script_format,
            variants=variants,
            backend=backend,
            model=model,
            multi_shot=multi_shot,
            style=style,
            references=_references(references),
            size=parse_size(size),
            fps=fps,
        )
        _finish(follow(reports, as_json=as_json), as_json)


@click.command("review")
@click.argument("project_id")
@click.argument("shot_id")
@click.argument("note", required=False, default="")
@click.option(
    "--restore",
    "restore_revision",
    type=click.IntRange(1),
    default=None,
    help="Put this earlier revision back in the cut instead of a note.",
)
@click.option(
    "--select",
    "select_clip",
    type=click.IntRange(0),
    default=None,
    help="Put this clip (a variant) of the current revision in the cut.",
)
@target_option
@json_option
def review(*, project_id, shot_id, note, restore_revision, select_clip, target, as_json) -> None:
    """Revise one SHOT of PROJECT with a NOTE ("slower", "更慢一些", "push in on her face")."""
    with previs_for(target) as client:
        reports = client.review_shot(
            project_id,
            shot_id,
            note=note,
            restore_revision=restore_revision or 0,
            select_clip=select_clip,
        )
        _finish(follow(reports, as_json=as_json), as_json)


@click.command("export")
@click.argument("project_id")
@click.option(
    "--format",
    "export_format",
    type=click.Choice(sorted(EXPORT_FORMATS)),
    default="otio",
    show_default=True,
    help="Timeline for an editor: otio (OpenTimelineIO), xml (Final Cut Pro 7 XML, also read by "
    "Premiere and Resolve), fcpxml (Final Cut Pro X) or edl (CMX 3600).",
)
@target_option
@json_option
def export(project_id: str, export_format: str, target: str, as_json: bool) -> None:
    """Print PROJECT's shots and where its cut (MP4) and timeline are, the timeline written in
    --format beside the cut."""
    with previs_for(target) as client:
        project = client.get_project(project_id)
        exported = client.export_cut(project_id, format=export_format)
    if as_json:
        answer = {**_as_dict(exported.cut), "format": exported.format}
        click.echo(json.dumps({**answer, "export_uri": exported.export_uri}, ensure_ascii=False))
        return
    show_project(project)
    console.print(f"export   {path_from_uri(exported.export_uri)}", soft_wrap=True)
