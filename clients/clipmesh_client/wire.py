"""The wire: how every clipmesh channel is made, what its metadata carries, and how an error
travels — one module, shared by the SDK and the services.

Channels. Every channel, the SDK's and the services' own, gets the same policy
(`ChannelPolicy`): `round_robin` over every address a `dns:///` target resolves to (a headless
Kubernetes service spreads calls over its replicas instead of pinning one HTTP/2 connection to
one pod); retries of UNAVAILABLE only, bounded, in the channel's service config rather than in
hand-written loops; explicit message sizes and keepalive; a reconnect backoff capped at 2 s;
and a deadline on every call that sets none of its own. The deadline is a client interceptor,
not the service config's `timeout`, which caps every call on the channel (an hour-long ingest
stream included) and which gRPC Python applies about a second short (grpc/grpc#34547,
grpc/grpc#40633). Callers add their own interceptors on top (the services: OpenTelemetry).

Metadata. The header names every side agrees on: the bearer token, the caller a call is made
for, and the two trailers of a failed call.

Errors travel in the two trailers named here; `clipmesh_client.status` writes and reads them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

# --- metadata ----------------------------------------------------------------------------------

AUTHORIZATION_HEADER = "authorization"
"""`authorization: Bearer <token>` authenticates a caller of the public API."""
BEARER_PREFIX = "Bearer "
CALLER_HEADER = "x-clipmesh-caller"
"""Who a call is made for, where no token says it (per-caller limits and job attribution)."""
STATUS_DETAILS_HEADER = "grpc-status-details-bin"
"""The trailer holding a failed call's serialized `google.rpc.Status`."""
RETRY_PUSHBACK_HEADER = "grpc-retry-pushback-ms"
"""The trailer gRPC's own retry logic reads: how long to wait before retrying."""

_MIB = 1024 * 1024
_MAX_ATTEMPTS_CAP = 5  # gRPC refuses retry policies with more attempts than this


# --- channels ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ChannelPolicy:
    """How a channel behaves.

    Attributes:
        timeout_s: Deadline of every call that sets none of its own.
        max_attempts: Most attempts of a call that failed UNAVAILABLE (1 = no retry; gRPC caps
            it at 5).
        initial_backoff_s: First retry delay; later delays grow by `backoff_multiplier`.
        max_backoff_s: Cap on a retry delay.
        backoff_multiplier: Growth of the retry delay per attempt.
        wait_for_ready: Queue calls while the server is starting instead of failing fast.
        max_message_mb: Largest message sent or received, in MiB.
        keepalive_time_s: Seconds between keepalive pings while calls are active.
        keepalive_timeout_s: Seconds to wait for a ping's answer before dropping the connection.
        max_reconnect_backoff_s: Longest pause between attempts to reconnect to a server that
            went away. gRPC's default grows to 120 s, so a server down for a minute would be
            unused for up to a minute more after it returned.
    """

    timeout_s: float = 10.0
    max_attempts: int = 3
    initial_backoff_s: float = 0.05
    max_backoff_s: float = 1.0
    backoff_multiplier: float = 2.0
    wait_for_ready: bool = False
    max_message_mb: int = 64
    keepalive_time_s: float = 30.0
    keepalive_timeout_s: float = 10.0
    max_reconnect_backoff_s: float = 2.0


def service_config(policy: ChannelPolicy) -> str:
    """The gRPC service config JSON: round_robin, and UNAVAILABLE-only retries."""
    method_config: dict[str, object] = {
        "name": [{}],  # every service and method on the channel
        "waitForReady": policy.wait_for_ready,
    }
    if policy.max_attempts > 1:
        method_config["retryPolicy"] = {
            "maxAttempts": min(policy.max_attempts, _MAX_ATTEMPTS_CAP),
            "initialBackoff": f"{policy.initial_backoff_s:.3f}s",
            "maxBackoff": f"{policy.max_backoff_s:.3f}s",
            "backoffMultiplier": policy.backoff_multiplier,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
    return json.dumps(
        {"loadBalancingConfig": [{"round_robin": {}}], "methodConfig": [method_config]}
    )


def channel_arguments(policy: ChannelPolicy) -> list[tuple[str, object]]:
    """The core channel arguments of `policy`."""
    return [
        ("grpc.service_config", service_config(policy)),
        ("grpc.enable_retries", 1),
        ("grpc.max_send_message_length", policy.max_message_mb * _MIB),
        ("grpc.max_receive_message_length", policy.max_message_mb * _MIB),
        ("grpc.keepalive_time_ms", int(policy.keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(policy.keepalive_timeout_s * 1000)),
        ("grpc.max_reconnect_backoff_ms", int(policy.max_reconnect_backoff_s * 1000)),
        # Re-resolve DNS soon after a connection drops so new replicas are found quickly.
        ("grpc.dns_min_time_between_resolutions_ms", 1000),
    ]


class _DefaultDeadline:
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


_CALL_KINDS = (
    grpc.aio.UnaryUnaryClientInterceptor,
    grpc.aio.UnaryStreamClientInterceptor,
    grpc.aio.StreamUnaryClientInterceptor,
    grpc.aio.StreamStreamClientInterceptor,
)
# An asyncio channel files an interceptor under the first kind of call it implements only, so
# one object implementing all four would leave streams without a deadline: one class a kind.
_DEADLINES = [
    type(f"_{kind.__name__}Deadline", (_DefaultDeadline, kind), {}) for kind in _CALL_KINDS
]


def default_deadline(timeout_s: float) -> list[grpc.aio.ClientInterceptor]:
    """Interceptors giving every call of an asyncio channel that sets no deadline `timeout_s`."""
    return [deadline(timeout_s) for deadline in _DEADLINES]


@dataclass(frozen=True)
class _BlockingCallDetails(grpc.ClientCallDetails):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: Any
    compression: Any


class BlockingDefaultDeadline(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """`default_deadline` for a blocking channel (which files one object under every kind)."""

    def __init__(self, timeout_s: float) -> None:
        self._timeout_s = timeout_s

    def _with_deadline(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        if details.timeout is not None:
            return details
        return _BlockingCallDetails(
            details.method,
            self._timeout_s,
            details.metadata,
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_deadline(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._with_deadline(details), request)

    def intercept_stream_unary(self, continuation, details, request_iterator):
        return continuation(self._with_deadline(details), request_iterator)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        return continuation(self._with_deadline(details), request_iterator)


def open_channel(
    target: str,
    policy: ChannelPolicy | None = None,
    *,
    credentials: grpc.ChannelCredentials | None = None,
) -> grpc.Channel:
    """A blocking channel to a clipmesh service.

    Args:
        target: `host:port`, or `dns:///name.namespace.svc:port` to balance over a name.
        policy: Deadline, retries and transport settings; the defaults suit a unary call.
        credentials: TLS (or mTLS) credentials, see `tls_credentials`; None for plaintext.
    """
    policy = policy or ChannelPolicy()
    arguments = channel_arguments(policy)
    if credentials is None:
        channel = grpc.insecure_channel(target, options=arguments)
    else:
        channel = grpc.secure_channel(target, credentials, options=arguments)
    return grpc.intercept_channel(channel, BlockingDefaultDeadline(policy.timeout_s))


def open_aio_channel(
    target: str,
    policy: ChannelPolicy | None = None,
    *,
    credentials: grpc.ChannelCredentials | None = None,
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
) -> grpc.aio.Channel:
    """An asyncio channel to a clipmesh service; `interceptors` run inside the deadline one.

    Args:
        target: `host:port`, or `dns:///name.namespace.svc:port` to balance over a name.
        policy: Deadline, retries and transport settings; the defaults suit a unary call.
        credentials: TLS (or mTLS) credentials, see `tls_credentials`; None for plaintext.
        interceptors: The caller's own client interceptors (tracing, for the services).
    """
    policy = policy or ChannelPolicy()
    arguments = channel_arguments(policy)
    chain = [*default_deadline(policy.timeout_s), *interceptors]
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=arguments, interceptors=chain)
    return grpc.aio.secure_channel(target, credentials, options=arguments, interceptors=chain)


# --- credentials -------------------------------------------------------------------------------


def tls_credentials(
    ca_file: str | Path | None = None,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
) -> grpc.ChannelCredentials:
    """Channel credentials from PEM files.

    Args:
        ca_file: CA bundle to verify the server with; None trusts the system's roots.
        cert_file: Client certificate chain, for mTLS (give `key_file` with it).
        key_file: Private key of `cert_file`.

    Raises:
        ValueError: Only one of `cert_file` and `key_file` was given.
        OSError: A file cannot be read (the message names it).
    """
    if (cert_file is None) != (key_file is None):
        raise ValueError("give both cert_file and key_file for a client certificate, or neither")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca_file),
        private_key=_read(key_file),
        certificate_chain=_read(cert_file),
    )


def bearer_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """The call metadata that carries `token` (nothing when it is None or empty).

    Send tokens over TLS only: on a plaintext channel anyone on the path can read them.
    """
    if not token:
        return ()
    return ((AUTHORIZATION_HEADER, f"{BEARER_PREFIX}{token}"),)


def _read(path: str | Path | None) -> bytes | None:
    return None if path is None else Path(path).read_bytes()
