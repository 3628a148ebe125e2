"""The durable project record: one SQLite database under previs's data dir.

A project is stored as JSON of its record without shots, plus one row per shot holding that
shot's record (every revision and clip inside it), so recording one shot's progress rewrites
that shot alone. The script's text and each shot's reference image are kept too: a later
revision rebuilds its prompt from them. Every write commits before the caller hears of it (WAL,
`synchronous=FULL`), so a restart loses nothing that was reported.

The schema's version is SQLite's `user_version`. Version 0 (releases up to 0.1) kept the API's
protobuf bytes; opening such a database converts every row once, in one transaction. A
database newer than this code is refused rather than misread.

Writes are small (one shot) and synchronous; the engine serialises them per project.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from pathlib import Path

import msgspec

from clipmesh.previs.records import Project, ProjectState, Shot
from clipmesh.runtime.messages import from_message
from clipmesh.runtime.sqlite import open_store
from clipmesh_api.orchestrator.v1 import previs_pb2

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id TEXT NOT NULL UNIQUE,
    state INTEGER NOT NULL,
    script TEXT NOT NULL,
    project BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS shots (
    project_id TEXT NOT NULL,
    shot_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    reference_image BLOB,
    shot BLOB NOT NULL,
    PRIMARY KEY (project_id, shot_id)
);
"""
# The `state` column keeps the numbers version 0 wrote, so start-up lists running projects
# without reading any project.
_STATE_CODES = {ProjectState.RUNNING: 1, ProjectState.DONE: 2, ProjectState.INTERRUPTED: 3}


class ProjectNotFound(KeyError):
    """No project has this id."""


class ProjectStore:
    """Projects by id, durable across restarts.

    Args:
        path: The database file; its directory is created.

    Raises:
        StartupError: The database was written by a newer release.
    """

    def __init__(self, path: Path) -> None:
        upgrades = [_convert_protobuf_rows]  # version 0 kept protobuf bytes
        self._db = open_store(path, "project store", _SCHEMA, SCHEMA_VERSION, upgrades)
        # One connection shared by the event loop and worker threads, guarded by a lock.
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def create(self, project: Project, script: str, reference_images: dict[str, bytes]) -> None:
        """Stores a new project with its shots (in `project.shots`) in one transaction."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute(
                    "INSERT INTO projects (project_id, state, script, project) VALUES (?, ?, ?, ?)",
                    (
                        project.project_id,
                        _STATE_CODES[project.state],
                        script,
                        _header_json(project),
                    ),
                )
                self._db.executemany(
                    "INSERT INTO shots (project_id, shot_id, position, reference_image, shot) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [
                        (
                            project.project_id,
                            shot.shot_id,
                            shot.order,
                            reference_images.get(shot.shot_id),
                            msgspec.json.encode(shot),
                        )
                        for shot in project.shots
                    ],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def save_header(self, project: Project) -> None:
        """Records everything about `project` except its shots (state, cut, notices)."""
        with self._lock:
            updated = self._db.execute(
                "UPDATE projects SET state = ?, project = ? WHERE project_id = ?",
                (_STATE_CODES[project.state], _header_json(project), project.project_id),
            ).rowcount
        if not updated:
            raise ProjectNotFound(project.project_id)

    def save_shot(self, project_id: str, shot: Shot) -> None:
        """Records one shot as it stands."""
        with self._lock:
            updated = self._db.execute(
                "UPDATE shots SET shot = ? WHERE project_id = ? AND shot_id = ?",
                (msgspec.json.encode(shot), project_id, shot.shot_id),
            ).rowcount
        if not updated:
            raise ProjectNotFound(f"{project_id}/{shot.shot_id}")

    def load(self, project_id: str) -> Project:
        """The project with its shots in cut order.

        Raises:
            ProjectNotFound: No project has this id.
        """
        with self._lock:
            row = self._db.execute(
                "SELECT project FROM projects WHERE project_id = ?", (project_id,)
            ).fetchone()
            if row is None:
                raise ProjectNotFound(project_id)
            shots = self._db.execute(
                "SELECT shot FROM shots WHERE project_id = ? ORDER BY position", (project_id,)
            ).fetchall()
        project = msgspec.json.decode(row[0], type=Project)
        project.shots = [msgspec.json.decode(blob, type=Shot) for (blob,) in shots]
        return project

    def reference_image(self, project_id: str, shot_id: str) -> bytes | None:
        """The shot's reference image, when it has one."""
        with self._lock:
            row = self._db.execute(
                "SELECT reference_image FROM shots WHERE project_id = ? AND shot_id = ?",
                (project_id, shot_id),
            ).fetchone()
        return None if row is None else row[0]

    def list_ids(self, state: ProjectState | None = None) -> list[str]:
        """Every project id, oldest first (optionally only those in `state`)."""
        query, args = "SELECT project_id FROM projects", ()
        if state is not None:
            query, args = query + " WHERE state = ?", (_STATE_CODES[state],)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY seq", args).fetchall()
        return [project_id for (project_id,) in rows]


def _header_json(project: Project) -> bytes:
    return msgspec.json.encode(dataclasses.replace(project, shots=[]))


def _convert_protobuf_rows(db: sqlite3.Connection) -> None:
    """Rewrites version 0's protobuf rows as JSON records (inside the caller's transaction)."""
    for project_id, blob in db.execute("SELECT project_id, project FROM projects").fetchall():
        header = from_message(previs_pb2.Project.FromString(blob), Project)
        db.execute(
            "UPDATE projects SET project = ? WHERE project_id = ?",
            (_header_json(header), project_id),
        )
    for project_id, shot_id, blob in db.execute(
        "SELECT project_id, shot_id, shot FROM shots"
    ).fetchall():
        shot = from_message(previs_pb2.Shot.FromString(blob), Shot)
        db.execute(
            "UPDATE shots SET shot = ? WHERE project_id = ? AND shot_id = ?",
            (msgspec.json.encode(shot), project_id, shot_id),
        )
