"""runtime/database.py on both engines: transactions commit together or not at all, advisory
locks serialise replicas, notifications go out only with their commit, migrations run once
however many replicas start at once, a newer schema is refused, and a database that goes away
is an UNAVAILABLE error until it is back. PostgreSQL is a real server (tests/postgres.py)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from clipmesh.runtime.config import ConfigError
from clipmesh.runtime.database import Database, SqliteDatabase, StoreUnavailable
from clipmesh.runtime.postgres import DatabaseTarget, Migration, PostgresDatabase
from clipmesh.runtime.server import StartupError
from tests.postgres import PostgresServer
from tests.support import skip_unless_ci

pytestmark = pytest.mark.timeout(120)

SQLITE_SCHEMA = "CREATE TABLE IF NOT EXISTS items (name TEXT PRIMARY KEY, n INTEGER NOT NULL)"
MIGRATIONS = [
    Migration(1, "CREATE TABLE items (name TEXT PRIMARY KEY, n INTEGER NOT NULL)"),
    Migration(2, "CREATE TABLE migrated (at DOUBLE PRECISION); INSERT INTO migrated VALUES (1)"),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "sqlite":
        db = SqliteDatabase(tmp_path / "test.sqlite3", "test store", SQLITE_SCHEMA, 1)
    else:
        target = request.getfixturevalue("postgres_database")
        db = PostgresDatabase(target, "test store", MIGRATIONS, pool_size=4)
    yield db
    db.close()


def test_a_transaction_commits_everything_or_nothing(database: Database) -> None:
    with database.transaction():
        database.execute("INSERT INTO items (name, n) VALUES (?, ?)", ("a", 1))
        with database.transaction():  # joins the outer one
            database.execute("INSERT INTO items (name, n) VALUES (?, ?)", ("b", 2))
    with pytest.raises(ZeroDivisionError), database.transaction():
        database.execute("INSERT INTO items (name, n) VALUES (?, ?)", ("c", 3))
        _ = 1 / 0
    rows = database.execute("SELECT name, n FROM items ORDER BY name").fetchall()
    assert rows == [("a", 1), ("b", 2)]
    changed = database.execute("UPDATE items SET n = n + 1 WHERE name != ?", ("zzz",))
    assert changed.rowcount == 2
    conflict = "INSERT INTO items (name, n) VALUES (?, ?) ON CONFLICT (name) DO NOTHING"
    assert database.execute(conflict, ("a", 9)).rowcount == 0


def test_a_lock_serialises_read_modify_write_across_connections(database: Database) -> None:
    database.execute("INSERT INTO items (name, n) VALUES ('counter', 0)")

    def bump() -> None:
        with database.transaction():
            database.lock("counter")
            (n,) = database.execute("SELECT n FROM items WHERE name = 'counter'").fetchone()
            time.sleep(0.02)  # another connection would read the same n here, unlocked
            database.execute("UPDATE items SET n = ? WHERE name = 'counter'", (n + 1,))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: bump(), range(12)))
    assert database.execute("SELECT n FROM items WHERE name = 'counter'").fetchone() == (12,)


def test_sqlite_notifications_are_heard_after_commit_only(tmp_path: Path) -> None:
    database = SqliteDatabase(tmp_path / "n.sqlite3", "test store", SQLITE_SCHEMA, 1)
    heard: list[tuple[str, str]] = []
    database.listen("jobs", lambda channel, payload: heard.append((channel, payload)))
    with database.transaction():
        database.notify("jobs", "one")
        assert heard == []  # not before the commit
    with pytest.raises(RuntimeError), database.transaction():
        database.notify("jobs", "rolled back")
        raise RuntimeError
    database.notify("jobs", "two")
    assert heard == [("jobs", "one"), ("jobs", "two")]


def test_replicas_starting_at_once_migrate_once(postgres_database: DatabaseTarget) -> None:
    barrier = threading.Barrier(5)

    def start() -> PostgresDatabase:
        barrier.wait()
        return PostgresDatabase(postgres_database, "test store", MIGRATIONS, pool_size=2)

    with ThreadPoolExecutor(5) as pool:
        replicas = list(pool.map(lambda _: start(), range(5)))
    try:
        db = replicas[0]
        assert db.execute("SELECT COUNT(*) FROM migrated").fetchone() == (1,)
        version = db.execute("SELECT version FROM clipmesh_schema WHERE store = 'test store'")
        assert version.fetchone() == (2,)
    finally:
        for replica in replicas:
            replica.close()


def test_a_database_newer_than_the_code_is_refused(postgres_database: DatabaseTarget) -> None:
    PostgresDatabase(postgres_database, "test store", MIGRATIONS).close()
    newer = r"schema version 2, newer than this release reads \(1\)"
    with pytest.raises(StartupError, match=newer):
        PostgresDatabase(postgres_database, "test store", MIGRATIONS[:1])


def test_an_unreachable_database_stops_start_up_with_its_name(tmp_path: Path) -> None:
    from tests.conftest import distinct_free_port

    target = DatabaseTarget(f"postgresql://nobody@127.0.0.1:{distinct_free_port()}/none")
    started = time.monotonic()
    with pytest.raises(StartupError, match=r"cannot reach the test store's database"):
        PostgresDatabase(target, "test store", MIGRATIONS)
    assert time.monotonic() - started < 30


def test_a_wrong_password_stops_start_up_saying_so(postgres_database: DatabaseTarget) -> None:
    postgres_database.password_file.write_text("not-the-password\n")
    with pytest.raises(StartupError, match=r"password authentication failed"):
        PostgresDatabase(postgres_database, "test store", MIGRATIONS, connect_timeout_s=1)


def test_a_missing_password_file_is_refused_naming_the_setting(tmp_path: Path) -> None:
    dsn = "postgresql://clipmesh@db.example/clipmesh"
    with pytest.raises(ConfigError, match=r"CLIPMESH_PREVIS_STORE_PASSWORD_FILE: no file"):
        DatabaseTarget.parse(dsn, tmp_path / "absent", setting="CLIPMESH_PREVIS_STORE")


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("mysql://db/clipmesh", "no database this service can use"),
        ("postgresql://u:secret@db/clipmesh", "carries a password"),
        ("postgresql://u@db", "needs a host and a database name"),
    ],
)
def test_unusable_dsns_are_refused_naming_the_setting(dsn: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as refused:
        DatabaseTarget.parse(dsn, setting="CLIPMESH_GENERATOR_STORE")
    assert "CLIPMESH_GENERATOR_STORE" in str(refused.value)
    assert "secret" not in str(refused.value)


def test_a_rotated_password_is_read_at_the_next_connection(
    postgres_server: PostgresServer, postgres_database: DatabaseTarget
) -> None:
    db = PostgresDatabase(postgres_database, "test store", MIGRATIONS, pool_size=2)
    try:
        role = postgres_database.dsn.rsplit("/", 1)[1]
        with psycopg.connect(postgres_server.admin_dsn, autocommit=True) as admin:
            admin.execute(f"ALTER ROLE {role} PASSWORD 'rotated-password'")
        postgres_database.password_file.write_text("rotated-password\n")
        with psycopg.connect(postgres_server.admin_dsn, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (role,),
            )
        deadline = time.monotonic() + 20
        while not db.ping():
            assert time.monotonic() < deadline, "no new connection with the rotated password"
            time.sleep(0.1)
        assert db.execute("SELECT current_user").fetchone() == (role,)
    finally:
        db.close()


def test_a_restarted_server_is_unavailable_then_serves_again(
    postgres_server: PostgresServer, postgres_database: DatabaseTarget
) -> None:
    if not postgres_server.local:
        skip_unless_ci("stopping the server needs the local one, not CLIPMESH_TEST_POSTGRES_DSN")
    db = PostgresDatabase(postgres_database, "test store", MIGRATIONS, pool_size=2)
    try:
        db.execute("INSERT INTO items (name, n) VALUES ('kept', 1)")
        postgres_server.stop()
        try:
            with pytest.raises(StoreUnavailable) as refused:
                db.execute("SELECT n FROM items")
            assert refused.value.reason == "STORE_UNAVAILABLE"
            assert "test store" in str(refused.value)
        finally:
            postgres_server.start()
        deadline = time.monotonic() + 30
        while not db.ping():
            assert time.monotonic() < deadline, "the pool never reconnected"
            time.sleep(0.2)
        assert db.execute("SELECT n FROM items WHERE name = 'kept'").fetchone() == (1,)
    finally:
        db.close()
