"""`clipmesh demo` (what `make demo` runs): the main job, offline, on the embedded defaults.

It makes a small deterministic library of videos, starts the mesh with that library as the
only allowed root, ingests it with progress, searches with a frame taken from one video
(cropped and re-compressed, as a still from an edit would be) and shows the hits with their
timestamps, runs a text search, evaluates retrieval over the library's labelled queries
(`clipmesh eval`), and stops the mesh.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from clipmesh.cli.evaluation import load_queries, render, report_by_category, run_queries
from clipmesh.cli.library import timestamp
from clipmesh.cli.mesh import LocalMesh
from clipmesh.demo.library import DEMO_QUERIES, make_library, still_from
from clipmesh_client import Client, IngestProgress, IngestSummary, SearchResult

console = Console()


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
    target = mesh.services[-1].address
    with Client(target, timeout_s=30) as client:
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
    return 0


def demo_main() -> int:
    """Builds the library, runs the mesh around `run_demo`, and stops it."""
    from clipmesh.cli.main import run_mesh

    with tempfile.TemporaryDirectory(prefix="clipmesh-demo-") as scratch:
        root = Path(scratch)
        console.print("making the demo library (8 procedural videos, deterministic) …")
        make_library(root / "library", count=8, seed=0)
        mesh = LocalMesh(data_dir=root / "data")
        mesh.environ["CLIPMESH_ORCHESTRATOR_ALLOWED_ROOTS"] = str(root / "library")
        return run_mesh(mesh, startup_timeout_s=180.0, then=lambda m: run_demo(root / "library", m))
