"""`BlockingServiceClient`: the channel, deadlines and headers of every blocking client.

The settings and headers are `ServiceClientBase`'s, which `AsyncServiceClient`
(async_service.py) shares; each adds its own channel, closing and stream handling.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc

from clipmesh_client.errors import typed_errors
from clipmesh_client.lifetime import BlockingChannel
from clipmesh_client.wire import CALLER_HEADER, ChannelPolicy, bearer_metadata


class ServiceClientBase:
    """A channel to one service, and the deadline and headers of its calls.

    Args:
        target: `host:port` of the service.
        timeout_s: Deadline of each unary call that sets none of its own.
        stream_timeout_s: Deadline of a progress stream (generation takes minutes).
        caller: Sent as `x-clipmesh-caller`; the gateway limits active jobs per caller.
        max_attempts: Attempts of a call that fails UNAVAILABLE (1 = no retry).
        credentials: TLS credentials, or None for plaintext.
        metadata: Further headers sent with every call.
        token: Bearer token of a service with token auth on (over TLS only); the identity it
            proves replaces `caller`.
    """

    _open_channel: Callable[..., Any]  # the blocking or the asyncio channel factory

    def __init__(
        self,
        target: str,
        *,
        timeout_s: float = 10.0,
        stream_timeout_s: float = 3600.0,
        caller: str = "",
        max_attempts: int = 3,
        credentials: grpc.ChannelCredentials | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        token: str | None = None,
    ) -> None:
        if timeout_s <= 0 or stream_timeout_s <= 0:
            raise ValueError("timeout_s and stream_timeout_s must be positive")
        self.target = target
        self.timeout_s = timeout_s
        self.stream_timeout_s = stream_timeout_s
        caller_header = ((CALLER_HEADER, caller),) if caller else ()
        self._metadata = (*metadata, *caller_header, *bearer_metadata(token))
        policy = ChannelPolicy(timeout_s=timeout_s, max_attempts=max_attempts)
        self._channel = self._open_channel(target, policy, credentials=credentials)

    def _options(self, timeout_s: float | None, *, stream: bool = False) -> dict[str, Any]:
        default = self.stream_timeout_s if stream else self.timeout_s
        return {"timeout": default if timeout_s is None else timeout_s, "metadata": self._metadata}


class BlockingServiceClient(BlockingChannel, ServiceClientBase):
    """A blocking channel to one service, closed with the client (see `ServiceClientBase`)."""

    @staticmethod
    def _stream(call, convert: Callable[[Any], Any]) -> Iterator[Any]:
        """Yields each response of a server stream as `convert` makes it, with typed errors;
        leaving early cancels the call."""
        try:
            with typed_errors():
                yield from map(convert, call)
        finally:
            call.cancel()
