"""Tracing: OpenTelemetry with gRPC server and client instrumentation.

Spans are always created and propagated (so trace ids reach logs and downstream services);
they are exported over OTLP/gRPC only when an endpoint is configured.

Every server span also carries the serving service's short name (`clipmesh.service`). The
resource's `service.name` says the same in production, where each process runs one service;
the attribute keeps it visible where one process serves several (in-process tests, demos).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import clipmesh
from clipmesh.runtime.handlers import Behavior, call_unary, iterate_stream, rewrap

log = logging.getLogger(__name__)

SERVICE_ATTRIBUTE = "clipmesh.service"


def tracer_provider(
    service: str, otlp_endpoint: str = "", *, extra_processor: SpanProcessor | None = None
) -> TracerProvider:
    """A tracer provider for `service`, not yet installed (see `configure_tracing`)."""
    resource = Resource.create(
        {"service.name": f"clipmesh-{service}", "service.version": clipmesh.__version__}
    )
    provider = TracerProvider(resource=resource)
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
        log.info("exporting traces over OTLP", extra={"otlp_endpoint": otlp_endpoint})
    else:
        log.info("trace export off (no OTLP endpoint configured); trace ids still propagate")
    if extra_processor is not None:
        provider.add_span_processor(extra_processor)
    return provider


def configure_tracing(
    service: str, otlp_endpoint: str = "", *, extra_processor: SpanProcessor | None = None
) -> TracerProvider:
    """Installs the process's tracer provider for `service` and returns it.

    OpenTelemetry accepts one provider per process: a second call is ignored (with a warning).

    Args:
        service: Short service name; the resource's `service.name` is `clipmesh-<service>`.
        otlp_endpoint: `host:port` of an OTLP/gRPC collector; empty keeps spans in-process.
        extra_processor: An additional span processor (tests pass an in-memory exporter).
    """
    provider = tracer_provider(service, otlp_endpoint, extra_processor=extra_processor)
    trace.set_tracer_provider(provider)
    return provider


class _ServerSpans(grpc.aio.ServerInterceptor):
    """Opens a server span per RPC (continuing the caller's trace), labelled with the service."""

    def __init__(self, service: str) -> None:
        self._spans = aio_server_interceptor()
        self._service = service

    async def intercept_service(self, continuation, handler_call_details):  # type: ignore[override]
        async def labelled(details):
            handler = await continuation(details)
            if handler is None:
                return None
            return rewrap(handler, self._label_unary, self._label_stream)

        # The span interceptor wraps what `labelled` returns, so its span is current by the
        # time the labelling behaviour runs.
        return await self._spans.intercept_service(labelled, handler_call_details)

    def _label_unary(self, behavior: Behavior):
        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            trace.get_current_span().set_attribute(SERVICE_ATTRIBUTE, self._service)
            return await call_unary(behavior, request, context)

        return unary

    def _label_stream(self, behavior: Behavior):
        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            trace.get_current_span().set_attribute(SERVICE_ATTRIBUTE, self._service)
            async for response in iterate_stream(behavior, request, context):
                yield response

        return stream


def server_interceptor(service: str) -> grpc.aio.ServerInterceptor:
    """The interceptor that opens a server span per RPC of `service` (e.g. "encoder")."""
    return _ServerSpans(service)


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """Interceptors that open a client span per call and propagate its context."""
    return list(aio_client_interceptors())
