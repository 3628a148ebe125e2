"""The test suite's DashScope protocol server (tests/fakes/dashscope_server.py) in a process of
its own, so a benchmark's clients and the server's threads do not share one interpreter.

    with dashscope_process(api_key="sk-bench", max_concurrent_tasks=20, ...) as provider:
        provider.base_url            # while it serves
    provider.records                 # what it saw, once it has stopped

The child (`python -m bench.dashscope_process SETTINGS_JSON RECORDS_PATH`) prints its API root
on one line, serves until its stdin closes, then writes what the limits tests read — the most
submissions in any one-second window, the most tasks at once, tasks created, violations — to
RECORDS_PATH as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

STARTUP_TIMEOUT_S = 60


@dataclass
class ProviderProcess:
    """A running protocol server: where it answers, and (after it stops) what it recorded."""

    base_url: str
    api_key: str
    pid: int
    records: dict[str, object] = field(default_factory=dict)


@contextmanager
def dashscope_process(**settings: object) -> Iterator[ProviderProcess]:
    """Runs `FakeDashScope(**settings)` in a child process; `records` is filled on exit.

    Tuple settings (ranges of seconds) pass as JSON lists and are turned back into tuples.
    """
    with TemporaryDirectory(prefix="clipmesh-bench-dashscope-") as scratch:
        records_path = Path(scratch) / "records.json"
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.dashscope_process", json.dumps(settings), records_path],
            cwd=Path(__file__).resolve().parent.parent,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            base_url = process.stdout.readline().strip()
            if not base_url.startswith("http://"):
                raise RuntimeError(f"the DashScope protocol server did not start: {base_url!r}")
            provider = ProviderProcess(base_url, str(settings.get("api_key", "")), process.pid)
            yield provider
        finally:
            process.stdin.close()  # the child's signal to stop and write its records
            process.wait(timeout=STARTUP_TIMEOUT_S)
        if process.returncode != 0:
            raise RuntimeError(f"the DashScope protocol server exited {process.returncode}")
        provider.records = json.loads(records_path.read_text())


def _serve(settings: dict[str, object], records_path: Path) -> None:
    from tests.fakes.dashscope_server import FakeDashScope

    arguments = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
    with FakeDashScope(**arguments) as fake:
        print(fake.base_url, flush=True)
        sys.stdin.read()  # until the parent closes our stdin
        records = {
            "max_submissions_per_s": fake.max_submits_in_any_1s_window,
            "max_concurrent_tasks": fake.max_concurrent_observed,
            "provider_tasks_created": fake.tasks_created,
            "violations": [asdict(violation) for violation in fake.violations],
        }
    records_path.write_text(json.dumps(records))


if __name__ == "__main__":
    _serve(json.loads(sys.argv[1]), Path(sys.argv[2]))
