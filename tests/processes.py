"""The four services as real processes (`python -m clipmesh serve <name>`) on free loopback
ports, for tests that need what only separate processes show: per-process /metrics, signals,
the CLI's start-up path."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from clipmesh.cli.probe import health_status
from clipmesh.cli.services import CONFIG_TYPES, SERVICE_NAMES


def mesh_environ(tmp_path: Path, free_ports: Callable[[], int]) -> dict[str, str]:
    """Environment for the four services: loopback free ports, state under `tmp_path`, the
    tiny encoder with explicit random weights, the orchestrator pointed at the other three."""
    env = dict(os.environ)
    for name, config_type in CONFIG_TYPES.items():
        env[config_type.env_name("port")] = str(free_ports())
        env[config_type.env_name("metrics_port")] = str(free_ports())
        env[config_type.env_name("host")] = "127.0.0.1"
        env[config_type.env_name("metrics_host")] = "127.0.0.1"
        env[config_type.env_name("data_dir")] = str(tmp_path / name)
        env[config_type.env_name("grace_s")] = "5"
    env["CLIPMESH_ENCODER_MODEL"] = "clipmesh-tiny"  # the real loading path, a small model
    env["CLIPMESH_ENCODER_WEIGHTS"] = "random:0"
    for dependency in ("encoder", "index", "generator"):
        port = env[CONFIG_TYPES[dependency].env_name("port")]
        env[f"CLIPMESH_ORCHESTRATOR_{dependency.upper()}_TARGET"] = f"127.0.0.1:{port}"
    return env


def wait_serving(target: str, process: subprocess.Popen, timeout_s: float = 60) -> None:
    """Waits until `target` reports SERVING; fails early if `process` exits."""
    deadline = time.monotonic() + timeout_s
    while health_status(target, timeout_s=0.5) != "SERVING":
        assert process.poll() is None, f"service exited early with {process.returncode}"
        assert time.monotonic() < deadline, f"{target} not SERVING within {timeout_s}s"
        time.sleep(0.2)


@contextlib.contextmanager
def running_mesh(
    tmp_path: Path, free_ports: Callable[[], int], extra_env: Mapping[str, str] | None = None
) -> Iterator[dict[str, dict]]:
    """Starts all four services and yields, per name: process, target, metrics URL, log path.

    Whatever is still running at exit is killed (tests that check draining stop it first).
    """
    env = {**mesh_environ(tmp_path, free_ports), **(extra_env or {})}
    running = {}
    try:
        for name in SERVICE_NAMES:
            log = (tmp_path / f"{name}.log").open("wb")
            process = subprocess.Popen(
                [sys.executable, "-m", "clipmesh", "serve", name],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            config_type = CONFIG_TYPES[name]
            running[name] = {
                "process": process,
                "target": f"127.0.0.1:{env[config_type.env_name('port')]}",
                "metrics": f"http://127.0.0.1:{env[config_type.env_name('metrics_port')]}/metrics",
                "log": tmp_path / f"{name}.log",
            }
        for service in running.values():
            wait_serving(service["target"], service["process"])
        yield running
    finally:
        for service in running.values():
            if service["process"].poll() is None:
                service["process"].kill()
                service["process"].wait()
