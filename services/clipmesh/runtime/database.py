"""One way for a stateful service to reach its database: embedded SQLite or shared PostgreSQL.

A service with durable state (the generator's jobs, previs's projects) keeps it in SQLite under
its data dir by default (one replica, nothing to run), or in PostgreSQL when its `store`
setting names a database (several replicas share it). Its store code is written once against
`Database`: statements use `?` placeholders (translated for psycopg), portable SQL
(`INSERT … ON CONFLICT`), `db.dialect.now` where the database's clock must decide (leases:
replicas' clocks may disagree, the database's is the one they share).

`Database.transaction()` makes every statement a thread runs inside it commit together or not
at all; `execute()` outside a transaction commits at once. Store code runs on worker threads
(never on the event loop): SQLite serialises them on one connection, PostgreSQL gives each
thread a pooled connection.

Within a transaction:
- `lock(name)` serialises a critical section across replicas (a PostgreSQL advisory lock held
  to the end of the transaction; SQLite's `BEGIN IMMEDIATE` already serialises writers);
- `notify(channel, payload)` is heard by every replica's `listen()` once the transaction
  commits, never before and never if it rolls back (PostgreSQL NOTIFY; in-process for SQLite).

A database that cannot be reached raises `StoreUnavailable` (UNAVAILABLE, retryable), so a
caller is told the state is out of reach rather than an internal error.

Schemas are versioned per store. SQLite keeps `user_version` (runtime/sqlite.py); PostgreSQL
keeps a `clipmesh_schema` row per store and applies the missing migrations under an advisory
lock, so of several replicas starting at once one migrates and the others wait, then find the
schema current. A database newer than the code is refused at start-up, naming both versions.

This module holds the interface and SQLite; PostgreSQL (its address, pool and migrations) is
runtime/postgres.py.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clipmesh.runtime.errors import Unavailable
from clipmesh.runtime.sqlite import Upgrade, open_store

if TYPE_CHECKING:  # postgres.py builds on this module
    from clipmesh.runtime.postgres import DatabaseTarget, Migration

log = logging.getLogger(__name__)

Listener = Callable[[str, str], None]
"""Called with (channel, payload) for each notification heard."""


class StoreUnavailable(Unavailable):
    """The service's database cannot be reached (or failed mid-transaction): nothing was
    committed; the call may be retried."""

    default_reason = "STORE_UNAVAILABLE"


@dataclass(frozen=True)
class Dialect:
    """What differs between the two databases in the SQL the stores write.

    Attributes:
        name: "sqlite" or "postgresql".
        now: An expression for the database's clock in Unix seconds.
    """

    name: str
    now: str


SQLITE = Dialect("sqlite", "((julianday('now') - 2440587.5) * 86400.0)")
POSTGRESQL = Dialect("postgresql", "extract(epoch from clock_timestamp())::double precision")


class Result:
    """A statement's rows (read in full) and how many rows it changed."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[tuple], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> tuple | None:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[tuple]:
        return self._rows

    def __iter__(self) -> Iterator[tuple]:
        return iter(self._rows)


class Database:
    """A store's database; see the module docstring. Methods are called from worker threads."""

    dialect: Dialect
    what: str

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Result:
        raise NotImplementedError

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError

    def lock(self, name: str) -> None:
        """Holds `name` until the current transaction ends (no other replica holds it)."""

    def notify(self, channel: str, payload: str) -> None:
        raise NotImplementedError

    def listen(self, channel: str, listener: Listener) -> None:
        """Calls `listener` (on any thread) for every notification on `channel` committed from
        now on, by any replica. For PostgreSQL, `Notifications` (runtime/notifications.py)
        does the listening; here only in-process notifications are delivered."""
        raise NotImplementedError

    @property
    def shared(self) -> bool:
        """Whether other replicas may share this database."""
        return self.dialect is POSTGRESQL

    def ping(self) -> bool:
        """Whether the database answers now."""
        try:
            self.execute("SELECT 1")
        except StoreUnavailable:
            return False
        return True

    def close(self) -> None:
        raise NotImplementedError


class SqliteDatabase(Database):
    """One SQLite file, one connection, one lock: statements of concurrent threads never
    interleave, and a transaction holds the lock from BEGIN IMMEDIATE to COMMIT."""

    dialect = SQLITE

    def __init__(
        self, path: Path, what: str, schema: str, version: int, upgrades: Sequence[Upgrade] = ()
    ) -> None:
        self.what = what
        self.path = path
        self._db = open_store(path, what, schema, version, upgrades)
        self._lock = threading.RLock()
        self._depth = 0
        self._pending: list[tuple[str, str]] = []
        self._listeners: dict[str, list[Listener]] = {}

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Result:
        with self._lock:
            cursor = self._db.execute(sql, tuple(params))
            return Result(cursor.fetchall(), cursor.rowcount)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            if self._depth:  # joins the transaction this thread has open
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                self._pending.clear()
                raise
            finally:
                self._depth = 0
            self._db.execute("COMMIT")
            pending, self._pending = self._pending, []
        for channel, payload in pending:
            for listener in self._listeners.get(channel, ()):
                listener(channel, payload)

    def notify(self, channel: str, payload: str) -> None:
        with self.transaction():
            self._pending.append((channel, payload))

    def listen(self, channel: str, listener: Listener) -> None:
        self._listeners.setdefault(channel, []).append(listener)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_database(
    target: DatabaseTarget | None,
    *,
    sqlite_path: Path,
    what: str,
    sqlite_schema: str,
    sqlite_version: int,
    sqlite_upgrades: Sequence[Upgrade] = (),
    migrations: Sequence[Migration] = (),
    pool_size: int = 8,
) -> Database:
    """The store's database: PostgreSQL when `target` names one, else SQLite at `sqlite_path`."""
    if target is None:
        return SqliteDatabase(sqlite_path, what, sqlite_schema, sqlite_version, sqlite_upgrades)
    from clipmesh.runtime.postgres import PostgresDatabase  # imports this module

    return PostgresDatabase(target, what, migrations, pool_size=pool_size)
