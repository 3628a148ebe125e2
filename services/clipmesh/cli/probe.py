"""Asking a running service how it is: health and the services it exposes (reflection)."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clipmesh.runtime import reflection
from clipmesh_client.wire import ChannelPolicy, open_channel

# A probe asks once: a retry would only spend the probe's short deadline.
_PROBE = ChannelPolicy(max_attempts=1)


def connect_address(host: str, port: int) -> str:
    """The address to dial for a server bound to `host` (wildcards mean this machine)."""
    return f"{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{port}"


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
    with open_channel(target, _PROBE, credentials=credentials) as channel:
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
    """The gRPC services `target` lists through server reflection (v1)."""
    with open_channel(target, _PROBE, credentials=credentials) as channel:
        info = channel.stream_stream(
            reflection.V1_METHOD_PATH,
            request_serializer=reflection.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection.ServerReflectionResponse.FromString,
        )
        request = reflection.ServerReflectionRequest(list_services="")
        for response in info(iter([request]), timeout=timeout_s):
            return sorted(s.name for s in response.list_services_response.service)
    return []


_DOWN = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
