"""The one factory for service-to-service channels.

Every channel gets: a default deadline for every call that sets none (a client interceptor —
the service config's `timeout` field misfires in grpcio 1.7x-1.8x, cutting calls short, see
grpc/grpc#34547); a bounded retry policy for UNAVAILABLE only (in the channel's service config,
not in hand-written loops);
`round_robin` load balancing, so a `dns:///` target naming a headless Kubernetes service
spreads calls over all replicas instead of pinning one HTTP/2 connection to one pod;
explicit message-size and keepalive options; and OpenTelemetry client spans.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import grpc

from clipmesh.runtime.tracing import client_interceptors

_MIB = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class ChannelOptions:
    """How a channel behaves.

    Attributes:
        timeout_s: Default deadline of every call that sets none of its own.
        max_attempts: Most attempts of a call that failed UNAVAILABLE (1 = no retry; gRPC caps 5).
        initial_backoff_s: First retry delay; later delays grow by `backoff_multiplier`.
        max_backoff_s: Cap on a retry delay.
        backoff_multiplier: Growth of the retry delay per attempt.
        wait_for_ready: Queue calls while the dependency is starting instead of failing fast.
        max_message_mb: Largest message sent or received, in MiB.
        keepalive_time_s: Seconds between keepalive pings while calls are active.
        keepalive_timeout_s: Seconds to wait for a ping's answer before dropping the connection.
        max_reconnect_backoff_s: Longest pause between attempts to reconnect to a dependency
            that went away. gRPC's default grows to 120 s, so a dependency down for a minute
            would be unused for up to a minute more after it returned.
    """

    timeout_s: float = 5.0
    max_attempts: int = 3
    initial_backoff_s: float = 0.05
    max_backoff_s: float = 1.0
    backoff_multiplier: float = 2.0
    wait_for_ready: bool = False
    max_message_mb: int = 64
    keepalive_time_s: float = 30.0
    keepalive_timeout_s: float = 10.0
    max_reconnect_backoff_s: float = 2.0


def service_config(options: ChannelOptions) -> str:
    """The gRPC service config JSON: round_robin and UNAVAILABLE-only retries."""
    method_config: dict[str, object] = {
        "name": [{}],  # every service and method on the channel
        "waitForReady": options.wait_for_ready,
    }
    if options.max_attempts > 1:
        method_config["retryPolicy"] = {
            "maxAttempts": min(options.max_attempts, 5),
            "initialBackoff": f"{options.initial_backoff_s:.3f}s",
            "maxBackoff": f"{options.max_backoff_s:.3f}s",
            "backoffMultiplier": options.backoff_multiplier,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
    return json.dumps(
        {"loadBalancingConfig": [{"round_robin": {}}], "methodConfig": [method_config]}
    )


def channel_arguments(options: ChannelOptions) -> list[tuple[str, object]]:
    """Core channel arguments derived from `options`."""
    return [
        ("grpc.service_config", service_config(options)),
        ("grpc.enable_retries", 1),
        ("grpc.max_send_message_length", options.max_message_mb * _MIB),
        ("grpc.max_receive_message_length", options.max_message_mb * _MIB),
        ("grpc.keepalive_time_ms", int(options.keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(options.keepalive_timeout_s * 1000)),
        ("grpc.max_reconnect_backoff_ms", int(options.max_reconnect_backoff_s * 1000)),
        # Re-resolve DNS soon after a connection drops so new replicas are found quickly.
        ("grpc.dns_min_time_between_resolutions_ms", 1000),
    ]


class DefaultDeadline(
    grpc.aio.UnaryUnaryClientInterceptor,
    grpc.aio.UnaryStreamClientInterceptor,
    grpc.aio.StreamUnaryClientInterceptor,
    grpc.aio.StreamStreamClientInterceptor,
):
    """Gives every call that sets no deadline of its own `timeout_s`."""

    def __init__(self, timeout_s: float) -> None:
        self._timeout_s = timeout_s

    def _with_deadline(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        if details.timeout is not None:
            return details
        return grpc.aio.ClientCallDetails(
            details.method,
            self._timeout_s,
            details.metadata,
            details.credentials,
            details.wait_for_ready,
        )

    async def intercept_unary_unary(self, continuation, details, request):
        return await continuation(self._with_deadline(details), request)

    async def intercept_unary_stream(self, continuation, details, request):
        return await continuation(self._with_deadline(details), request)

    async def intercept_stream_unary(self, continuation, details, request_iterator):
        return await continuation(self._with_deadline(details), request_iterator)

    async def intercept_stream_stream(self, continuation, details, request_iterator):
        return await continuation(self._with_deadline(details), request_iterator)


def create_channel(
    target: str,
    options: ChannelOptions | None = None,
    *,
    credentials: grpc.ChannelCredentials | None = None,
) -> grpc.aio.Channel:
    """Opens an asyncio channel to another clipmesh service.

    Args:
        target: `host:port`, or `dns:///name.namespace.svc:port` for a headless service.
        options: Deadline, retry and transport settings; defaults suit a fast internal call.
        credentials: TLS (or mTLS) credentials, see `runtime.security.channel_credentials`;
            None for plaintext.
    """
    options = options or ChannelOptions()
    arguments = channel_arguments(options)
    interceptors = [DefaultDeadline(options.timeout_s), *client_interceptors()]
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=arguments, interceptors=interceptors)
    return grpc.aio.secure_channel(
        target, credentials, options=arguments, interceptors=interceptors
    )
