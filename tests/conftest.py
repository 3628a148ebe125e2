"""Fixtures shared by every test tier."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest


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
