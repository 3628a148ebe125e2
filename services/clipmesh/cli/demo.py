"""`clipmesh demo` (what `make demo` runs): the main job, offline, on the embedded defaults.

It makes a small deterministic library of videos, starts the mesh with that library as the
only allowed root, ingests it with progress, searches with a frame taken from one video
(cropped and re-compressed, as a still from an edit would be) and shows the hits with their
timestamps, runs a text search, evaluates retrieval over the library's labelled queries
(`clipmesh eval`), turns a short Chinese script into a previs cut on the animatic backend and
revises one shot with a note, and stops the mesh.

Everything it makes stays in `./clipmesh-demo/` (emptied at the start of each run), so the cut,
the timeline and the clips can be opened afterwards.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.console import Console
from rich.table import Table

from clipmesh.cli.evaluation import load_queries, run_queries
from clipmesh.cli.evaluation_report import render, report_by_category
from clipmesh.cli.library import timestamp
from clipmesh.cli.mesh import LocalMesh
from clipmesh.cli.previs import follow, show_project
from clipmesh.demo.library import DEMO_QUERIES, DEMO_SCRIPTS, make_library, still_from
from clipmesh_client import Client, IngestProgress, IngestSummary, SearchResult
from clipmesh_client.previs import PrevisClient

console = Console()
DEMO_DIR = Path("clipmesh-demo")
DEMO_CLIP_SIZE = (320, 192)  # small clips keep the demo to seconds on two CPU cores
DEMO_CLIP_FPS = 12.0


def show(title: str, result: SearchResult, expected: str = "") -> None:
    table = Table(title=title)
    for column in ("#", "video", "score", "moments (start–end @ peak)"):
        table.add_column(column)
    for rank, hit in enumerate(result.hits, 1):
        mark = " ←" if hit.video.title == expected else ""
        moments = "; ".join(
            f"{timestamp(m.start_s)}–{timestamp(m.end_s)} @ {timestamp(m.peak_s)}"
            for m in hit.moments
        )
        table.add_row(str(rank), hit.video.title + mark, f"{hit.score:.3f}", moments)
    console.print(table)
    console.print(
        f"  {result.timings_ms.get('total', 0):.0f} ms end to end"
        + (" (from cache)" if result.cache_hit else "")
    )


def run_demo(library_dir: Path, mesh: LocalMesh) -> int:
    """Ingests the library into the running mesh and searches it; returns an exit code."""
    specs = sorted(library_dir.glob("*.mp4"))
    with Client(mesh.address("orchestrator"), timeout_s=30) as client:
        client.wait_until_ready(timeout_s=60)
        console.rule("ingest")
        summary = None
        for event in client.ingest([str(p) for p in specs]):
            if isinstance(event, IngestProgress) and event.finished:
                status = event.stage if not event.error_reason else f"failed: {event.error_reason}"
                console.print(f"  {Path(event.uri).name}: {status}, {event.segments} segments")
            elif isinstance(event, IngestSummary):
                summary = event
        if summary is None or summary.failed:
            console.print("[red]ingest failed[/]")
            return 1
        console.print(
            f"  {summary.ingested} videos, {summary.segments} segments, "
            f"{summary.video_seconds:.0f} s of video in {summary.wall_seconds:.1f} s "
            f"({summary.video_seconds / max(summary.wall_seconds, 1e-6):.0f}× real time)"
        )
        source, moment_s = specs[2], 5.3
        console.rule("search by image")
        console.print(
            f"  query: a frame of {source.stem} at {timestamp(moment_s)}, cropped and re-compressed"
        )
        result = client.search(image=still_from(source, moment_s), top_k=3)
        for warning in result.warnings:
            console.print(f"  [bold yellow]note:[/] {warning}")
        show("image search", result, expected=source.stem)
        console.rule("search by text")
        show(
            "text search: 'a slow pan across a colourful landscape'",
            client.search(text="a slow pan across a colourful landscape", top_k=3),
        )
        console.rule("retrieval evaluation (clipmesh eval)")
        queries = load_queries(DEMO_QUERIES, media_root=library_dir)
        outcomes = run_queries(client, queries)
        render(report_by_category(outcomes), outcomes, console)
    return run_previs_demo(mesh.address("previs"))


def run_previs_demo(target: str) -> int:
    """A short previs on the animatic backend: script → checked shots → cut, then one review."""
    console.rule("previs: a script to a cut (animatic backend)")
    script = DEMO_SCRIPTS / "rain_cafe.zh.txt"
    console.print(f"  script: {script}")
    with PrevisClient(target, timeout_s=30) as previs:
        reports = previs.create_project(
            script.read_text(encoding="utf-8"),
            title="雨中咖啡馆",
            backend="animatic",
            size=DEMO_CLIP_SIZE,
            fps=DEMO_CLIP_FPS,
        )
        project = follow(reports, as_json=False)
        if project is None or not project.HasField("cut"):
            console.print("[red]previs made no cut[/]")
            return 1
        shot = project.shots[1].shot_id
        console.rule(f"previs: review {shot} with the note “更慢一些，推近一点”")
        project = follow(
            previs.review_shot(project.project_id, shot, note="更慢一些，推近一点"), as_json=False
        )
    show_project(project)
    return 0


def demo_main() -> int:
    """Builds the library, runs the mesh around `run_demo`, and stops it."""
    from clipmesh.cli.main import run_mesh

    root = DEMO_DIR.resolve()
    shutil.rmtree(root, ignore_errors=True)
    console.print(f"working in {root} (emptied first)")
    console.print("making the demo library (8 procedural videos, deterministic) …")
    make_library(root / "library", count=8, seed=0)
    mesh = LocalMesh(data_dir=root / "data")
    mesh.environ["CLIPMESH_ORCHESTRATOR_ALLOWED_ROOTS"] = str(root / "library")
    return run_mesh(mesh, startup_timeout_s=180.0, then=lambda m: run_demo(root / "library", m))
