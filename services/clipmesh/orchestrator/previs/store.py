"""The durable project record: one SQLite database under the orchestrator's data dir.

A project is stored as its `Project` protobuf without shots, plus one row per shot holding
that shot's `Shot` protobuf (every revision and clip inside it), so recording one shot's
progress rewrites that shot alone. The script's text and each shot's reference image are kept
too: a later revision rebuilds its prompt from them. Every write commits before the caller
hears of it (WAL, `synchronous=FULL`), so a restart loses nothing that was reported.

Writes are small (one shot) and synchronous; the engine serialises them per project.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from clipmesh_api.orchestrator.v1 import previs_pb2

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


class ProjectNotFound(KeyError):
    """No project has this id."""


class ProjectStore:
    """Projects by id, durable across restarts.

    Args:
        path: The database file; its directory is created.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by the event loop and worker threads, guarded by a lock.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def create(
        self,
        project: previs_pb2.Project,
        script: str,
        reference_images: dict[str, bytes],
    ) -> None:
        """Stores a new project with its shots (in `project.shots`) in one transaction."""
        header = _without_shots(project)
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute(
                    "INSERT INTO projects (project_id, state, script, project) VALUES (?, ?, ?, ?)",
                    (project.project_id, project.state, script, header.SerializeToString()),
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
                            shot.SerializeToString(),
                        )
                        for shot in project.shots
                    ],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def save_header(self, project: previs_pb2.Project) -> None:
        """Records everything about `project` except its shots (state, cut, notices)."""
        with self._lock:
            updated = self._db.execute(
                "UPDATE projects SET state = ?, project = ? WHERE project_id = ?",
                (project.state, _without_shots(project).SerializeToString(), project.project_id),
            ).rowcount
        if not updated:
            raise ProjectNotFound(project.project_id)

    def save_shot(self, project_id: str, shot: previs_pb2.Shot) -> None:
        """Records one shot as it stands."""
        with self._lock:
            updated = self._db.execute(
                "UPDATE shots SET shot = ? WHERE project_id = ? AND shot_id = ?",
                (shot.SerializeToString(), project_id, shot.shot_id),
            ).rowcount
        if not updated:
            raise ProjectNotFound(f"{project_id}/{shot.shot_id}")

    def load(self, project_id: str) -> previs_pb2.Project:
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
        project = previs_pb2.Project.FromString(row[0])
        for (blob,) in shots:
            project.shots.add().ParseFromString(blob)
        return project

    def reference_image(self, project_id: str, shot_id: str) -> bytes | None:
        """The shot's reference image, when it has one."""
        with self._lock:
            row = self._db.execute(
                "SELECT reference_image FROM shots WHERE project_id = ? AND shot_id = ?",
                (project_id, shot_id),
            ).fetchone()
        return None if row is None else row[0]

    def list_ids(self, state: int | None = None) -> list[str]:
        """Every project id, oldest first (optionally only those in `state`)."""
        query, args = "SELECT project_id FROM projects", ()
        if state is not None:
            query, args = query + " WHERE state = ?", (state,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY seq", args).fetchall()
        return [project_id for (project_id,) in rows]


def _without_shots(project: previs_pb2.Project) -> previs_pb2.Project:
    header = previs_pb2.Project()
    header.CopyFrom(project)
    del header.shots[:]
    return header
