"""Two previs replicas on one PostgreSQL project store: the replica running a project's run is
SIGKILLed mid-run, and the other takes the run over when the dead one's lease lapses and
finishes it — every shot made, the cut stitched — without paying twice for a clip: the
continued run asks the generator with the same idempotency keys, so every generator job is a
clip of the project. The mesh (encoder, index, generator on the animatic backend) runs as
real processes beside them.
"""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from clipmesh.media.paths import path_from_uri
from clipmesh_api.generator.v1 import generator_pb2, generator_pb2_grpc
from clipmesh_api.orchestrator.v1 import previs_pb2, previs_pb2_grpc
from tests.fault.support import ServiceProcess

pytestmark = pytest.mark.timeout(300)

SCRIPT = """INT. KITCHEN - NIGHT

Mara opens the envelope slowly. Close-up on her hands.

EXT. ROOFTOP - DAWN

Mara stands at the edge, the letter in her hand, wind in her hair.

EXT. HARBOUR - DAY

A ferry leaves the pier; gulls circle over the water.
"""


def _previs(fault_env, store, shared: Path, *, n: int, free_ports, logs: Path):
    return ServiceProcess(
        "previs",
        {
            **fault_env,
            "CLIPMESH_PREVIS_STORE": store.dsn,
            "CLIPMESH_PREVIS_STORE_PASSWORD_FILE": str(store.password_file),
            "CLIPMESH_PREVIS_DATA_DIR": str(shared),
            "CLIPMESH_PREVIS_LEASE_S": "2",
            "CLIPMESH_PREVIS_PORT": str(free_ports()),
            "CLIPMESH_PREVIS_METRICS_PORT": str(free_ports()),
        },
        logs / f"previs-{n}.log",
    )


def test_a_run_whose_replica_dies_is_finished_by_another(
    start_services, fault_env, postgres_database, free_ports, tmp_path: Path
) -> None:
    (generator,) = start_services(
        "encoder", "index", "generator", env={"CLIPMESH_GENERATOR_ANIMATIC_MAX_CONCURRENT": "2"}
    )[2:]
    shared = tmp_path / "previs-shared"
    replicas = [
        _previs(fault_env, postgres_database, shared, n=n, free_ports=free_ports, logs=tmp_path)
        for n in range(2)
    ]
    try:
        _run_and_kill_one(replicas, generator)
    finally:
        for replica in replicas:  # not started through start_services: ended here
            replica.kill()


def _run_and_kill_one(replicas: list[ServiceProcess], generator: ServiceProcess) -> None:
    for replica in replicas:
        replica.start()
    for replica in replicas:
        replica.wait_serving()
    first, second = replicas

    request = previs_pb2.CreateProjectRequest(
        title="The Letter", script=SCRIPT, width=256, height=144, fps=12.0
    )
    with grpc.insecure_channel(first.target) as channel:
        stream = previs_pb2_grpc.PrevisServiceStub(channel).CreateProject(request, timeout=120)
        project_id = ""
        for response in stream:
            project_id = response.progress.project_id
            if response.progress.stage == "generating":
                break  # the run is under way on the first replica
        first.kill()
    killed_at = time.monotonic()

    with grpc.insecure_channel(second.target) as channel:
        stub = previs_pb2_grpc.PrevisServiceStub(channel)
        deadline = time.monotonic() + 180
        while True:
            project = stub.GetProject(
                previs_pb2.GetProjectRequest(project_id=project_id), timeout=10
            ).project
            if project.state != previs_pb2.PROJECT_STATE_RUNNING:
                break
            assert time.monotonic() < deadline, f"not finished: {project}"
            time.sleep(0.5)
    finished_s = time.monotonic() - killed_at

    with grpc.insecure_channel(generator.target) as channel:
        jobs = (
            generator_pb2_grpc.GeneratorServiceStub(channel)
            .ListJobs(generator_pb2.ListJobsRequest(), timeout=10)
            .jobs
        )
    clips = [clip for shot in project.shots for rev in shot.revisions for clip in rev.clips]
    print(
        f"\nprevis replica killed mid-run; the other finished it {finished_s:.1f} s later: "
        f"state {previs_pb2.ProjectState.Name(project.state)}, shots "
        f"{[previs_pb2.ShotState.Name(s.state) for s in project.shots]}, clips {len(clips)}, "
        f"generator jobs {len(jobs)}"
    )
    assert project.state == previs_pb2.PROJECT_STATE_DONE, second.log_tail()
    assert len(project.shots) == 3
    assert all(
        s.state in (previs_pb2.SHOT_STATE_READY, previs_pb2.SHOT_STATE_BELOW_THRESHOLD)
        for s in project.shots
    )
    assert Path(path_from_uri(project.cut.mp4_uri)).is_file()
    # No clip was paid for twice: every generator job is one of the project's clips.
    assert sorted(job.job_id for job in jobs) == sorted(clip.job_id for clip in clips)
    assert "continuing a previs run" in second.log_tail(20_000)
