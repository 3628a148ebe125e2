"""Opening a service's embedded SQLite store: durable settings and a versioned schema.

Every store commits each write before its caller hears of it (WAL, `synchronous=FULL`). The
schema's version is SQLite's `user_version`: a database from an older release is brought up
to date once, inside one transaction (so a crash half-way leaves the old version intact), and
a database newer than the code is refused with an error naming the file, rather than misread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

from clipmesh.runtime.server import StartupError

Upgrade = Callable[[sqlite3.Connection], None]


def open_store(
    path: Path, what: str, schema: str, version: int, upgrades: Sequence[Upgrade]
) -> sqlite3.Connection:
    """Opens (or creates) the database at `path` at schema `version`.

    Args:
        path: The database file; its directory is created.
        what: What the store holds, for errors ("job store").
        schema: `CREATE … IF NOT EXISTS` statements of the current schema.
        version: The current schema version.
        upgrades: What rewrites the rows of version n to version n + 1, for every n below
            `version` (run after the current schema's statements, in the same transaction).

    Raises:
        StartupError: The database is newer than this code, or has no upgrade path.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # check_same_thread=False: each store serialises its own use (a lock or one thread).
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    (found,) = db.execute("PRAGMA user_version").fetchone()
    if found > version:
        db.close()
        raise StartupError(
            f"{path}: the {what} has schema version {found}, newer than this release reads "
            f"({version}); run the release that wrote it"
        )
    if found == version:
        return db
    db.execute("BEGIN IMMEDIATE")  # executescript would commit half-way
    try:
        # A new file is created at the current version; only an existing one is upgraded.
        (tables,) = db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        if not tables:
            found = version
        for statement in filter(str.strip, schema.split(";")):
            db.execute(statement)
        for step in range(found, version):
            if step >= len(upgrades):
                raise StartupError(f"{path}: no upgrade of the {what} from version {step}")
            upgrades[step](db)
        db.execute(f"PRAGMA user_version = {version}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        db.close()
        raise
    return db
