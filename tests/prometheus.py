"""A real Prometheus for tests: Debian's `prometheus` on a free loopback port with a temporary
data directory, running the configuration users run (deploy/prometheus: prometheus.yml, its
target files and clipmesh-rules.yaml), rendered for the test's ports and a short interval.

The rendering changes only what a test must: the port of each target of
targets/clipmesh-up.yml (found by its `component`), and every interval (scrape, evaluation,
each rule group's), so that what takes minutes in production takes seconds. Everything else,
relabeling and rule expressions included, is the shipped text.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support import skip_unless_ci

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
CONFIG_NAME = "prometheus.yml"
RULES_NAME = "clipmesh-rules.yaml"
UP_TARGETS = Path("targets") / "clipmesh-up.yml"


def prometheus_binary() -> str:
    """The `prometheus` executable (Debian's package, which `make install` brings); a test
    that needs it is skipped without it, and fails under CI."""
    found = shutil.which("prometheus")
    if found is None:
        skip_unless_ci("no prometheus binary: run `make system-deps` (Debian: prometheus)")
    return found


def render_config(directory: Path, metrics_ports: Mapping[str, int], interval_s: int) -> Path:
    """Writes deploy/prometheus into `directory` for a test: clipmesh-up.yml's targets at
    `metrics_ports` (component → port), every interval at `interval_s`. Returns the config file.

    Raises:
        KeyError: clipmesh-up.yml lists a component `metrics_ports` does not name.
    """
    interval = f"{interval_s}s"
    config = yaml.safe_load((PROMETHEUS_DIR / CONFIG_NAME).read_text("utf-8"))
    config["global"].update(
        scrape_interval=interval, scrape_timeout=interval, evaluation_interval=interval
    )
    rules = yaml.safe_load((PROMETHEUS_DIR / RULES_NAME).read_text("utf-8"))
    for group in rules["groups"]:
        group["interval"] = interval
    targets = yaml.safe_load((PROMETHEUS_DIR / UP_TARGETS).read_text("utf-8"))
    for entry in targets:
        port = metrics_ports[entry["labels"]["component"]]
        entry["targets"] = [f"{t.rpartition(':')[0]}:{port}" for t in entry["targets"]]
    (directory / UP_TARGETS).parent.mkdir(parents=True, exist_ok=True)
    for name, document in ((CONFIG_NAME, config), (RULES_NAME, rules), (UP_TARGETS, targets)):
        (directory / name).write_text(yaml.safe_dump(document, sort_keys=False), "utf-8")
    return directory / CONFIG_NAME


@dataclass
class PrometheusServer:
    """A running Prometheus and the parts of its HTTP API the tests read."""

    url: str
    process: subprocess.Popen[bytes]

    def _get(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.url}{path}", params=params, timeout=10)
        body = response.json()
        assert body["status"] == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        """The instant vector `expr` evaluates to now (a list of {metric, value})."""
        data = self._get("/api/v1/query", query=expr)
        return data["result"] if data["resultType"] == "vector" else [data["result"]]

    def label_values(self, label: str, match: str) -> list[str]:
        """The values `label` takes on the series `match` selects."""
        return self._get(f"/api/v1/label/{label}/values", **{"match[]": match})

    def targets(self) -> list[dict]:
        """The active scrape targets, with their labels and health."""
        return self._get("/api/v1/targets", state="active")["activeTargets"]

    def rule_groups(self) -> list[dict]:
        """The loaded rule groups, with each rule's health and last error."""
        return self._get("/api/v1/rules")["groups"]


@contextlib.contextmanager
def running_prometheus(config_file: Path, port: int, data_dir: Path) -> Iterator[PrometheusServer]:
    """Runs Prometheus on 127.0.0.1:`port` until the block exits; its log is
    `data_dir/prometheus.log`.

    Raises:
        AssertionError: It exited or was not ready within 30 s (the log's tail says why).
    """
    log_path = data_dir / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                prometheus_binary(),
                f"--config.file={config_file}",
                f"--storage.tsdb.path={data_dir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = PrometheusServer(f"http://127.0.0.1:{port}", process)
    try:
        eventually(lambda: _ready(server, log_path), timeout_s=30)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _ready(server: PrometheusServer, log_path: Path) -> None:
    assert server.process.poll() is None, f"prometheus exited:\n{log_path.read_text()[-2000:]}"
    try:
        ready = httpx.get(f"{server.url}/-/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        ready = False
    assert ready, "prometheus not ready"


def eventually(check: Callable[[], None], *, timeout_s: float, pause_s: float = 0.5) -> None:
    """Runs `check` until it stops raising AssertionError; after `timeout_s`, lets its last
    failure through (the test's message, not a timeout's)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        time.sleep(pause_s)
