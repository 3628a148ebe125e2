"""`clipmesh up`: the whole mesh on one machine, as five supervised processes.

Each service runs as `python -m clipmesh serve <name>` with its settings passed through
`CLIPMESH_<SERVICE>_*` variables (so anything the user exported still applies), its state
under one data directory and its log in `<data dir>/logs/<name>.log`. The supervisor waits
until every service reports SERVING, and on Ctrl-C, SIGTERM, or a child's unexpected exit it
stops them all: SIGTERM, the grace period, then SIGKILL. Children also receive SIGTERM if the
supervisor itself dies (Linux parent-death signal), so no process is orphaned.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from clipmesh.cli.certs import CLIENT_NAME, DevCredentials
from clipmesh.cli.probe import connect_address, health_status
from clipmesh.cli.services import CONFIG_TYPES, SERVICE_NAMES
from clipmesh.runtime.config import ConfigError, ServiceConfig, load_config
from clipmesh_client.wire import tls_credentials

_PR_SET_PDEATHSIG = 1
EMBEDDED_DEFAULT_WEIGHTS = "random:0"
# Who calls whom: each caller's `<dependency>_target` settings point at the mesh's own.
DEPENDENCIES = {
    "orchestrator": ("encoder", "index", "generator"),
    "previs": ("encoder", "index", "generator"),
}
# The front doors: callers present a token there, not a client certificate.
PUBLIC_SERVICES = ("orchestrator", "previs")


class MeshError(RuntimeError):
    """The local mesh could not start or a service died."""


@dataclass
class ServiceProcess:
    """One supervised service."""

    name: str
    config: ServiceConfig
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return connect_address(self.config.host, self.config.port)

    @property
    def metrics_url(self) -> str:
        return (
            f"http://{connect_address(self.config.metrics_host, self.config.metrics_port)}/metrics"
        )


@dataclass
class LocalMesh:
    """Starts, watches and stops the four services.

    Attributes:
        data_dir: Root of every service's state (`<data_dir>/<service>`) and logs.
        host: Address every service binds; loopback by default (a laptop, not a cluster).
        environ: The environment the services' settings are read from.
        log_to_console: Let services write their JSON logs to this terminal instead of files.
        tls: TLS on every port, mTLS between the services, and a bearer token for the public
            API, all from development credentials in `<data_dir>/certs` (made when missing).
    """

    data_dir: Path
    host: str = "127.0.0.1"
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    log_to_console: bool = False
    tls: bool = False
    services: list[ServiceProcess] = field(default_factory=list)

    def plan(self) -> list[ServiceProcess]:
        """Resolves every service's config (with this mesh's host and data dir) and checks it."""
        self.environ = {**self.environ, **self._mesh_environ()}
        self.services = []
        for name in SERVICE_NAMES:
            config = load_config(CONFIG_TYPES[name], environ=self.environ)
            if config.port == 0 or config.metrics_port == 0:
                raise ConfigError(
                    f"clipmesh up needs fixed ports: {config.env_name('port')} and "
                    f"{config.env_name('metrics_port')} must not be 0"
                )
            self.services.append(
                ServiceProcess(name, config, self.data_dir / "logs" / f"{name}.log")
            )
        ports = [p for s in self.services for p in (s.config.port, s.config.metrics_port)]
        if len(set(ports)) != len(ports):
            raise ConfigError(f"clipmesh up: two services were given the same port ({ports})")
        return self.services

    @property
    def random_weights(self) -> bool:
        """True when the encoder runs on the explicit random weights of the embedded defaults."""
        return self.environ.get(CONFIG_TYPES["encoder"].env_name("weights"), "").startswith(
            "random:"
        )

    def _mesh_environ(self) -> dict[str, str]:
        env = {}
        # The embedded defaults have no real weights to mount: the encoder is told explicitly to
        # use seeded random ones, and `up` says so. Anything the user configured wins.
        weights = CONFIG_TYPES["encoder"].env_name("weights")
        env[weights] = self.environ.get(weights) or EMBEDDED_DEFAULT_WEIGHTS
        for name, config_type in CONFIG_TYPES.items():
            env[config_type.env_name("host")] = self.environ.get(
                config_type.env_name("host"), self.host
            )
            env[config_type.env_name("metrics_host")] = self.environ.get(
                config_type.env_name("metrics_host"), self.host
            )
            env[config_type.env_name("data_dir")] = str(self.data_dir / name)
        for caller, dependencies in DEPENDENCIES.items():
            for dependency in dependencies:
                config = load_config(CONFIG_TYPES[dependency], environ={**self.environ, **env})
                env[CONFIG_TYPES[caller].env_name(f"{dependency}_target")] = connect_address(
                    config.host, config.port
                )
        if self.tls:
            env.update(self._tls_environ())
        return env

    @property
    def dev_credentials(self) -> DevCredentials:
        """Where `--tls` keeps its development CA, certificates and token."""
        return DevCredentials(self.data_dir / "certs")

    def _tls_environ(self) -> dict[str, str]:
        """TLS settings for every service from the development credentials (made if missing).

        The internal services require client certificates; the public ports (the orchestrator's
        and previs's) take callers with the development token instead. Anything the user
        configured wins.
        """
        credentials = self.dev_credentials
        credentials.ensure()
        settings: dict[str, str] = {}
        for name, config_type in CONFIG_TYPES.items():
            files = {
                "tls_cert_file": credentials.cert_file(name),
                "tls_key_file": credentials.key_file(name),
                "tls_ca_file": credentials.ca_file,
            }
            if name in PUBLIC_SERVICES:
                files["auth_tokens_file"] = credentials.tokens_file
            else:
                files["tls_client_auth"] = "true"
            for setting, value in files.items():
                env_name = config_type.env_name(setting)
                settings[env_name] = self.environ.get(env_name) or str(value)
        return settings

    def address(self, name: str) -> str:
        """The address a planned service listens on."""
        return next(s.address for s in self.services if s.name == name)

    def probe_credentials(self) -> grpc.ChannelCredentials | None:
        """What the supervisor's health probes present: the development client certificate."""
        if not self.tls:
            return None
        credentials = self.dev_credentials
        return tls_credentials(
            credentials.ca_file,
            credentials.cert_file(CLIENT_NAME),
            credentials.key_file(CLIENT_NAME),
        )

    def start(self) -> None:
        """Launches every planned service."""
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        for service in self.services:
            output = None if self.log_to_console else service.log_path.open("ab")
            service.process = subprocess.Popen(
                [sys.executable, "-m", "clipmesh", "serve", service.name],
                env=self.environ,
                stdout=output,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only sets the death signal
            )
            if output is not None:
                output.close()

    def wait_until_serving(self, timeout_s: float, should_stop=lambda: False) -> None:
        """Blocks until all services report SERVING.

        Raises:
            MeshError: a service exited, or `timeout_s` passed first.
        """
        deadline = time.monotonic() + timeout_s
        pending = list(self.services)
        credentials = self.probe_credentials()
        while pending:
            self.check_alive()
            pending = [
                s
                for s in pending
                if health_status(s.address, timeout_s=0.5, credentials=credentials) != "SERVING"
            ]
            if not pending or should_stop():
                return
            if time.monotonic() > deadline:
                names = ", ".join(s.name for s in pending)
                raise MeshError(
                    f"not SERVING after {timeout_s:.0f}s: {names} (see {self.data_dir / 'logs'})"
                )
            time.sleep(0.2)

    def check_alive(self) -> None:
        """Raises MeshError naming any service that has exited."""
        for service in self.services:
            if service.process is not None and service.process.poll() is not None:
                raise MeshError(
                    f"{service.name} exited with code {service.process.returncode}; "
                    f"last log lines:\n{_tail(service.log_path)}"
                )

    def stop(self, grace_s: float = 15.0) -> dict[str, int | None]:
        """Stops every service: SIGTERM, up to `grace_s`, then SIGKILL. Returns exit codes."""
        running = [s for s in reversed(self.services) if s.process and s.process.poll() is None]
        for service in running:
            service.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for service in running:
            try:
                service.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                service.process.kill()
                service.process.wait()
        return {s.name: s.process.returncode if s.process else None for s in self.services}


def _die_with_parent() -> None:
    """In the child: receive SIGTERM when the supervisor dies (Linux only)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
