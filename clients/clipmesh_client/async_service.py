"""`AsyncServiceClient`: the asyncio form of `BlockingServiceClient`, on the same settings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, Self

from clipmesh_client.blocking import ServiceClientBase
from clipmesh_client.errors import typed_errors
from clipmesh_client.wire import open_aio_channel


class AsyncServiceClient(ServiceClientBase):
    """An asyncio channel to one service, closed with the client (see `ServiceClientBase`).

    Create it inside a running event loop; use `async with`.
    """

    _open_channel = staticmethod(open_aio_channel)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        await self._channel.close()

    @staticmethod
    async def _stream(
        start: Callable[[], Any], convert: Callable[[Any], Any]
    ) -> AsyncIterator[Any]:
        """Starts a server stream once iterated (`start` makes the call) and yields each
        response as `convert` makes it, with typed errors; leaving early cancels the call."""
        call = start()
        try:
            with typed_errors():
                async for response in call:
                    yield convert(response)
        finally:
            call.cancel()  # a no-op once the stream has ended
