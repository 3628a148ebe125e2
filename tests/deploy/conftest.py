"""Fixtures of the deploy tests: the kustomize base and overlays of deploy/k8s, rendered.

`objects` is base and every overlay in turn, for the test_kustomize_* modules. Each of base,
dev and prod is rendered once by `_build`, however many modules ask (kubectl is required: a
missing kubectl fails).
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from tests.deploy.manifests import BASE, DEV, OVERLAYS, PROD, Manifest, render


@functools.cache
def _build(path: Path) -> list[Manifest]:
    return render(path)


@pytest.fixture(scope="module", params=[BASE, *OVERLAYS], ids=lambda path: path.name)
def objects(request: pytest.FixtureRequest) -> list[Manifest]:
    """Base and every overlay, rendered."""
    return _build(request.param)


@pytest.fixture(scope="module")
def prod() -> list[Manifest]:
    """The prod overlay, rendered."""
    return _build(PROD)


@pytest.fixture(scope="module")
def dev() -> list[Manifest]:
    """The dev overlay, rendered."""
    return _build(DEV)
