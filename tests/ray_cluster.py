"""A real local Ray cluster for the bulk-ingest tests: `ray start --head --block` on a free
loopback port, in its own process group and temp dir, stopped by killing that group (never
`ray stop`, which would stop every Ray cluster on the machine, a benchmark's included).

Bounded for a 2-core CI machine: 2 CPUs, a 256 MiB object store, no dashboard. The cluster
listens on loopback only and runs without Ray's token authentication (`AUTH_ENVIRONMENT`, which
its drivers must share: a head and a driver that disagree refuse each other).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

RAY_CPUS = 2
OBJECT_STORE_BYTES = 256 << 20
START_TIMEOUT_S = 90.0
AUTH_ENVIRONMENT = {"RAY_AUTH_MODE": "disabled"}


@dataclass(frozen=True)
class RayCluster:
    """A running head node; drivers join it with `address`."""

    address: str
    temp_dir: Path
    process: subprocess.Popen

    def worker_pids(self, name_part: str) -> list[int]:
        """Pids of this cluster's worker processes whose title names `name_part` (Ray titles
        an actor's process `ray::MapWorker(MapBatches(PrepareStage))`)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                ours = os.getsid(int(entry.name)) == self.process.pid
                if ours and command.startswith("ray::") and name_part in command:
                    pids.append(int(entry.name))
        return pids


def ray_binary() -> str:
    return str(Path(sys.executable).with_name("ray"))


@contextlib.contextmanager
def local_ray_cluster(port: int) -> Iterator[RayCluster]:
    """Starts a head node on 127.0.0.1:`port` and stops it at exit."""
    # Short: Ray's socket paths live under it and Unix sockets allow ~107 bytes.
    temp_dir = Path(tempfile.mkdtemp(prefix="cmray-", dir="/tmp"))
    command = [
        ray_binary(),
        "start",
        "--head",
        "--block",
        f"--port={port}",
        "--node-ip-address=127.0.0.1",
        f"--num-cpus={RAY_CPUS}",
        f"--object-store-memory={OBJECT_STORE_BYTES}",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--temp-dir={temp_dir}",
    ]
    environ = {**os.environ, **AUTH_ENVIRONMENT, "RAY_USAGE_STATS_ENABLED": "0"}
    log = open(temp_dir / "head.log", "wb")  # noqa: SIM115  (closed below)
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env=environ, start_new_session=True
    )
    cluster = RayCluster(f"127.0.0.1:{port}", temp_dir, process)
    try:
        _wait_until_up(cluster, log.name)
        yield cluster
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        _kill_leftovers(process.pid)
        log.close()


def _wait_until_up(cluster: RayCluster, log_path: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    probe = [
        sys.executable,
        "-c",
        "import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
        "print(ray.cluster_resources()['CPU'])",
        cluster.address,
    ]
    while time.monotonic() < deadline:
        if cluster.process.poll() is not None:
            raise RuntimeError(f"ray start exited: {Path(log_path).read_text()[-2000:]}")
        result = subprocess.run(
            probe,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, **AUTH_ENVIRONMENT},
        )
        if result.returncode == 0:
            return
        time.sleep(1.0)
    raise RuntimeError(f"the Ray head did not come up in {START_TIMEOUT_S} s")


def _kill_leftovers(session: int) -> None:
    """Kills what is left of the cluster's session (workers re-parented when the head went)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.getsid(int(entry.name)) == session:
                    os.kill(int(entry.name), signal.SIGKILL)
