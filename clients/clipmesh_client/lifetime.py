"""How a client's channel is opened and closed: the blocking way or the asyncio way.

Every client class (search and ingest, generator, previs; blocking and asyncio) keeps its
settings in its own base class and takes its channel's lifetime from one of these mixins, so
`with` / `async with` and `close()` behave the same everywhere.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

from clipmesh_client.wire import open_aio_channel, open_channel


class BlockingChannel:
    """A blocking channel (`self._channel`), closed by `close()` or leaving `with`."""

    _channel: Any
    _open_channel = staticmethod(open_channel)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        self._channel.close()


class AsyncChannel:
    """An asyncio channel (`self._channel`), closed by `await close()` or leaving `async with`.

    Create the client inside a running event loop.
    """

    _channel: Any
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
