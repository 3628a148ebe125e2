"""Fixtures of the fault tests: services as real processes on loopback, started by name."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fault.support import ServiceProcess
from tests.mesh import mesh_environ

SEARCH_BUDGET_MS = 500  # the orchestrator's default, pinned so the deadline checks stay true


@pytest.fixture
def clips_dir(tmp_path: Path) -> Path:
    """Where a test writes videos; the orchestrator may ingest from here."""
    directory = tmp_path / "clips"
    directory.mkdir()
    return directory


@pytest.fixture
def fault_env(tmp_path: Path, free_ports, clips_dir: Path) -> dict[str, str]:
    """The mesh's environment (`tests.mesh.mesh_environ`) with ingest allowed from
    `clips_dir` and the search budget pinned."""
    return {
        **mesh_environ(tmp_path, free_ports),
        "CLIPMESH_ORCHESTRATOR_ALLOWED_ROOTS": str(clips_dir),
        "CLIPMESH_ORCHESTRATOR_SEARCH_BUDGET_MS": str(SEARCH_BUDGET_MS),
    }


@pytest.fixture
def start_services(
    tmp_path: Path, fault_env: dict[str, str]
) -> Iterator[Callable[..., tuple[ServiceProcess, ...]]]:
    """Starts services by name, all at once, and waits until every one serves.

    `start_services("encoder", "index", env={...})` returns their `ServiceProcess`es in the
    order named; `env` entries override `fault_env`. Whatever still runs at teardown is killed.
    """
    launched: list[ServiceProcess] = []

    def start(*names: str, env: dict[str, str] | None = None) -> tuple[ServiceProcess, ...]:
        services = tuple(
            ServiceProcess(name, {**fault_env, **(env or {})}, tmp_path / f"{name}.log")
            for name in names
        )
        launched.extend(services)
        for service in services:
            service.start()
        for service in services:
            service.wait_serving()
        return services

    yield start
    for service in launched:
        service.kill()
