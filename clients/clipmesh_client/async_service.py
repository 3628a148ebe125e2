"""`AsyncServiceClient`: the asyncio form of `BlockingServiceClient`, on the same settings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from clipmesh_client.blocking import ServiceClientBase
from clipmesh_client.errors import typed_errors
from clipmesh_client.lifetime import AsyncChannel


class AsyncServiceClient(AsyncChannel, ServiceClientBase):
    """An asyncio channel to one service, closed with the client (see `ServiceClientBase`).

    Create it inside a running event loop; use `async with`.
    """

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
