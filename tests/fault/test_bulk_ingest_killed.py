"""A bulk ingest survives being killed: the driver SIGKILLed mid-run and the command run again
finishes the library with every video held once and whole; a Ray worker SIGKILLed mid-batch is
replaced and its batch retried, and the run ends with nothing failed and nothing twice.

Both run on the real local Ray cluster (tests/ray_cluster.py) against a real index.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytest_asyncio

from clipmesh.bulk import pipeline
from clipmesh.demo.library import make_library
from clipmesh.media.analysis import plan_video
from clipmesh.media.probe import DEFAULT_LIMITS, Deadline
from tests.bulk import bulk_config, bulk_environ, bulk_run, held_videos, report_lines
from tests.mesh import TINY_ENCODER_ENV

pytestmark = pytest.mark.asyncio(loop_scope="module")
VIDEOS = 16
RUN_TIMEOUT_S = 240


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(mesh_factory, tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    specs = make_library(root / "library", count=VIDEOS, seed=11)
    async with mesh_factory.in_process("encoder", "index") as running:
        running.library = root / "library"
        running.specs = specs
        yield running


def _expected_segments(path: Path) -> int:
    """How many segments a whole write of `path` holds (the plan both ingests use)."""
    plan = plan_video(path, DEFAULT_LIMITS, Deadline(path, 60), max_window_s=10.0)
    return len(plan.segments)


async def _lines_at_least(report: Path, count: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, "the driver ended before it could be killed"
        if report.exists() and len(report.read_text().splitlines()) >= count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{report} never reached {count} lines")


async def test_a_killed_driver_is_finished_by_a_rerun(mesh, ray_cluster, tmp_path) -> None:
    environ = {
        **os.environ,
        **TINY_ENCODER_ENV,
        **bulk_environ(mesh.target("index"), tmp_path, collection="driver_killed"),
    }
    command = [sys.executable, "-m", "clipmesh", "bulk-ingest", str(mesh.library)]
    command += ["--ray-address", ray_cluster.address]
    first_report = tmp_path / "first.jsonl"
    driver = subprocess.Popen(
        [*command, "--report", str(first_report)],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await _lines_at_least(first_report, 3, driver)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    killed_at = report_lines(first_report)
    assert 3 <= len(killed_at) < VIDEOS, "the kill did not land mid-run"

    second_report = tmp_path / "second.jsonl"
    rerun = await asyncio.create_subprocess_exec(
        *command, "--report", str(second_report), env=environ
    )
    assert await asyncio.wait_for(rerun.wait(), RUN_TIMEOUT_S) == 0

    finished = report_lines(second_report)
    assert {line["outcome"] for line in finished.values()} <= {"done", "duplicate"}
    assert len(finished) == VIDEOS
    # What the first run reported done, the second found in the index.
    for uri, line in killed_at.items():
        if line["outcome"] == "done":
            assert finished[uri]["outcome"] == "duplicate", uri
    held = await held_videos(mesh, "driver_killed")
    assert len(held) == VIDEOS, "a video is missing or held twice"
    by_name = {Path(v.meta.uri).name: v for v in held.values()}
    for spec in mesh.specs:
        assert by_name[spec.path.name].segment_count == _expected_segments(spec.path), (
            f"{spec.path.name} is half-written"
        )


async def test_a_worker_killed_mid_batch_is_replaced_and_its_batch_retried(
    mesh, ray_cluster, tmp_path
) -> None:
    config = bulk_config(mesh.target("index"), tmp_path, collection="worker_killed")
    killed: list[int] = []
    finished_at_kill: list[int] = []

    def kill_a_worker_once(totals) -> None:
        if killed or totals.finished < 2:
            return
        pids = ray_cluster.worker_pids("PrepareStage")
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])
            finished_at_kill.append(totals.finished)

    report = tmp_path / "report.jsonl"
    try:
        totals = await asyncio.wait_for(
            bulk_run(
                mesh.library,
                config,
                mesh.configs["encoder"],
                ray_address=ray_cluster.address,
                report=report,
                on_progress=kill_a_worker_once,
                progress_every_s=0.1,
            ),
            RUN_TIMEOUT_S,
        )
    finally:
        pipeline.disconnect()
    assert killed and finished_at_kill[0] < VIDEOS, "no worker was killed mid-run"
    assert (totals.done, totals.failed, totals.duplicates) == (VIDEOS, 0, 0)
    assert len(report_lines(report)) == VIDEOS
    held = await held_videos(mesh, "worker_killed")
    assert len(held) == VIDEOS
