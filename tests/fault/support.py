"""Single `clipmesh serve <name>` processes that a fault test can SIGKILL at a bad moment and
start again on the same ports and data directory, as a supervisor would restart a pod."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from clipmesh.cli.services import CONFIG_TYPES
from tests.mesh import wait_serving


class ServiceProcess:
    """One service run as `python -m clipmesh serve <name>` with a fixed environment.

    Every start reuses the environment (ports, data directory), so a restart is the same
    service coming back; its output from every start is appended to one log file.

    Args:
        name: "encoder", "index", "generator" or "orchestrator".
        env: The whole environment of the process (see `tests.mesh.mesh_environ`).
        log: Where stdout and stderr go.
    """

    def __init__(self, name: str, env: Mapping[str, str], log: Path) -> None:
        self.name = name
        self.env = dict(env)
        self.log = log
        self.process: subprocess.Popen | None = None
        port = self.env[CONFIG_TYPES[name].env_name("port")]
        self.target = f"127.0.0.1:{port}"

    def start(self) -> subprocess.Popen:
        """Starts the process without waiting for it to serve."""
        assert not self.running, f"{self.name} is already running"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "clipmesh", "serve", self.name],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self.process

    def wait_serving(self, timeout_s: float = 60) -> None:
        """Waits for health SERVING; on failure the assertion shows the log's end."""
        assert self.process is not None, f"{self.name} was never started"
        try:
            wait_serving(self.target, self.process, timeout_s)
        except AssertionError as error:
            raise AssertionError(f"{error}\n--- {self.log} ---\n{self.log_tail()}") from None

    def kill(self) -> None:
        """SIGKILL: no drain, no shutdown hooks, no flush (a crash or an OOM kill)."""
        if self.running:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def terminate(self, timeout_s: float = 60) -> int:
        """SIGTERM, as Kubernetes stops a pod: the service drains and exits; its exit code."""
        assert self.process is not None, f"{self.name} was never started"
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout_s)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""
