"""The previs project store: projects survive a reopen, one shot is rewritten alone, and the
note chain behind a revision follows `based_on` (so a restored revision is revised from)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clipmesh.orchestrator.previs.planning import note_chain
from clipmesh.orchestrator.previs.store import ProjectNotFound, ProjectStore
from clipmesh_api.orchestrator.v1 import previs_pb2


def _project() -> previs_pb2.Project:
    project = previs_pb2.Project(project_id="p1", title="雨中咖啡馆")
    for order in range(3):
        project.shots.add(shot_id=f"s{order + 1:03d}", order=order, description=f"shot {order}")
    return project


def test_a_project_survives_a_reopen_with_its_shots_in_order(tmp_path: Path) -> None:
    store = ProjectStore(tmp_path / "previs.sqlite3")
    store.create(_project(), "script text", {"s002": b"\x89PNG..."})
    shot = store.load("p1").shots[1]
    shot.revisions.add(revision=1, prompt="p", selected_clip=-1)
    shot.state = previs_pb2.SHOT_STATE_READY
    store.save_shot("p1", shot)
    store.close()
    reopened = ProjectStore(tmp_path / "previs.sqlite3")
    project = reopened.load("p1")
    assert [s.shot_id for s in project.shots] == ["s001", "s002", "s003"]
    assert project.shots[1].state == previs_pb2.SHOT_STATE_READY
    assert project.shots[1].revisions[0].prompt == "p"
    assert project.shots[0].state == previs_pb2.SHOT_STATE_UNSPECIFIED
    assert reopened.reference_image("p1", "s002") == b"\x89PNG..."
    assert reopened.reference_image("p1", "s001") is None


def test_headers_and_states_are_listed_and_unknown_ids_are_refused(tmp_path: Path) -> None:
    store = ProjectStore(tmp_path / "previs.sqlite3")
    project = _project()
    project.state = previs_pb2.PROJECT_STATE_RUNNING
    store.create(project, "", {})
    assert store.list_ids(previs_pb2.PROJECT_STATE_RUNNING) == ["p1"]
    project.state = previs_pb2.PROJECT_STATE_DONE
    store.save_header(project)
    assert store.list_ids(previs_pb2.PROJECT_STATE_RUNNING) == []
    assert len(store.load("p1").shots) == 3  # the header write leaves the shots alone
    with pytest.raises(ProjectNotFound):
        store.load("nope")
    with pytest.raises(ProjectNotFound):
        store.save_shot("nope", project.shots[0])


def test_a_failed_create_leaves_nothing_behind(tmp_path: Path) -> None:
    store = ProjectStore(tmp_path / "previs.sqlite3")
    project = _project()
    project.shots[2].shot_id = "s001"  # a duplicate id breaks the insert half-way
    with pytest.raises(Exception, match="UNIQUE"):
        store.create(project, "", {})
    with pytest.raises(ProjectNotFound):
        store.load("p1")


def test_the_note_chain_follows_based_on_through_a_restore() -> None:
    shot = previs_pb2.Shot(shot_id="s001")
    shot.revisions.add(revision=1)
    shot.revisions.add(revision=2, note="slower", based_on=1)
    shot.revisions.add(revision=3, note="darker", based_on=2)
    shot.revisions.add(revision=4, note="closer", based_on=2)  # after restoring revision 2
    assert note_chain(shot, 3) == ["slower", "darker"]
    assert note_chain(shot, 4) == ["slower", "closer"]
    assert note_chain(shot, 1) == []
