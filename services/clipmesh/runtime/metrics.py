"""Prometheus metrics: the one registry, the gRPC server metrics, the metrics HTTP server, and
the one way series are created at 0 when a service starts.

gRPC metric names follow the go-grpc-prometheus conventions Grafana dashboards expect
(`grpc_server_handled_total{grpc_service,grpc_method,grpc_code,grpc_type}` and friends).
Process metrics come from prometheus_client's default collectors. Service-specific metrics
are declared in each service's own `metrics.py` against `REGISTRY`.

A labelled metric has no series until a label value is first used, and a series born at 1 shows
no increase: a dashboard says "No data" and a failure ratio misses the first failure. So every
series whose label values are known in advance (status codes, job states, reasons, backends)
is created at 0 as its service starts, through `create_zero_series`; values that are not
(callers, collections) appear when first used, and the dashboards' queries draw 0 for them.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

import grpc
from google.protobuf.descriptor import MethodDescriptor
from prometheus_client import REGISTRY, Counter, Histogram, Info, start_http_server
from prometheus_client.metrics import MetricWrapperBase

import clipmesh
from clipmesh.runtime.handlers import (
    Behavior,
    call_unary,
    declared_rpc_type,
    iterate_stream,
    rewrap,
    rpc_type,
    split_method,
)

__all__ = [
    "LATENCY_BUCKETS_S",
    "REGISTRY",
    "MetricsServer",
    "PerMethodSeries",
    "ServerMetricsInterceptor",
    "code_of",
    "create_zero_series",
]

# Fine around the 500 ms search budget, coarse beyond it (generation streams run for minutes).
LATENCY_BUCKETS_S = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.15,
    0.2,
    0.25,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
)

SERVICE_INFO = Info("clipmesh_service", "The clipmesh service this process runs.")
_LABELS = ("grpc_type", "grpc_service", "grpc_method")
STARTED = Counter("grpc_server_started_total", "RPCs started on the server.", _LABELS)
HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, by status code.",
    (*_LABELS, "grpc_code"),
)
HANDLING_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Time from an RPC's start to its completion on the server.",
    _LABELS,
    buckets=LATENCY_BUCKETS_S,
)
MSG_SENT = Counter("grpc_server_msg_sent_total", "Stream messages sent by the server.", _LABELS)


def create_zero_series(metric: MetricWrapperBase, **label_values: Iterable[str]) -> None:
    """Creates the series of `metric` for every combination of `label_values` (each label's
    values known in advance), at 0; a labelless metric's one series exists already.

    Raises:
        ValueError: The labels named are not exactly the metric's.
    """
    names = list(label_values)
    for combination in itertools.product(*(tuple(label_values[name]) for name in names)):
        metric.labels(**dict(zip(names, combination, strict=True)))


@runtime_checkable
class PerMethodSeries(Protocol):
    """A server interceptor that counts per RPC method: the server hands it the methods it
    serves once, at start, so that their series exist (at 0) before the first call."""

    def create_series(self, methods: Sequence[MethodDescriptor]) -> None: ...


class ServerMetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts and times every RPC by service, method, type and final status code.

    Place it outside the error interceptor so it sees the codes that reach clients.
    """

    def create_series(self, methods: Sequence[MethodDescriptor]) -> None:
        """Every method's series at 0, one for each status code: its error ratio is 0 rather than
        absent until a first failure, which rate() then sees as a step up."""
        for method in methods:
            labels = {
                "grpc_type": [declared_rpc_type(method)],
                "grpc_service": [method.containing_service.full_name],
                "grpc_method": [method.name],
            }
            create_zero_series(STARTED, **labels)
            create_zero_series(HANDLING_SECONDS, **labels)
            create_zero_series(HANDLED, **labels, grpc_code=[code.name for code in grpc.StatusCode])
            if method.server_streaming:
                create_zero_series(MSG_SENT, **labels)

    async def intercept_service(self, continuation, handler_call_details):  # type: ignore[override]
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        service, method = split_method(handler_call_details.method)
        labels = (rpc_type(handler), service, method)

        def finish(started_at: float, code: grpc.StatusCode) -> None:
            HANDLED.labels(*labels, code.name).inc()
            HANDLING_SECONDS.labels(*labels).observe(time.perf_counter() - started_at)

        def wrap_unary(behavior: Behavior):
            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                STARTED.labels(*labels).inc()
                started_at = time.perf_counter()
                try:
                    response = await call_unary(behavior, request, context)
                except BaseException as exc:
                    finish(started_at, code_of(exc, context))
                    raise
                finish(started_at, context.code() or grpc.StatusCode.OK)
                return response

            return unary

        def wrap_stream(behavior: Behavior):
            async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                STARTED.labels(*labels).inc()
                started_at = time.perf_counter()
                sent = MSG_SENT.labels(*labels)
                try:
                    async for response in iterate_stream(behavior, request, context):
                        sent.inc()
                        yield response
                except BaseException as exc:
                    finish(started_at, code_of(exc, context))
                    raise
                finish(started_at, context.code() or grpc.StatusCode.OK)

            return stream

        return rewrap(handler, wrap_unary, wrap_stream)


def code_of(exc: BaseException, context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    """The status code an RPC ends with when `exc` escapes its (already error-mapped) handler."""
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        return grpc.StatusCode.CANCELLED
    if isinstance(exc, grpc.aio.AbortError):
        return context.code() or grpc.StatusCode.UNKNOWN
    return grpc.StatusCode.UNKNOWN


class MetricsServer:
    """Serves `/metrics` for the process's registry on its own HTTP port (in a thread)."""

    def __init__(self, host: str, port: int, service: str) -> None:
        SERVICE_INFO.info({"service": service, "version": clipmesh.__version__})
        self._server, self._thread = start_http_server(port, addr=host, registry=REGISTRY)
        self.port: int = self._server.server_port

    def close(self) -> None:
        """Stops serving and joins the server thread."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
