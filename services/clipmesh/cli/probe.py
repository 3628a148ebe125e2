"""Asking a running service how it is: health and the services it exposes (reflection)."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


def connect_address(host: str, port: int) -> str:
    """The address to dial for a server bound to `host` (wildcards mean this machine)."""
    return f"{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{port}"


def _channel(target: str, credentials: grpc.ChannelCredentials | None) -> grpc.Channel:
    if credentials is None:
        return grpc.insecure_channel(target)
    return grpc.secure_channel(target, credentials)


def health_status(
    target: str,
    *,
    timeout_s: float = 1.0,
    service: str = "",
    credentials: grpc.ChannelCredentials | None = None,
) -> str:
    """The health status name of `service` at `target`, or "UNREACHABLE".

    A TLS port probed without `credentials` (or with a certificate it refuses) is UNREACHABLE.
    """
    with _channel(target, credentials) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout_s
            )
        except grpc.RpcError as exc:
            return "UNREACHABLE" if exc.code() in _DOWN else exc.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def list_services(
    target: str, *, timeout_s: float = 2.0, credentials: grpc.ChannelCredentials | None = None
) -> list[str]:
    """The gRPC services `target` lists through server reflection."""
    with _channel(target, credentials) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        for response in stub.ServerReflectionInfo(iter([request]), timeout=timeout_s):
            return sorted(s.name for s in response.list_services_response.service)
    return []


_DOWN = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
