"""Fixtures shared by every test tier, and the tier markers.

Every test is marked with its tier from the folder it lives in (`unit`, `integration`, `e2e`,
`fault`, `hostile`, `deploy`), so `pytest -m unit` or `make test-unit` runs one tier; `slow`
is set by hand on tests that run for minutes.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from clipmesh.runtime.postgres import DatabaseTarget
from clipmesh.runtime.tracing import configure_tracing
from tests.mesh import MeshFactory
from tests.postgres import PostgresServer, external_server, start_local_server

if TYPE_CHECKING:
    from tests.ray_cluster import RayCluster
    from tests.s3 import S3Server

TIERS = ("unit", "integration", "e2e", "fault", "hostile", "deploy")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks each test with the tier its folder names."""
    root = config.rootpath / "tests"
    for item in items:
        try:
            tier = item.path.relative_to(root).parts[0]
        except ValueError:
            continue
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))


def free_port() -> int:
    """A TCP port free on loopback right now (bind to 0, read, release)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_HANDED_PORTS: set[int] = set()


def distinct_free_port() -> int:
    """A free loopback port not handed out before in this test run."""
    while (port := free_port()) in _HANDED_PORTS:
        pass
    _HANDED_PORTS.add(port)
    return port


@pytest.fixture
def free_ports() -> Iterator[callable]:
    """Hands out distinct free loopback ports."""
    yield distinct_free_port


@pytest.fixture(scope="session")
def mesh_factory(tmp_path_factory: pytest.TempPathFactory) -> MeshFactory:
    """Starts clipmesh meshes: `mesh_factory.in_process("encoder", "index", "orchestrator")`
    (an async context manager: services in this process, channels to them) or
    `mesh_factory.processes()` (`clipmesh serve` subprocesses); see `tests/mesh.py`."""
    return MeshFactory(tmp_path_factory, distinct_free_port)


@pytest.fixture(scope="session")
def span_exporter() -> InMemorySpanExporter:
    """Collects every span this test process finishes from the first request on.

    OpenTelemetry installs one tracer provider per process and ignores later ones, so tests
    share this exporter: clear it before the call under test, or pick spans by trace id.
    """
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # none installed yet, only the API's proxy
        provider = configure_tracing("tests")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for this test run (tests/postgres.py): a throwaway local cluster,
    started on first use, or the one CLIPMESH_TEST_POSTGRES_DSN names."""
    server = external_server()
    if server is not None:
        yield server
        return
    # Not under pytest's temp dirs: those are private to root, and the server runs as postgres.
    base = Path(tempfile.mkdtemp(prefix="clipmesh-pg-"))
    server = start_local_server(base, distinct_free_port())
    try:
        yield server
    finally:
        with contextlib.suppress(RuntimeError):
            server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_database(postgres_server: PostgresServer, tmp_path: Path) -> DatabaseTarget:
    """A new empty database (and role) for one test; its password in a file under tmp_path."""
    return postgres_server.create_database(tmp_path)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """An S3 endpoint for this test run (tests/s3.py): moto's server on a free loopback port,
    accepting only requests signed with its one IAM key (`s3_server.environment()`)."""
    from tests.s3 import start_s3_server  # boto3 and moto load only for the tests that use it

    server = start_s3_server(tmp_path_factory.mktemp("s3"), distinct_free_port())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """A local Ray cluster for this test run (tests/ray_cluster.py): a head node with 2 CPUs on
    a free loopback port, started on first use; bulk-ingest drivers join it by its address."""
    from tests.ray_cluster import AUTH_ENVIRONMENT, local_ray_cluster

    with pytest.MonkeyPatch.context() as patch, local_ray_cluster(distinct_free_port()) as cluster:
        for name, value in AUTH_ENVIRONMENT.items():  # this process's drivers, and its children's
            patch.setenv(name, value)
        yield cluster


@pytest.fixture(scope="session")
def xlm_roberta_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Hugging Face text-tower directory (config.json, tokenizer.json) for
    `clipmesh-tiny-xlm-roberta`, made here from a small zh/en corpus (tests/text_towers.py):
    what an operator mounts as CLIPMESH_ENCODER_TOKENIZER, without the hub."""
    from tests.text_towers import write_xlm_roberta_dir

    return write_xlm_roberta_dir(tmp_path_factory.mktemp("tokenizer") / "xlm-roberta-tiny")
