"""The SDK's channel: the same policy as the services' own channels, minus their imports.

The SDK ships apart from the `clipmesh` services package, so it sets up its channel here with
the mesh's policy: `round_robin` over every address a `dns:///` target resolves to, bounded
retries of UNAVAILABLE only (in the service config, never in hand-written loops), explicit
message sizes and keepalive.

One deliberate difference: the deadline is not in the service config. The client passes an
explicit deadline on every call instead, because a service-config timeout caps every call on the
channel (an hour-long ingest stream included) and gRPC Python applies it about a second short
(grpc/grpc#34547, grpc/grpc#40633).
"""

from __future__ import annotations

import json

import grpc

_MIB = 1024 * 1024
# gRPC refuses retry policies with more attempts than this.
_MAX_ATTEMPTS_CAP = 5
_INITIAL_BACKOFF_S = 0.05
_MAX_BACKOFF_S = 1.0
_BACKOFF_MULTIPLIER = 2.0
_KEEPALIVE_TIME_S = 30.0
_KEEPALIVE_TIMEOUT_S = 10.0
# gRPC's default reconnect backoff grows to 120 s, so a client that saw the orchestrator down
# for a while kept failing long after it came back; the services' channels cap it the same way.
_MAX_RECONNECT_BACKOFF_S = 2.0


def service_config(*, max_attempts: int) -> str:
    """The service config JSON: round_robin and, when `max_attempts` > 1, UNAVAILABLE retries."""
    method_config: dict[str, object] = {"name": [{}]}  # every service and method
    if max_attempts > 1:
        method_config["retryPolicy"] = {
            "maxAttempts": min(max_attempts, _MAX_ATTEMPTS_CAP),
            "initialBackoff": f"{_INITIAL_BACKOFF_S:.3f}s",
            "maxBackoff": f"{_MAX_BACKOFF_S:.3f}s",
            "backoffMultiplier": _BACKOFF_MULTIPLIER,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
    return json.dumps(
        {"loadBalancingConfig": [{"round_robin": {}}], "methodConfig": [method_config]}
    )


def channel_arguments(*, max_attempts: int, max_message_mb: int) -> list[tuple[str, object]]:
    """Core channel arguments for the SDK's channel."""
    return [
        ("grpc.service_config", service_config(max_attempts=max_attempts)),
        ("grpc.enable_retries", 1),
        ("grpc.max_send_message_length", max_message_mb * _MIB),
        ("grpc.max_receive_message_length", max_message_mb * _MIB),
        ("grpc.keepalive_time_ms", int(_KEEPALIVE_TIME_S * 1000)),
        ("grpc.keepalive_timeout_ms", int(_KEEPALIVE_TIMEOUT_S * 1000)),
        # Re-resolve DNS soon after a connection drops so new replicas are found quickly.
        ("grpc.dns_min_time_between_resolutions_ms", 1000),
        ("grpc.max_reconnect_backoff_ms", int(_MAX_RECONNECT_BACKOFF_S * 1000)),
    ]


def open_channel(
    target: str,
    *,
    credentials: grpc.ChannelCredentials | None,
    arguments: list[tuple[str, object]],
) -> grpc.Channel:
    """A blocking channel; TLS when `credentials` is given, plaintext otherwise."""
    if credentials is None:
        return grpc.insecure_channel(target, options=arguments)
    return grpc.secure_channel(target, credentials, options=arguments)


def open_aio_channel(
    target: str,
    *,
    credentials: grpc.ChannelCredentials | None,
    arguments: list[tuple[str, object]],
) -> grpc.aio.Channel:
    """An asyncio channel; TLS when `credentials` is given, plaintext otherwise."""
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=arguments)
    return grpc.aio.secure_channel(target, credentials, options=arguments)
