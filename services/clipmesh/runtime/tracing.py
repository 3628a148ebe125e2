"""Tracing: OpenTelemetry with gRPC server and client instrumentation.

Spans are always created and propagated (so trace ids reach logs and downstream services);
they are exported over OTLP/gRPC only when an endpoint is configured.
"""

from __future__ import annotations

import logging

import grpc
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import clipmesh

log = logging.getLogger(__name__)


def configure_tracing(
    service: str, otlp_endpoint: str = "", *, extra_processor: SpanProcessor | None = None
) -> TracerProvider:
    """Installs the process's tracer provider for `service` and returns it.

    Args:
        service: Short service name; the resource's `service.name` is `clipmesh-<service>`.
        otlp_endpoint: `host:port` of an OTLP/gRPC collector; empty keeps spans in-process.
        extra_processor: An additional span processor (tests pass an in-memory exporter).
    """
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
    trace.set_tracer_provider(provider)
    return provider


def server_interceptor() -> grpc.aio.ServerInterceptor:
    """The interceptor that opens a server span per RPC (continuing the caller's trace)."""
    return aio_server_interceptor()


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """Interceptors that open a client span per call and propagate its context."""
    return list(aio_client_interceptors())
