"""How one service calls another: its channels, and the one translation of what they answer.

The typed clients (`clipmesh.<service>.client`) are built on `DependencyClient`: their methods
take and return domain values, and every `grpc.RpcError` they meet becomes this service's own
`ServiceError` here, in `translate`, so no engine ever sees a stub or a transport error.

Channels come from the wire (`clipmesh_client.wire`) with the services' tracing interceptors on
top. They go without wait-for-ready: an absent dependency gives a fast, clear UNAVAILABLE,
never a hang. With `tls_ca_file` set they use TLS, verifying the other services against that
CA and presenting `tls_cert_file`/`tls_key_file` as this service's client certificate (mTLS).
gRPC cannot change a channel's credentials, so when those files change (cert-manager renewed
them) the channels are replaced: new calls take the new ones, calls in flight finish on the
old ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import grpc

from clipmesh.runtime.config import ConfigError, ServiceConfig
from clipmesh.runtime.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    RelayedError,
    ResourceExhausted,
    ServiceError,
    Unavailable,
)
from clipmesh.runtime.security import channel_credentials, tls_file_paths
from clipmesh.runtime.server import StartupError
from clipmesh.runtime.tracing import client_interceptors
from clipmesh.runtime.watched import FileWatch
from clipmesh_client.status import decode_status
from clipmesh_client.wire import ChannelPolicy, open_aio_channel

log = logging.getLogger(__name__)

# How often the TLS files are looked at; cert-manager renews days before expiry.
CREDENTIALS_CHECK_S = 10.0
# How long calls begun on replaced channels may still run (ingest streams take a while).
RETIRED_CHANNEL_GRACE_S = 120.0


class DependencyChannels:
    """This service's channels to the others, one per target, renewed with its TLS files.

    Create it on the serving event loop (it watches the TLS files from a task there).

    Args:
        config: The calling service's settings (`tls_*`, `max_message_mb`).
        policy: Deadline and retry policy of every channel; by default 30 s a call (callers
            pass shorter deadlines of their own) and up to 3 attempts on UNAVAILABLE.
    """

    def __init__(self, config: ServiceConfig, policy: ChannelPolicy | None = None) -> None:
        self._config = config
        self._policy = policy or ChannelPolicy(
            timeout_s=30.0, max_attempts=3, max_message_mb=config.max_message_mb
        )
        self._files = FileWatch(tls_file_paths(config))
        try:
            self._credentials = channel_credentials(config)
        except ConfigError as exc:
            raise StartupError(str(exc)) from exc
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[tuple[str, type], Any] = {}
        self._retiring: set[asyncio.Task] = set()
        self._watch: asyncio.Task | None = None
        if config.tls_ca_file:
            self._watch = asyncio.get_running_loop().create_task(self._watch_credentials())

    def stub(self, target: str, stub_type: type) -> Any:
        """The generated stub of `stub_type` on the current channel to `target`."""
        key = (target, stub_type)
        stub = self._stubs.get(key)
        if stub is None:
            channel = self._channels.get(target)
            if channel is None:
                channel = self._channels[target] = open_aio_channel(
                    target,
                    self._policy,
                    credentials=self._credentials,
                    interceptors=client_interceptors(),
                )
            stub = self._stubs[key] = stub_type(channel)
        return stub

    def reload_credentials(self) -> bool:
        """Opens new channels when the TLS files changed and load; True when it did.

        A changed set that does not load (a key written before its certificate) is logged and
        left until the next change; the channels in use stay.
        """
        credentials = self._files.reload(lambda: channel_credentials(self._config), "TLS files")
        if credentials is None:
            return False
        retired = list(self._channels.values())
        self._credentials = credentials
        self._channels.clear()
        self._stubs.clear()  # the next call opens a channel with the new credentials
        task = asyncio.get_running_loop().create_task(_retire(retired))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
        log.info("TLS files changed: channels to the other services renewed")
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
        for channel in self._channels.values():
            await channel.close()


async def _retire(channels: list[grpc.aio.Channel]) -> None:
    """Closes replaced channels once their calls had `RETIRED_CHANNEL_GRACE_S` to finish."""
    try:
        await asyncio.gather(*(c.close(grace=RETIRED_CHANNEL_GRACE_S) for c in channels))
    except asyncio.CancelledError:
        await asyncio.gather(*(c.close() for c in channels))
        raise


class DependencyClient:
    """Base of a typed client: one service at one target, over shared channels.

    Subclasses name the `service` ("encoder", "index", "generator") and its `stub_type`, and
    wrap each call in `self.errors()`.
    """

    service: ClassVar[str]
    stub_type: ClassVar[type]

    def __init__(self, channels: DependencyChannels, target: str) -> None:
        self._channels = channels
        self.target = target

    @property
    def _stub(self) -> Any:
        # Looked up per call: channels renewed with a new client certificate apply at once.
        return self._channels.stub(self.target, self.stub_type)

    @contextlib.contextmanager
    def errors(self, fields: Mapping[str, str] | None = None) -> Iterator[None]:
        """Raises a `grpc.RpcError` from inside the block as this service's own error."""
        try:
            yield
        except grpc.RpcError as error:
            raise translate(error, self.service, fields) from error

    @contextlib.contextmanager
    def relayed_errors(self) -> Iterator[None]:
        """For a call relayed on a caller's behalf: what the dependency itself refused reaches
        the caller unchanged (`RelayedError`); a transport failure (no status of the service's
        own) is translated as usual."""
        try:
            yield
        except grpc.RpcError as error:
            details = decode_status(error)
            if details.domain:
                raise RelayedError(details) from error
            raise translate(error, self.service) from error


def remaining_s(deadline: float, service: str) -> float:
    """Seconds left before `deadline`; DEADLINE_EXCEEDED naming the stage when none are."""
    left = deadline - time.monotonic()
    if left <= 0.001:
        raise DeadlineExceeded(
            f"the budget ran out before the {service} was called", reason="BUDGET_EXCEEDED"
        )
    return left


def translate(
    error: grpc.RpcError, service: str, fields: Mapping[str, str] | None = None
) -> ServiceError:
    """This service's own error for a failed call to `service`.

    Args:
        error: What the dependency answered.
        service: "encoder", "index" or "generator", for the message.
        fields: Maps the dependency's field names (`images[0]`) to the caller's (`parts[2].image`).
    """
    details = decode_status(error)
    fields = fields or {}
    field = details.metadata.get("field", "")
    field = fields.get(field, field)
    message = details.message
    for theirs, ours in fields.items():
        message = message.replace(theirs, ours)
    code, reason = details.code, details.reason or None
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument(message, field=field, reason=reason)
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFound(message, reason=reason, metadata=details.metadata)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceeded(
            f"the {service} did not answer within the budget",
            reason="BUDGET_EXCEEDED",
            metadata={"service": service},
        )
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and details.quota_violations:
        # The caller's own quota, not the dependency's load: passed on as it was said.
        return ResourceExhausted(
            message,
            retry_after_s=details.retry_after_s,
            reason=reason,
            metadata=details.metadata,
            quota_violations=details.quota_violations,
        )
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return ResourceExhausted(
            f"the {service} is overloaded: {message}",
            retry_after_s=details.retry_after_s,
            reason=reason,
        )
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return FailedPrecondition(message, reason=reason)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
        return Unavailable(
            f"the {service} is unavailable ({message})",
            reason=f"{service.upper()}_UNAVAILABLE",
            metadata={"service": service},
        )
    return ServiceError(
        f"the {service} failed ({code.name}): {message}", reason=f"{service.upper()}_FAILED"
    )
