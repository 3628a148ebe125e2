"""The orchestrator's channels to the other services, and the one translation of their errors.

Search calls go without wait-for-ready: an absent encoder must give a fast, clear UNAVAILABLE,
never a hang. Every call carries the time left of the caller's budget as its deadline.

With `tls_ca_file` set the channels use TLS, verifying the services against that CA, and present
`tls_cert_file`/`tls_key_file` as the orchestrator's client certificate (mTLS): one Secret of
tls.crt, tls.key and ca.crt serves both the public port and the calls inward.
"""

from __future__ import annotations

import time

import grpc

from clipmesh.orchestrator.config import OrchestratorConfig
from clipmesh.runtime.channels import ChannelOptions, create_channel
from clipmesh.runtime.config import ConfigError
from clipmesh.runtime.errors import (
    ClipmeshError,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from clipmesh.runtime.security import channel_credentials
from clipmesh.runtime.server import StartupError
from clipmesh_api.encoder.v1 import encoder_pb2_grpc
from clipmesh_api.generator.v1 import generator_pb2_grpc
from clipmesh_api.index.v1 import index_pb2_grpc
from clipmesh_client.errors import from_rpc_error


class Dependencies:
    """Stubs for the encoder, the index and the generator over the runtime's channels."""

    def __init__(self, config: OrchestratorConfig) -> None:
        options = ChannelOptions(
            timeout_s=30.0, max_attempts=3, max_message_mb=config.max_message_mb
        )
        try:
            credentials = channel_credentials(config)
        except ConfigError as exc:
            raise StartupError(str(exc)) from exc
        self._channels = [
            create_channel(target, options, credentials=credentials)
            for target in (config.encoder_target, config.index_target, config.generator_target)
        ]
        self.encoder = encoder_pb2_grpc.EncoderServiceStub(self._channels[0])
        self.index = index_pb2_grpc.IndexServiceStub(self._channels[1])
        self.generator = generator_pb2_grpc.GeneratorServiceStub(self._channels[2])

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()


def remaining_s(deadline: float, service: str) -> float:
    """Seconds left before `deadline`; DEADLINE_EXCEEDED naming the stage when none are."""
    left = deadline - time.monotonic()
    if left <= 0.001:
        raise DeadlineExceeded(
            f"the budget ran out before the {service} was called", reason="BUDGET_EXCEEDED"
        )
    return left


def translate(
    error: grpc.RpcError, service: str, fields: dict[str, str] | None = None
) -> ClipmeshError:
    """The orchestrator's own error for a failed call to `service`.

    Args:
        error: What the dependency answered.
        service: "encoder", "index" or "generator", for the message.
        fields: Maps the dependency's field names (`images[0]`) to the caller's (`parts[2].image`).
    """
    typed = from_rpc_error(error)
    field = (fields or {}).get(typed.metadata.get("field", ""), typed.metadata.get("field", ""))
    message = typed.message
    for theirs, ours in (fields or {}).items():
        message = message.replace(theirs, ours)
    code = typed.code
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument(message, field=field, reason=typed.reason or None)
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFound(message, reason=typed.reason or None, metadata=typed.metadata)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceeded(
            f"the {service} did not answer within the budget",
            reason="BUDGET_EXCEEDED",
            metadata={"service": service},
        )
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return ResourceExhausted(
            f"the {service} is overloaded: {message}",
            retry_after_s=typed.retry_after_s,
            reason=typed.reason or None,
        )
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return FailedPrecondition(message, reason=typed.reason or None)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
        return Unavailable(
            f"the {service} is unavailable ({message})",
            reason=f"{service.upper()}_UNAVAILABLE",
            metadata={"service": service},
        )
    return ClipmeshError(
        f"the {service} failed ({code.name}): {message}", reason=f"{service.upper()}_FAILED"
    )
