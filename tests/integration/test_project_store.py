"""The previs project store, on SQLite and on a real PostgreSQL server alike: projects survive
a reopen, one shot is rewritten alone, one run of a project at a time across replicas, runs
taken over when their replica's lease lapses or it releases them, a lost run's writes refused;
SQLite stores of earlier releases are converted once, and the note chain behind a revision
follows `based_on` (so a restored revision is revised from)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from clipmesh.previs.planning import note_chain
from clipmesh.previs.records import (
    Clip,
    Cut,
    Project,
    ProjectState,
    QualityScores,
    Shot,
    ShotRevision,
    ShotState,
)
from clipmesh.previs.store import (
    SCHEMA_VERSION,
    ProjectNotFound,
    ProjectStore,
    RunLost,
    RunSpec,
    open_project_database,
)
from clipmesh.runtime.messages import to_message
from clipmesh_api.orchestrator.v1 import previs_pb2


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request):
    """None for SQLite, else a fresh PostgreSQL database."""
    return None if request.param == "sqlite" else request.getfixturevalue("postgres_database")


def _open(tmp_path: Path, target, owner: str = "previs") -> ProjectStore:
    return ProjectStore(open_project_database(tmp_path, target, pool_size=4), owner=owner)


def _project() -> Project:
    shots = [
        Shot(shot_id=f"s{order + 1:03d}", order=order, description=f"shot {order}")
        for order in range(3)
    ]
    return Project(project_id="p1", title="雨中咖啡馆", shots=shots)


def test_a_project_survives_a_reopen_with_its_shots_in_order(tmp_path: Path, target) -> None:
    store = _open(tmp_path, target)
    store.create(_project(), "script text", {"s002": b"\x89PNG..."}, RunSpec())
    shot = store.load("p1").shots[1]
    shot.revisions.append(ShotRevision(revision=1, prompt="p", selected_clip=-1))
    shot.state = ShotState.READY
    store.save_shot("p1", shot)
    store.close()
    reopened = _open(tmp_path, target)
    project = reopened.load("p1")
    assert [s.shot_id for s in project.shots] == ["s001", "s002", "s003"]
    assert project.shots[1].state == ShotState.READY
    assert project.shots[1].revisions[0].prompt == "p"
    assert project.shots[0].state == ShotState.PENDING
    assert reopened.reference_image("p1", "s002") == b"\x89PNG..."
    assert reopened.reference_image("p1", "s001") is None


def test_headers_and_states_are_listed_and_unknown_ids_are_refused(tmp_path: Path, target):
    store = _open(tmp_path, target)
    project = _project()
    project.state = ProjectState.RUNNING
    store.create(project, "", {})
    assert store.list_ids(ProjectState.RUNNING) == ["p1"]
    project.state = ProjectState.DONE
    store.save_header(project)
    assert store.list_ids(ProjectState.RUNNING) == []
    assert len(store.load("p1").shots) == 3  # the header write leaves the shots alone
    with pytest.raises(ProjectNotFound):
        store.load("nope")
    with pytest.raises((ProjectNotFound, RunLost)):
        store.save_shot("nope", project.shots[0])


def test_a_failed_create_leaves_nothing_behind(tmp_path: Path, target) -> None:
    store = _open(tmp_path, target)
    project = _project()
    project.shots[2].shot_id = "s001"  # a duplicate id breaks the insert half-way
    with pytest.raises(Exception, match=r"(?i)unique"):
        store.create(project, "", {})
    with pytest.raises(ProjectNotFound):
        store.load("p1")


def _finished_project() -> Project:
    project = _project()
    project.state = ProjectState.DONE
    project.create_time_s = 1_700_000_000.5
    project.notices = ["text_match is reported but not enforced"]
    project.cut = Cut("file:///cut.mp4", "file:///cut.otio", 9.5, 1_700_000_100.25)
    clip = Clip(
        uri="file:///c.mp4",
        seed=42,
        scores=QualityScores(sharpness=120.5, passed=True, failures=[]),
        consistency=0.71,
        prompt="雨夜，咖啡馆",
    )
    project.shots[0].revisions.append(
        ShotRevision(revision=1, clips=[clip], selected_clip=0, create_time_s=1_700_000_050.75)
    )
    project.shots[0].state = ShotState.READY
    project.shots[0].current_revision = 1
    return project


def test_a_store_written_by_the_protobuf_release_is_converted_once(tmp_path: Path) -> None:
    path = tmp_path / "previs.sqlite3"
    project = _finished_project()
    # What releases up to 0.1 wrote: the API's protobuf bytes, schema version 0.
    legacy = sqlite3.connect(path)
    legacy.executescript(
        """
        CREATE TABLE projects (seq INTEGER PRIMARY KEY AUTOINCREMENT,
            project_id TEXT NOT NULL UNIQUE, state INTEGER NOT NULL, script TEXT NOT NULL,
            project BLOB NOT NULL);
        CREATE TABLE shots (project_id TEXT NOT NULL, shot_id TEXT NOT NULL,
            position INTEGER NOT NULL, reference_image BLOB, shot BLOB NOT NULL,
            PRIMARY KEY (project_id, shot_id));
        """
    )
    header = to_message(project, previs_pb2.Project)
    del header.shots[:]
    legacy.execute(
        "INSERT INTO projects (project_id, state, script, project) VALUES (?, ?, ?, ?)",
        ("p1", 2, "script", header.SerializeToString()),
    )
    for shot in project.shots:
        blob = to_message(shot, previs_pb2.Shot).SerializeToString()
        legacy.execute(
            "INSERT INTO shots VALUES (?, ?, ?, ?, ?)", ("p1", shot.shot_id, shot.order, None, blob)
        )
    legacy.commit()
    legacy.close()
    store = ProjectStore(open_project_database(tmp_path))
    assert store.load("p1") == project
    assert store.list_ids(ProjectState.DONE) == ["p1"]
    store.close()
    (version,) = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()
    assert version == SCHEMA_VERSION


def test_the_note_chain_follows_based_on_through_a_restore() -> None:
    shot = Shot(shot_id="s001")
    shot.revisions = [
        ShotRevision(revision=1),
        ShotRevision(revision=2, note="slower", based_on=1),
        ShotRevision(revision=3, note="darker", based_on=2),
        ShotRevision(revision=4, note="closer", based_on=2),  # after restoring revision 2
    ]
    assert note_chain(shot, 3) == ["slower", "darker"]
    assert note_chain(shot, 4) == ["slower", "closer"]
    assert note_chain(shot, 1) == []


def test_one_run_of_a_project_at_a_time_across_replicas(tmp_path: Path, target) -> None:
    a, b = _open(tmp_path, target, "replica-a"), _open(tmp_path, target, "replica-b")
    project = _project()
    project.state = ProjectState.DONE
    a.create(project, "", {})
    review = RunSpec(shots=(("s002", "slower", 0, 0),))
    assert a.start_run(project, review)
    assert not b.start_run(project, RunSpec(restitch=True))  # PROJECT_RUNNING there
    assert b.load("p1").state == ProjectState.RUNNING and b.run_spec("p1") == review
    with pytest.raises(RunLost):
        b.save_shot("p1", project.shots[1])  # not b's run
    a.save_shot("p1", project.shots[1])
    project.state = ProjectState.DONE
    a.finish_run(project)
    assert b.start_run(project, RunSpec(restitch=True))


def test_a_lapsed_or_released_run_is_taken_over_and_the_old_owner_fenced(
    tmp_path: Path, target
) -> None:
    a, b = _open(tmp_path, target, "replica-a"), _open(tmp_path, target, "replica-b")
    a.heartbeat(0.2)
    b.heartbeat(60)
    project = _project()
    project.state = ProjectState.RUNNING
    a.create(project, "", {}, RunSpec(shots=(("s001", "", 0, 0),)))
    assert b.take_over() == []  # replica-a's lease holds
    time.sleep(0.3)
    assert b.take_over() == ["p1"]
    with pytest.raises(RunLost):
        a.save_shot("p1", project.shots[0])
    with pytest.raises(RunLost):
        a.finish_run(project)
    b.heartbeat(60)
    assert b.release() == 1  # stopping: the run is anyone's at once
    a.heartbeat(60)
    assert a.take_over() == ["p1"]
