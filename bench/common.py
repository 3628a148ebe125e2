"""What every benchmark shares: starting a service process, latency statistics, the results
table and JSON file, and a description of the machine the figures came from."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from clipmesh.cli.probe import health_status

RESULTS_DIR = Path(__file__).parent / "results"
console = Console(width=120)


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def machine() -> dict[str, object]:
    """The machine the figures were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a live process has used so far, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def latency_summary(latencies_s: list[float]) -> dict[str, float]:
    """p50/p99 in milliseconds."""
    values = np.asarray(latencies_s) * 1000
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 2),
        "p99_ms": round(float(np.percentile(values, 99)), 2),
    }


@dataclass(frozen=True)
class ServiceProcess:
    """A service started by a benchmark."""

    target: str
    pid: int
    metrics_url: str

    def rss_bytes(self) -> int:
        """The process's resident memory now."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0


@contextmanager
def service_process(
    service: str, env: dict[str, str], *, startup_timeout_s: float = 300, via_cli: bool = True
):
    """Runs `clipmesh serve <service>` on free loopback ports; yields a ServiceProcess.

    `via_cli=False` starts the same server through bench/service_main.py, which leaves out the
    CLI and the other services' dependencies (for machines that carry only this service's).
    """
    port, metrics_port = free_port(), free_port()
    prefix = f"CLIPMESH_{service.upper()}_"
    full_env = {
        **os.environ,
        **env,
        f"{prefix}HOST": "127.0.0.1",
        f"{prefix}PORT": str(port),
        f"{prefix}METRICS_HOST": "127.0.0.1",
        f"{prefix}METRICS_PORT": str(metrics_port),
    }
    log = RESULTS_DIR / f"{service}.bench.log.tmp"
    RESULTS_DIR.mkdir(exist_ok=True)
    with log.open("wb") as output:
        entry = ["clipmesh", "serve"] if via_cli else ["bench.service_main"]
        process = subprocess.Popen(
            [sys.executable, "-m", *entry, service],
            cwd=None if via_cli else Path(__file__).resolve().parent.parent,
            env=full_env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    target = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout_s
        while health_status(target, timeout_s=0.5) != "SERVING":
            if process.poll() is not None:
                raise RuntimeError(f"{service} exited: {log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{service} not SERVING after {startup_timeout_s}s")
            time.sleep(0.2)
        yield ServiceProcess(target, process.pid, f"http://127.0.0.1:{metrics_port}/metrics")
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.unlink(missing_ok=True)


def write_results(name: str, results: dict[str, object], *, path: Path | None = None) -> Path:
    """Writes `bench/results/<name>.json` (or `path`) with the machine and the time of the run."""
    results = {
        "benchmark": name,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        **results,
    }
    path = path or RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    console.print(f"wrote {path}")
    return path


def print_table(title: str, columns: list[str], rows: list[list[object]]) -> None:
    """Prints one results table."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    console.print(table)
