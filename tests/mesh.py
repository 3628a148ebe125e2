"""The one way tests start a clipmesh mesh: real services on free loopback ports, wired to each
other, in this process (`in_process_mesh`) or as `clipmesh serve` subprocesses
(`process_mesh`). The `mesh_factory` fixture of `tests/conftest.py` hands both out.

Both read the same settings: state under one temporary directory, the tiny encoder with
explicit random weights (`TINY_ENCODER_ENV`, the real loading path on a small model), and each
caller's `<dependency>_target` pointed at the services started with it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from clipmesh.cli.mesh import DEPENDENCIES
from clipmesh.cli.probe import health_status
from clipmesh.cli.services import CONFIG_TYPES, SERVICE_NAMES, create_app
from clipmesh.runtime.config import load_config
from clipmesh.runtime.server import Application
from clipmesh_client.wire import ChannelPolicy, open_aio_channel
from tests.support import RunningService, serve_in_process

TINY_ENCODER_ENV = {
    "CLIPMESH_ENCODER_MODEL": "clipmesh-tiny",
    "CLIPMESH_ENCODER_WEIGHTS": "random:0",
    "CLIPMESH_ENCODER_PRECISION": "fp32",
}
"""The encoder every test mesh runs: a two-layer CLIP with seeded random weights, in fp32."""


def service_environ(
    name: str, state_dir: Path, targets: Mapping[str, str], extra: Mapping[str, str]
) -> dict[str, str]:
    """The settings of service `name` in a test mesh: its state under `state_dir`, its
    dependencies at `targets`, the tiny encoder, then `extra` (which wins)."""
    config_type = CONFIG_TYPES[name]
    environ = {config_type.env_name("data_dir"): str(state_dir / name)}
    if name == "encoder":
        environ.update(TINY_ENCODER_ENV)
    for dependency in DEPENDENCIES.get(name, ()):
        if dependency in targets:
            environ[config_type.env_name(f"{dependency}_target")] = targets[dependency]
    return {**environ, **extra}


@dataclass
class InProcessMesh:
    """Services serving in this process, and channels to them that close with the mesh."""

    services: dict[str, RunningService]
    state_dir: Path
    configs: dict[str, Any] = field(default_factory=dict)
    _channels: dict[tuple[str, ChannelPolicy], grpc.aio.Channel] = field(default_factory=dict)

    def target(self, name: str) -> str:
        return self.services[name].target

    def channel(self, name: str, policy: ChannelPolicy | None = None) -> grpc.aio.Channel:
        """A channel to `name` (one per policy): no retries and a minute per call by default,
        so a test sees every failure as it happened."""
        policy = policy or ChannelPolicy(timeout_s=60, max_attempts=1)
        key = (name, policy)
        if key not in self._channels:
            self._channels[key] = open_aio_channel(self.target(name), policy)
        return self._channels[key]

    def stub(self, name: str, stub_type: type, policy: ChannelPolicy | None = None) -> Any:
        return stub_type(self.channel(name, policy))

    async def close_channels(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()


@contextlib.asynccontextmanager
async def in_process_mesh(
    state_dir: Path,
    services: Sequence[str],
    *,
    env: Mapping[str, Mapping[str, str]] | None = None,
    builders: Mapping[str, Callable[[Any], Application]] | None = None,
) -> AsyncIterator[InProcessMesh]:
    """Starts `services` in this process, dependencies first, and stops them at exit.

    Args:
        state_dir: Every service's state goes under `state_dir/<service>`.
        services: Which to run, e.g. ("encoder", "index", "orchestrator").
        env: Further settings per service, as `CLIPMESH_*` variables.
        builders: How to build a service's application from its config, where the test builds
            its own (a generator with extra backends, say); `create_app` otherwise.
    """
    env, builders = env or {}, builders or {}
    ordered = [name for name in SERVICE_NAMES if name in services]
    running = InProcessMesh({}, state_dir)
    async with contextlib.AsyncExitStack() as stack:
        for name in ordered:
            targets = {n: s.target for n, s in running.services.items()}
            environ = service_environ(name, state_dir, targets, env.get(name, {}))
            config = load_config(CONFIG_TYPES[name], environ=environ)
            app = builders.get(name, create_app)(config)
            running.configs[name] = config
            running.services[name] = await stack.enter_async_context(serve_in_process(config, app))
        try:
            yield running
        finally:
            await running.close_channels()


def mesh_environ(
    state_dir: Path, free_port: Callable[[], int], extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a subprocess mesh: every service on free loopback ports (gRPC and
    metrics), its state under `state_dir`, wired to the others; `extra` wins."""
    ports = {name: (free_port(), free_port()) for name in SERVICE_NAMES}
    targets = {name: f"127.0.0.1:{grpc_port}" for name, (grpc_port, _) in ports.items()}
    environ = dict(os.environ)
    for name, (grpc_port, metrics_port) in ports.items():
        config_type = CONFIG_TYPES[name]
        environ.update(service_environ(name, state_dir, targets, {}))
        environ[config_type.env_name("port")] = str(grpc_port)
        environ[config_type.env_name("metrics_port")] = str(metrics_port)
        environ[config_type.env_name("host")] = "127.0.0.1"
        environ[config_type.env_name("metrics_host")] = "127.0.0.1"
        environ[config_type.env_name("grace_s")] = "5"
    return {**environ, **(extra or {})}


def wait_serving(target: str, process: subprocess.Popen, timeout_s: float = 60) -> None:
    """Waits until `target` reports SERVING; fails early if `process` exits."""
    deadline = time.monotonic() + timeout_s
    while health_status(target, timeout_s=0.5) != "SERVING":
        assert process.poll() is None, f"service exited early with {process.returncode}"
        assert time.monotonic() < deadline, f"{target} not SERVING within {timeout_s}s"
        time.sleep(0.2)


@contextlib.contextmanager
def process_mesh(
    state_dir: Path,
    free_port: Callable[[], int],
    services: Sequence[str] = SERVICE_NAMES,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[dict[str, dict]]:
    """Starts `services` as `python -m clipmesh serve <name>` and yields, per name: process,
    target, metrics URL, log path. Whatever still runs at exit is killed (tests that check
    draining stop it first)."""
    environ = mesh_environ(state_dir, free_port, extra_env)
    running: dict[str, dict] = {}
    try:
        for name in (n for n in SERVICE_NAMES if n in services):
            config_type = CONFIG_TYPES[name]
            log = (state_dir / f"{name}.log").open("wb")
            process = subprocess.Popen(
                [sys.executable, "-m", "clipmesh", "serve", name],
                env=environ,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            running[name] = {
                "process": process,
                "target": f"127.0.0.1:{environ[config_type.env_name('port')]}",
                "metrics": f"http://127.0.0.1:{environ[config_type.env_name('metrics_port')]}"
                "/metrics",
                "log": state_dir / f"{name}.log",
            }
        for service in running.values():
            wait_serving(service["target"], service["process"])
        yield running
    finally:
        for service in running.values():
            if service["process"].poll() is None:
                service["process"].kill()
                service["process"].wait()


@dataclass
class MeshFactory:
    """Starts meshes for a test module; see `in_process_mesh` and `process_mesh`."""

    tmp_path_factory: Any
    free_port: Callable[[], int]

    def in_process(
        self,
        *services: str,
        env: Mapping[str, Mapping[str, str]] | None = None,
        builders: Mapping[str, Callable[[Any], Application]] | None = None,
    ) -> contextlib.AbstractAsyncContextManager[InProcessMesh]:
        """`async with mesh_factory.in_process("encoder", "index", "orchestrator") as mesh:`"""
        state_dir = self.tmp_path_factory.mktemp("mesh")
        return in_process_mesh(state_dir, services, env=env, builders=builders)

    def processes(
        self, *services: str, env: Mapping[str, str] | None = None
    ) -> contextlib.AbstractContextManager[dict[str, dict]]:
        """`with mesh_factory.processes() as services:` (all five unless named)."""
        state_dir = self.tmp_path_factory.mktemp("mesh")
        return process_mesh(state_dir, self.free_port, services or SERVICE_NAMES, env)
