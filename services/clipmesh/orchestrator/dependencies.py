"""The orchestrator's channels to the other services, and the one translation of their errors.

Search calls go without wait-for-ready: an absent encoder must give a fast, clear UNAVAILABLE,
never a hang. Every call carries the time left of the caller's budget as its deadline.

With `tls_ca_file` set the channels use TLS, verifying the services against that CA, and present
`tls_cert_file`/`tls_key_file` as the orchestrator's client certificate (mTLS): one Secret of
tls.crt, tls.key and ca.crt serves both the public port and the calls inward. gRPC cannot
change a channel's credentials, so when those files change (cert-manager renewed them) the
channels are replaced: new calls take the new ones, calls in flight finish on the old ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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
from clipmesh.runtime.security import channel_credentials, file_signature, tls_file_paths
from clipmesh.runtime.server import StartupError
from clipmesh_api.encoder.v1 import encoder_pb2_grpc
from clipmesh_api.generator.v1 import generator_pb2_grpc
from clipmesh_api.index.v1 import index_pb2_grpc
from clipmesh_client.errors import from_rpc_error

log = logging.getLogger(__name__)

# How often the TLS files are looked at; cert-manager renews days before expiry.
CREDENTIALS_CHECK_S = 10.0
# How long calls begun on replaced channels may still run (ingest streams take a while).
RETIRED_CHANNEL_GRACE_S = 120.0


class Dependencies:
    """Stubs for the encoder, the index and the generator over the runtime's channels.

    Read `encoder`, `index` and `generator` at each call rather than keeping them: they are
    replaced when the TLS files change.
    """

    def __init__(self, config: OrchestratorConfig) -> None:
        self._config = config
        self._options = ChannelOptions(
            timeout_s=30.0, max_attempts=3, max_message_mb=config.max_message_mb
        )
        self._paths = tls_file_paths(config)
        self._signature = file_signature(self._paths)
        try:
            self._open(channel_credentials(config))
        except ConfigError as exc:
            raise StartupError(str(exc)) from exc
        self._retiring: set[asyncio.Task] = set()
        self._watch: asyncio.Task | None = None
        if config.tls_ca_file:
            self._watch = asyncio.get_running_loop().create_task(self._watch_credentials())

    def _open(self, credentials: grpc.ChannelCredentials | None) -> None:
        config = self._config
        self._channels = [
            create_channel(target, self._options, credentials=credentials)
            for target in (config.encoder_target, config.index_target, config.generator_target)
        ]
        self.encoder = encoder_pb2_grpc.EncoderServiceStub(self._channels[0])
        self.index = index_pb2_grpc.IndexServiceStub(self._channels[1])
        self.generator = generator_pb2_grpc.GeneratorServiceStub(self._channels[2])

    def reload_credentials(self) -> bool:
        """Opens new channels when the TLS files changed and load; True when it did.

        A changed set that does not load (a key written before its certificate) is logged and
        left until the next change; the channels in use stay.
        """
        signature = file_signature(self._paths)
        if signature == self._signature:
            return False
        self._signature = signature
        try:
            credentials = channel_credentials(self._config)
        except ConfigError as exc:
            log.error("TLS files changed but do not load; keeping the old channels: %s", exc)
            return False
        retired = self._channels
        self._open(credentials)
        task = asyncio.get_running_loop().create_task(_retire(retired))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
        log.info("TLS files changed: channels to the encoder, index and generator renewed")
        return True

    async def _watch_credentials(self) -> None:
        while True:
            await asyncio.sleep(CREDENTIALS_CHECK_S)
            self.reload_credentials()

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        for task in list(self._retiring):
            task.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)
        for channel in self._channels:
            await channel.close()


async def _retire(channels: list[grpc.aio.Channel]) -> None:
    """Closes replaced channels once their calls had `RETIRED_CHANNEL_GRACE_S` to finish."""
    try:
        await asyncio.gather(*(c.close(grace=RETIRED_CHANNEL_GRACE_S) for c in channels))
    except asyncio.CancelledError:
        await asyncio.gather(*(c.close() for c in channels))
        raise


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
