"""The package map of docs/architecture.md, held: who may import whom, one module that builds
channels, and no engine that sees a transport error.

A change that needs a new edge changes the map here and in docs/architecture.md together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "services" / "clipmesh"
SDK = ROOT / "clients" / "clipmesh_client"

# What the front doors (orchestrator, previs) may import from the services they call.
_CALLERS = {"runtime", "media", "encoder.client", "index.client", "index.records", "index.filters"}
# What each package of `clipmesh` may import from the others (its own modules always).
MAY_IMPORT: dict[str, set[str]] = {
    "runtime": set(),
    "media": {"runtime", "encoder.client", "index.client", "index.records"},
    # demo.synthetic (numpy and PIL only) draws the pictures int8's start-up guard compares
    # against fp32 with.
    "encoder": {"runtime", "media.images", "demo.synthetic"},
    "index": {"runtime"},
    "generator": {"runtime", "media.probe"},
    "orchestrator": _CALLERS | {"index.convert", "generator.client"},
    "previs": _CALLERS | {"generator.client", "generator.jobs"},
    # Bulk ingest embeds in its own workers with the encoder's own loading and preprocessing,
    # so its vectors are the encoder service's (or calls the encoder through its client).
    "bulk": _CALLERS | {"encoder.config", "encoder.encoding", "encoder.model"},
}
CHANNEL_FACTORIES = {"insecure_channel", "secure_channel", "intercept_channel"}


def _modules(root: Path) -> list[Path]:
    return sorted(root.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Every `clipmesh…` module `path` imports, at any depth."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.startswith("clipmesh.")}


def _allowed(package: str, imported: str) -> bool:
    """Whether `package` may import `imported` ("clipmesh.index.client.IndexClient"…)."""
    parts = imported.split(".")[1:]
    if parts[0] == package:
        return True
    return any(parts[: len(rule.split("."))] == rule.split(".") for rule in MAY_IMPORT[package])


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_each_package_imports_only_what_the_map_allows(package: str) -> None:
    wrong = {
        f"{path.relative_to(SERVICES)}: {name}"
        for path in _modules(SERVICES / package)
        for name in _imports(path)
        if not _allowed(package, name)
    }
    assert not wrong, sorted(wrong)


def test_only_the_wire_layer_builds_a_channel() -> None:
    builders = set()
    for path in [*_modules(SERVICES), *_modules(SDK)]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in CHANNEL_FACTORIES:
                builders.add(str(path.relative_to(ROOT)))
    assert builders == {"clients/clipmesh_client/wire.py"}


@pytest.mark.parametrize("package", ["orchestrator", "previs", "media", "generator", "bulk"])
def test_no_engine_catches_a_transport_error(package: str) -> None:
    """Downstream failures reach engines as `ServiceError`s, translated once by the typed
    clients (runtime/dependencies.py). (The index's Milvus backend meets pymilvus's own gRPC
    errors: Milvus is an engine outside the mesh, not a clipmesh service.)"""
    catching = set()
    for path in _modules(SERVICES / package):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ExceptHandler) and "RpcError" in ast.unparse(node.type or ""):
                catching.add(str(path.relative_to(SERVICES)))
    assert not catching, sorted(catching)


def test_the_sdk_imports_no_service_code() -> None:
    """The SDK ships apart from the services: it may not lean on them."""
    leaning = {
        f"{path.relative_to(SDK)}: {name}"
        for path in _modules(SDK)
        for name in _imports(path)
        if name.startswith("clipmesh.")
    }
    assert not leaning, sorted(leaning)
