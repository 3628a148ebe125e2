"""The services' embedded stores open through one function: durable settings, a versioned
schema brought up to date once, and databases from newer releases refused."""

from __future__ import annotations

import sqlite3

import pytest

from clipmesh.runtime.server import StartupError
from clipmesh.runtime.sqlite import open_store

SCHEMA = "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)"


def _upper_case_bodies(db: sqlite3.Connection) -> None:
    db.execute("UPDATE notes SET body = upper(body)")


def test_an_old_database_is_upgraded_once_and_a_new_one_starts_at_the_current_version(
    tmp_path,
) -> None:
    old = tmp_path / "old.sqlite3"
    legacy = sqlite3.connect(old)
    legacy.executescript(SCHEMA + "; INSERT INTO notes (body) VALUES ('written by 0.1')")
    legacy.commit()
    legacy.close()
    for _ in range(2):  # the second open finds version 1 and upgrades nothing again
        db = open_store(old, "note store", SCHEMA, 1, [_upper_case_bodies])
        assert db.execute("SELECT body FROM notes").fetchall() == [("WRITTEN BY 0.1",)]
        assert db.execute("PRAGMA user_version").fetchone() == (1,)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        db.close()
    fresh = open_store(tmp_path / "new.sqlite3", "note store", SCHEMA, 1, [_upper_case_bodies])
    assert fresh.execute("SELECT count(*) FROM notes").fetchone() == (0,)


def test_a_failed_upgrade_leaves_the_old_version_intact(tmp_path) -> None:
    path = tmp_path / "notes.sqlite3"
    sqlite3.connect(path).executescript(SCHEMA + "; INSERT INTO notes (body) VALUES ('kept')")

    def broken(db: sqlite3.Connection) -> None:
        db.execute("UPDATE notes SET body = 'half-way'")
        raise ValueError("the upgrade failed")

    with pytest.raises(ValueError, match="the upgrade failed"):
        open_store(path, "note store", SCHEMA, 1, [broken])
    untouched = sqlite3.connect(path)
    assert untouched.execute("SELECT body FROM notes").fetchall() == [("kept",)]
    assert untouched.execute("PRAGMA user_version").fetchone() == (0,)


def test_a_database_from_a_newer_release_is_refused_not_misread(tmp_path) -> None:
    path = tmp_path / "notes.sqlite3"
    newer = sqlite3.connect(path)
    newer.execute("PRAGMA user_version = 2")
    newer.close()
    with pytest.raises(StartupError, match="newer than this release"):
        open_store(path, "note store", SCHEMA, 1, [_upper_case_bodies])
