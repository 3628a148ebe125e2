"""Fixtures shared by every test tier."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from clipmesh.runtime.tracing import configure_tracing


def free_port() -> int:
    """A TCP port free on loopback right now (bind to 0, read, release)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def free_ports() -> Iterator[callable]:
    """Hands out distinct free loopback ports."""
    handed: set[int] = set()

    def take() -> int:
        while (port := free_port()) in handed:
            pass
        handed.add(port)
        return port

    yield take


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
