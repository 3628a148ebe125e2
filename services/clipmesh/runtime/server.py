"""Server bootstrap shared by the services.

`create_server()` builds a `grpc.aio` server with the standard health service, reflection
(v1 and v1alpha),
interceptors (tracing → metrics → auth when configured → errors → the application's own, such
as authorization → admission), explicit message-size and keepalive limits, and binds it:
plaintext by default, TLS or mTLS from the `tls_*` settings (runtime/security.py);
`health_port` adds a plaintext, health-only port for Kubernetes probes, which cannot speak TLS.
`serve()` runs an `Application` on it: health reports NOT_SERVING until the application's
`start()` has finished (models loaded, stores opened), then SERVING; on SIGTERM or SIGINT it
reports NOT_SERVING, waits `drain_delay_s`, lets in-flight RPCs finish within
`grace_s`, and closes the application.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from clipmesh.runtime.admission import AdmissionControl
from clipmesh.runtime.auth import auth_interceptors
from clipmesh.runtime.config import ConfigError, ServiceConfig, describe
from clipmesh.runtime.errors import ErrorInterceptor
from clipmesh.runtime.metrics import MetricsServer, PerMethodSeries, ServerMetricsInterceptor
from clipmesh.runtime.reflection import enable_reflection
from clipmesh.runtime.security import add_port, log_transport_security
from clipmesh.runtime.tracing import server_interceptor

log = logging.getLogger(__name__)

_MIB = 1024 * 1024


@dataclass(frozen=True)
class GrpcService:
    """One gRPC service an application exposes.

    Attributes:
        name: Full proto name, e.g. "clipmesh.encoder.v1.EncoderService".
        servicer: The object implementing its RPCs.
        register: The generated `add_<Service>Servicer_to_server` function.
    """

    name: str
    servicer: object
    register: Callable[[object, grpc.aio.Server], None]

    @classmethod
    def generated(cls, messages: ModuleType, stubs: ModuleType, servicer: object) -> GrpcService:
        """Describes `servicer` from its generated modules.

        Args:
            messages: The `*_pb2` module declaring the service.
            stubs: The matching `*_pb2_grpc` module.
            servicer: An instance of a subclass of one of the module's `*Servicer` classes.
        """
        for name, descriptor in messages.DESCRIPTOR.services_by_name.items():
            if isinstance(servicer, getattr(stubs, f"{name}Servicer")):
                register = getattr(stubs, f"add_{name}Servicer_to_server")
                return cls(descriptor.full_name, servicer, register)
        raise TypeError(f"{type(servicer).__name__} implements no service of {messages.__name__}")


class Application:
    """A clipmesh service as the runtime sees it: gRPC services plus a lifecycle.

    Subclasses list their services in `grpc_services()` and acquire resources in `start()`
    (health turns SERVING only after it returns) and release them in `stop()`.
    """

    def grpc_services(self) -> list[GrpcService]:
        """The gRPC services to register."""
        raise NotImplementedError

    def interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        """The application's own server interceptors (authorization), placed inside the error
        interceptor so their refusals become statuses, and outside admission control."""
        return []

    async def start(self) -> None:
        """Makes the application ready to serve (load models, open stores)."""

    def watch_readiness(self, set_ready: Callable[[bool], None]) -> None:
        """Called once the application serves: an application whose readiness can change
        while it runs (its database away) calls `set_ready(False)` and later `(True)`; health
        then reports NOT_SERVING meanwhile (load balancers route elsewhere), while the
        `LIVENESS_SERVICE` stays SERVING (the process is fine; restarting it would not help)."""

    async def stop(self) -> None:
        """Releases what `start()` acquired; called after in-flight RPCs finished."""


def server_options(config: ServiceConfig) -> list[tuple[str, int]]:
    """Core server arguments: message sizes, keepalive, connection age, no port sharing."""
    options = [
        ("grpc.max_send_message_length", config.max_message_mb * _MIB),
        ("grpc.max_receive_message_length", config.max_message_mb * _MIB),
        ("grpc.keepalive_time_ms", int(config.keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(config.keepalive_timeout_s * 1000)),
        # Clients ping at most every keepalive_time_s; accept that without GOAWAY.
        ("grpc.http2.min_recv_ping_interval_without_data_ms", int(config.keepalive_time_s * 500)),
        ("grpc.keepalive_permit_without_calls", 1),
        # Two servers must never share a port silently (gRPC enables SO_REUSEPORT by default).
        ("grpc.so_reuseport", 0),
    ]
    if config.max_connection_age_s > 0:
        options += [
            ("grpc.max_connection_age_ms", int(config.max_connection_age_s * 1000)),
            ("grpc.max_connection_age_grace_ms", int(config.grace_s * 1000)),
        ]
    return options


class StartupError(RuntimeError):
    """A service cannot start (a model that will not load, a store that will not open).

    The CLI prints its message as one clear line and exits non-zero; no traceback is needed.
    """


class BindError(StartupError):
    """The server could not bind its address (port in use, bad host)."""


def create_server(
    config: ServiceConfig, app: Application
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """Builds and binds the gRPC server for `app`; returns (server, bound port, health)."""
    domain = f"{config.SERVICE}.clipmesh"
    try:
        auth = auth_interceptors(config, domain)
    except ConfigError as exc:
        raise StartupError(str(exc)) from exc
    interceptors = [
        server_interceptor(config.SERVICE),
        ServerMetricsInterceptor(),
        *auth,
        ErrorInterceptor(domain),
        *app.interceptors(),
        # Innermost: sees the caller auth established; its refusals are mapped above.
        AdmissionControl(config.max_concurrent_rpcs, config.max_concurrent_rpcs_per_caller),
    ]
    server = grpc.aio.server(interceptors=interceptors, options=server_options(config))
    names = []
    for service in app.grpc_services():
        service.register(service.servicer, server)
        names.append(service.name)
    # Interceptors that count per method create those series now, at 0 (runtime/metrics.py).
    pool = descriptor_pool.Default()
    methods = [m for name in names for m in pool.FindServiceByName(name).methods]
    for interceptor in interceptors:
        if isinstance(interceptor, PerMethodSeries):
            interceptor.create_series(methods)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    enable_reflection([*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name], server)
    address = f"{config.host}:{config.port}"
    try:
        port = add_port(server, address, config)
    except ConfigError as exc:
        raise StartupError(str(exc)) from exc
    except RuntimeError as exc:
        raise BindError(f"cannot bind gRPC server to {address}: {exc}") from exc
    if port == 0:
        raise BindError(f"cannot bind gRPC server to {address} (address in use?)")
    return server, port, health_servicer


# Probes are unary Checks a few seconds apart; the bound keeps Watch streams from piling up on a
# port that needs no credentials.
HEALTH_PORT_MAX_RPCS = 32


def create_health_server(
    config: ServiceConfig, health_servicer: health.aio.HealthServicer
) -> grpc.aio.Server | None:
    """A plaintext server with nothing but `health_servicer`, on `health_port` (0 = none).

    Kubernetes gRPC probes cannot speak TLS nor send a token, so with TLS on the main port they
    probe this one. It shares the main server's servicer, so both always report the same
    status, and it exposes nothing else: no reflection, no application service.
    """
    if not config.health_port:
        return None
    server = grpc.aio.server(
        options=[("grpc.so_reuseport", 0)], maximum_concurrent_rpcs=HEALTH_PORT_MAX_RPCS
    )
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    address = f"{config.host}:{config.health_port}"
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise BindError(f"cannot bind the health port to {address}: {exc}") from exc
    if port == 0:
        raise BindError(f"cannot bind the health port to {address} (address in use?)")
    return server


LIVENESS_SERVICE = "liveness"
"""A health service name that reports SERVING as long as the process serves at all: for
liveness probes, which must not restart a pod because a dependency is away."""


async def set_health(
    health_servicer: health.aio.HealthServicer, app: Application, status: int
) -> None:
    """Sets the overall status ("") and each of the application's services to `status`."""
    for name in ["", *(s.name for s in app.grpc_services())]:
        await health_servicer.set(name, status)


async def serve(
    config: ServiceConfig,
    app: Application,
    *,
    stop: asyncio.Event | None = None,
    on_bound: Callable[[int, int], None] | None = None,
    on_ready: Callable[[int, int], None] | None = None,
) -> None:
    """Runs `app` until `stop` is set or SIGTERM/SIGINT arrives, then drains.

    Args:
        config: The service's validated config.
        app: The application to serve.
        stop: Set it to begin a graceful shutdown (tests); signals also set it.
        on_bound: Called with (grpc port, metrics port) once listening (still NOT_SERVING).
        on_ready: Called with (grpc port, metrics port) once health reports SERVING.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        # Off the main thread (in-process tests) signals can't be handled: `stop` is the trigger.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, _request_stop, stop, signum)
    # The server first: a bad TLS file or a taken port then leaves no metrics thread behind.
    server, port, health_servicer = create_server(config, app)
    health_server = create_health_server(config, health_servicer)
    metrics = MetricsServer(config.metrics_host, config.metrics_port, config.SERVICE)
    await set_health(health_servicer, app, health_pb2.HealthCheckResponse.NOT_SERVING)
    await server.start()
    if health_server is not None:
        await health_server.start()
    log.info(
        "starting",
        extra={
            "port": port,
            "health_port": config.health_port or None,
            "metrics_port": metrics.port,
            "config": describe(config),
        },
    )
    log_transport_security(config)
    try:
        if on_bound is not None:
            on_bound(port, metrics.port)
        await health_servicer.set(LIVENESS_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        await app.start()
        await set_health(health_servicer, app, health_pb2.HealthCheckResponse.SERVING)
        app.watch_readiness(_readiness_setter(health_servicer, app))
        log.info("serving", extra={"port": port, "metrics_port": metrics.port})
        if on_ready is not None:
            on_ready(port, metrics.port)
        await stop.wait()
        log.info(
            "draining", extra={"grace_s": config.grace_s, "drain_delay_s": config.drain_delay_s}
        )
        await health_servicer.enter_graceful_shutdown()
        await asyncio.sleep(config.drain_delay_s)
        await server.stop(config.grace_s)
    finally:
        await server.stop(0)
        if health_server is not None:
            await health_server.stop(0)
        await app.stop()
        metrics.close()
        log.info("stopped")


def _readiness_setter(
    health_servicer: health.aio.HealthServicer, app: Application
) -> Callable[[bool], None]:
    loop = asyncio.get_running_loop()
    status = health_pb2.HealthCheckResponse
    pending: set[asyncio.Task] = set()

    def set_ready(ready: bool) -> None:
        log.warning("readiness: %s", "serving again" if ready else "not serving")
        task = loop.create_task(
            set_health(health_servicer, app, status.SERVING if ready else status.NOT_SERVING)
        )
        pending.add(task)
        task.add_done_callback(pending.discard)

    return set_ready


def _request_stop(stop: asyncio.Event, signum: int) -> None:
    log.info("received %s", signal.Signals(signum).name)
    stop.set()
