"""Helpers for tests that run real servers: in-process services on free ports."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import sys
import urllib.request
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from clipmesh.runtime.config import ServiceConfig
from clipmesh.runtime.server import Application, serve


@dataclass
class RunningService:
    """A service serving in this process."""

    port: int
    metrics_port: int
    stop: asyncio.Event
    task: asyncio.Task[None]

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


@contextlib.asynccontextmanager
async def serve_in_process(
    config: ServiceConfig, app: Application, *, ready_timeout_s: float = 60
) -> AsyncIterator[RunningService]:
    """Runs `app` on loopback free ports until the block exits, then drains it."""
    config = replace(config, host="127.0.0.1", port=0, metrics_host="127.0.0.1", metrics_port=0)
    stop = asyncio.Event()
    ready: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve(config, app, stop=stop, on_ready=lambda p, m: ready.set_result((p, m)))
    )
    done, _ = await asyncio.wait(
        {task, ready}, timeout=ready_timeout_s, return_when=asyncio.FIRST_COMPLETED
    )
    if task in done:
        task.result()  # start-up failed: raise its error
    if ready not in done:
        stop.set()
        raise TimeoutError(f"{config.SERVICE} not ready within {ready_timeout_s}s")
    port, metrics_port = ready.result()
    try:
        yield RunningService(port, metrics_port, stop, task)
    finally:
        stop.set()
        await task


async def run_cli(
    *args: str, timeout_s: float = 120, env: Mapping[str, str] | None = None
) -> tuple[int, str, str]:
    """Runs `python -m clipmesh ARGS…` (with `env` as its whole environment when given);
    returns (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "clipmesh",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=None if env is None else dict(env),
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=timeout_s)
    return process.returncode, out.decode(), err.decode()


async def scrape_metrics(port: int) -> dict[tuple[str, tuple], float]:
    """A service's /metrics as {(sample name, sorted labels): value}."""

    def fetch() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return response.read().decode()

    text = await asyncio.to_thread(fetch)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def webhook_outbox(database: Path) -> list[dict]:
    """The generator's webhook outbox as its job store holds it (read-only, beside the running
    gateway): one dict per event, oldest first, without the payload."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute(
            "SELECT event_id, job_id, caller, url, created_s, attempts, next_attempt_s, state,"
            " last_error, done_s FROM webhook_outbox ORDER BY created_s"
        ).fetchall()
    return [dict(row) for row in rows]


def skip_unless_ci(reason: str) -> None:
    """Skips a test this machine cannot run — except under CI (`CI` set), where `.ci/run`
    provides everything the suite needs: there the test fails instead, so nothing goes
    unchecked without anyone noticing."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must provide it")
    pytest.skip(reason)
