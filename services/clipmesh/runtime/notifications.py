"""Notifications between a service's replicas: what one replica commits, the others hear.

With PostgreSQL, a store writes `db.notify(channel, payload)` inside the transaction that
commits a change (delivered with the commit, never without it), and `publish()` sends what is
not stored (a job's progress). Each replica listens on one dedicated connection. When that
connection drops (the database restarted, a network blip), whatever was committed meanwhile
went unheard: after reconnecting, the replica calls its `on_reconnect` callbacks, which re-read
what they follow from the database.

With SQLite there is one replica: notifications are delivered in-process once committed.

Subscribers are called on the event loop, in the order notifications were committed (one
connection delivers them in order), and must not block.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from clipmesh.runtime.database import Database, SqliteDatabase
from clipmesh.runtime.postgres import PostgresDatabase

log = logging.getLogger(__name__)

Subscriber = Callable[[str], None]
"""Called with a notification's payload."""

RECONNECT_WAIT_S = (0.1, 0.5, 1.0, 2.0)


class Notifications:
    """Channels a replica hears; see the module docstring."""

    def __init__(self) -> None:
        self._subscribers: dict[str, list[Subscriber]] = {}
        self._reconnected: list[Callable[[], None]] = []

    def subscribe(self, channel: str, subscriber: Subscriber) -> None:
        """Calls `subscriber` for every notification on `channel` (subscribe before start)."""
        self._subscribers.setdefault(channel, []).append(subscriber)

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        """Calls `callback` after a gap in which notifications may have been missed."""
        self._reconnected.append(callback)

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def publish(self, channel: str, payload: str) -> None:
        """Sends a notification that is not part of a transaction (best effort: one lost to
        a dropped connection is not retried)."""
        raise NotImplementedError

    def _deliver(self, channel: str, payload: str) -> None:
        for subscriber in self._subscribers.get(channel, ()):
            try:
                subscriber(payload)
            except Exception:  # one subscriber's bug must not silence the others
                log.exception("a subscriber to %s failed on %r", channel, payload[:200])


class LocalNotifications(Notifications):
    """In-process delivery for SQLite's single replica."""

    def __init__(self, db: SqliteDatabase) -> None:
        super().__init__()
        self._db = db
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for channel in self._subscribers:
            self._db.listen(channel, self._committed)

    async def stop(self) -> None:
        self._loop = None

    async def publish(self, channel: str, payload: str) -> None:
        self._deliver(channel, payload)

    def _committed(self, channel: str, payload: str) -> None:
        # Called on the thread that committed; subscribers run on the loop.
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._deliver, channel, payload)


class PostgresNotifications(Notifications):
    """LISTEN on a dedicated connection, NOTIFY (for `publish`) on another."""

    def __init__(self, db: PostgresDatabase) -> None:
        super().__init__()
        self._db = db
        self._task: asyncio.Task | None = None
        self._sender = None
        self._send_lock = asyncio.Lock()
        self.connected = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._listen())
        with contextlib.suppress(TimeoutError):  # not fatal: the loop keeps trying
            await asyncio.wait_for(self.connected.wait(), 10)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sender is not None:
            with contextlib.suppress(Exception):
                await self._sender.close()

    async def publish(self, channel: str, payload: str) -> None:
        import psycopg

        async with self._send_lock:
            try:
                if self._sender is None or self._sender.closed:
                    self._sender = await self._connect()
                await self._sender.execute("SELECT pg_notify(%s, %s)", (channel, payload))
            except psycopg.Error as exc:
                log.debug("notification on %s not sent: %s", channel, exc)
                self._sender = None

    async def _connect(self):
        import psycopg

        target = self._db.target
        return await psycopg.AsyncConnection.connect(
            target.dsn,
            autocommit=True,
            connect_timeout=5,
            # A peer that vanished without closing is noticed within about half a minute.
            keepalives=1,
            keepalives_idle=10,
            keepalives_interval=5,
            keepalives_count=3,
            **target.connect_kwargs(),
        )

    async def _listen(self) -> None:
        import psycopg

        failures = 0
        while True:
            try:
                connection = await self._connect()
            except (psycopg.Error, OSError) as exc:
                wait_s = RECONNECT_WAIT_S[min(failures, len(RECONNECT_WAIT_S) - 1)]
                if failures == 0:
                    log.warning("notifications: cannot connect (%s); retrying", exc)
                failures += 1
                await asyncio.sleep(wait_s)
                continue
            try:
                async with connection:
                    for channel in self._subscribers:
                        await connection.execute(f'LISTEN "{channel}"')
                    if failures:
                        log.info("notifications: listening again after %d failures", failures)
                        for callback in self._reconnected:
                            callback()
                    failures = 0
                    self.connected.set()
                    async for notification in connection.notifies():
                        self._deliver(notification.channel, notification.payload)
            except (psycopg.Error, OSError) as exc:
                self.connected.clear()
                log.warning("notifications: connection lost (%s); reconnecting", exc)
                failures = max(failures, 1)


def notifications_for(db: Database) -> Notifications:
    """The notifications of `db`'s engine."""
    if isinstance(db, PostgresDatabase):
        return PostgresNotifications(db)
    assert isinstance(db, SqliteDatabase), db
    return LocalNotifications(db)
