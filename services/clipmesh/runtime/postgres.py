"""PostgreSQL behind `runtime.database.Database`: the database's address and password file,
a pool of connections shared by a replica's worker threads, and versioned migrations applied
under an advisory lock (see runtime/database.py for what stores may rely on)."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from clipmesh.runtime.database import POSTGRESQL, Database, Listener, Result, StoreUnavailable
from clipmesh.runtime.server import StartupError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatabaseTarget:
    """A PostgreSQL database: its DSN (never with a password) and the file holding the password.

    Attributes:
        dsn: `postgresql://user@host:port/dbname?options`.
        password_file: The password's file (re-read at each new connection); "" for none
            (trust, a .pgpass file or a client certificate in the DSN's options).
    """

    dsn: str
    password_file: Path | None = None

    @classmethod
    def parse(cls, dsn: str, password_file: Path | str = "", *, setting: str) -> DatabaseTarget:
        """Checks `dsn` (a ConfigError names `setting` when it is unusable)."""
        from clipmesh.runtime.config import ConfigError

        parts = urlsplit(dsn)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ConfigError(
                f"{setting}: {parts.scheme or dsn!r} is no database this service can use; give "
                "a postgresql://user@host:port/dbname DSN, or leave it empty for SQLite"
            )
        if parts.password is not None:
            raise ConfigError(
                f"{setting}: the DSN carries a password; put it in a file (a mounted Secret) "
                "named by the _PASSWORD_FILE setting instead"
            )
        if not parts.hostname or not parts.path.strip("/"):
            raise ConfigError(f"{setting}: the DSN needs a host and a database name")
        password = Path(password_file) if str(password_file) not in ("", ".") else None
        if password is not None and not password.is_file():
            raise ConfigError(f"{setting}_PASSWORD_FILE: no file {password}")
        return cls(dsn, password)

    @property
    def display(self) -> str:
        """The DSN as logs may show it (no options: they may carry key paths)."""
        parts = urlsplit(self.dsn)
        user = parts.username or ""
        return f"{parts.scheme}://{user}@{parts.hostname}:{parts.port or 5432}{parts.path}"

    def connect_kwargs(self) -> dict[str, Any]:
        if self.password_file is None:
            return {}
        return {"password": self.password_file.read_text(encoding="utf-8").strip()}


@dataclass(frozen=True)
class Migration:
    """One step of a PostgreSQL schema: the statements that bring version n − 1 to n."""

    version: int
    sql: str


@dataclass
class _Local(threading.local):
    connection: Any = None
    depth: int = 0
    pending: list = field(default_factory=list)


class PostgresDatabase(Database):
    """A pool of connections to one PostgreSQL database shared by the service's replicas.

    Args:
        target: The database.
        what: What the store holds ("job store"), for errors and the schema's row.
        migrations: Every migration of this store, from version 1 on.
        pool_size: Connections at most.
        connect_timeout_s: How long a statement waits for a connection before it fails.
    """

    dialect = POSTGRESQL

    def __init__(
        self,
        target: DatabaseTarget,
        what: str,
        migrations: Sequence[Migration],
        *,
        pool_size: int = 8,
        connect_timeout_s: float = 5.0,
    ) -> None:
        import psycopg_pool

        self.what = what
        self.target = target
        self._local = _Local()
        self._pool = psycopg_pool.ConnectionPool(
            target.dsn,
            kwargs=lambda: {"autocommit": True, **target.connect_kwargs()},
            min_size=1,
            max_size=pool_size,
            timeout=connect_timeout_s,
            # A connection a restarted server dropped is found out before it is handed over.
            check=psycopg_pool.ConnectionPool.check_connection,
            reconnect_timeout=0,  # keep trying while the database is away; never give up
            open=False,
            name=f"clipmesh-{what.replace(' ', '-')}",
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout_s)
        except psycopg_pool.PoolTimeout as exc:
            self._pool.close()
            raise StartupError(
                f"cannot reach the {what}'s database {target.display} within "
                f"{connect_timeout_s:g} s: {_why_not(target)}"
            ) from exc
        try:
            self._migrate(migrations)
        except BaseException:
            self._pool.close()
            raise

    # Statements and transactions.

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Result:
        local = self._local
        if local.connection is not None:
            return self._run(local.connection, sql, params)
        with self._connection() as connection:
            return self._run(connection, sql, params)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        local = self._local
        if local.connection is not None:
            local.depth += 1
            try:
                yield
            finally:
                local.depth -= 1
            return
        with self._connection() as connection:
            local.connection, local.depth, local.pending = connection, 1, []
            try:
                with _unavailable(self), connection.transaction():
                    yield
            finally:
                local.connection, local.depth, local.pending = None, 0, []

    def lock(self, name: str) -> None:
        self.execute("SELECT pg_advisory_xact_lock(?)", (_lock_key(self.what, name),))

    def notify(self, channel: str, payload: str) -> None:
        self.execute("SELECT pg_notify(?, ?)", (channel, payload))

    def listen(self, channel: str, listener: Listener) -> None:
        raise TypeError("PostgreSQL notifications are heard through runtime.notifications")

    def close(self) -> None:
        self._pool.close()

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Any]:
        import psycopg_pool

        try:
            with self._pool.connection() as connection:
                yield connection
        except psycopg_pool.PoolTimeout as exc:
            raise StoreUnavailable(
                f"the {self.what}'s database is out of reach (no connection within "
                f"{self._pool.timeout:g} s); try again shortly"
            ) from exc

    def _run(self, connection: Any, sql: str, params: Sequence[Any]) -> Result:
        with _unavailable(self):
            cursor = connection.execute(_placeholders(sql), tuple(params) or None)
            rows = cursor.fetchall() if cursor.description is not None else []
            return Result(rows, cursor.rowcount)

    # Schema.

    def _migrate(self, migrations: Sequence[Migration]) -> None:
        latest = len(migrations)
        assert [m.version for m in migrations] == list(range(1, latest + 1)), migrations
        with self._connection() as connection:
            # A session lock, held across the migrations' transactions: the other replicas
            # starting now wait here, then find the schema current.
            key = _lock_key("clipmesh_schema", self.what)
            started = time.monotonic()
            connection.execute("SELECT pg_advisory_lock(%s)", (key,))
            waited_s = time.monotonic() - started
            try:
                connection.execute(
                    "CREATE TABLE IF NOT EXISTS clipmesh_schema ("
                    " store TEXT PRIMARY KEY, version INTEGER NOT NULL,"
                    " updated_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
                row = connection.execute(
                    "SELECT version FROM clipmesh_schema WHERE store = %s", (self.what,)
                ).fetchone()
                found = row[0] if row else 0
                if found > latest:
                    raise StartupError(
                        f"{self.target.display}: the {self.what} has schema version {found}, "
                        f"newer than this release reads ({latest}); run the release that wrote "
                        "it, or a newer one"
                    )
                for migration in migrations[found:]:
                    with connection.transaction():
                        connection.execute(migration.sql)
                        connection.execute(
                            "INSERT INTO clipmesh_schema (store, version) VALUES (%s, %s)"
                            " ON CONFLICT (store) DO UPDATE SET version = EXCLUDED.version,"
                            " updated_at = now()",
                            (self.what, migration.version),
                        )
                    log.info(
                        "%s: %s schema migrated to version %d",
                        self.target.display,
                        self.what,
                        migration.version,
                    )
                if found == latest and waited_s > 0.5:
                    log.info("%s: schema current after waiting %.1f s", self.what, waited_s)
            finally:
                connection.execute("SELECT pg_advisory_unlock(%s)", (key,))


def _placeholders(sql: str) -> str:
    """`?` → `%s` for psycopg (the stores write no `%` and no `?` inside literals)."""
    return sql.replace("?", "%s")


def _lock_key(scope: str, name: str) -> int:
    """A stable signed 64-bit advisory-lock key for `name` within `scope`."""
    high = zlib.crc32(scope.encode())
    low = zlib.crc32(name.encode())
    key = (high << 32) | low
    return key - (1 << 64) if key >= 1 << 63 else key


@contextlib.contextmanager
def _unavailable(database: Database) -> Iterator[None]:
    """Turns a lost connection into StoreUnavailable (other database errors pass through)."""
    import psycopg

    try:
        yield
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(
            f"the {database.what}'s database failed: {str(exc).strip().splitlines()[0]}; "
            "nothing was committed, try again shortly"
        ) from exc


def _why_not(target: DatabaseTarget) -> str:
    """What one direct connection attempt answers (the pool only says it timed out): a refused
    connection, a wrong password, a database that does not exist."""
    import psycopg

    try:
        psycopg.connect(target.dsn, connect_timeout=3, **target.connect_kwargs()).close()
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]
    except OSError as exc:  # the password file went away
        return f"{target.password_file}: {exc.strerror}"
    return "it answered only now; is it overloaded?"
