"""The five services as real processes (`clipmesh serve`, `clipmesh up`) on free ports:
health, reflection, /metrics that Prometheus accepts, previs from the CLI, clean SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from clipmesh.cli.probe import health_status, list_services
from clipmesh.cli.services import CONFIG_TYPES, SERVICE_NAMES
from clipmesh_api.generator.v1 import generator_pb2, generator_pb2_grpc
from clipmesh_api.index.v1 import index_pb2, index_pb2_grpc
from clipmesh_api.orchestrator.v1 import previs_pb2, previs_pb2_grpc
from tests.mesh import mesh_environ, process_mesh

EXPECTED_SERVICES = {
    "encoder": {"clipmesh.encoder.v1.EncoderService"},
    "index": {"clipmesh.index.v1.IndexService"},
    "generator": {"clipmesh.generator.v1.GeneratorService"},
    "orchestrator": {
        "clipmesh.orchestrator.v1.SearchService",
        "clipmesh.orchestrator.v1.IngestService",
    },
    "previs": {"clipmesh.orchestrator.v1.PrevisService"},
}


@pytest.fixture
def services(tmp_path, free_ports):
    """All five services started with `clipmesh serve <name>`."""
    with process_mesh(tmp_path, free_ports) as running:
        yield running


def test_every_service_is_healthy_and_lists_its_api_by_reflection(services) -> None:
    for name, service in services.items():
        assert health_status(service["target"]) == "SERVING"
        for full_name in EXPECTED_SERVICES[name]:
            assert health_status(service["target"], service=full_name) == "SERVING"
        listed = set(list_services(service["target"]))
        assert EXPECTED_SERVICES[name] <= listed
        assert {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= listed


def _cli(*args: str, timeout_s: float = 300) -> list[dict]:
    """Runs `clipmesh ARGS… --json`; returns its JSON lines."""
    done = subprocess.run(
        [sys.executable, "-m", "clipmesh", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_a_script_becomes_a_reviewed_cut_from_the_cli_over_the_mesh(services, tmp_path) -> None:
    """The whole previs flow over five real processes, with the animatic backend."""
    target = services["previs"]["target"]
    script = tmp_path / "harbour.txt"
    script.write_text(
        "The harbour at dawn. Fishing boats drift past the lighthouse.\n\n"
        "A gull lands on the railing and looks at the camera.",
        encoding="utf-8",
    )
    size = ("--backend", "animatic", "--size", "256x144", "--fps", "12", "--target", target)
    reports = _cli("previs", str(script), *size)
    project = reports[-1]["project"]
    assert reports[-1]["stage"] == "done" and project["state"] == "PROJECT_STATE_DONE"
    assert [s["state"] for s in project["shots"]] == ["SHOT_STATE_READY"] * len(project["shots"])
    shot_id = project["shots"][-1]["shot_id"]
    reviewed = _cli("review", project["project_id"], shot_id, "closer", "--target", target)
    shots = reviewed[-1]["project"]["shots"]
    assert [len(s["revisions"]) for s in shots] == [1] * (len(shots) - 1) + [2]
    (cut,) = _cli("export", project["project_id"], "--target", target)
    assert Path(cut["mp4_uri"].removeprefix("file://")).stat().st_size > 0
    assert Path(cut["otio_uri"].removeprefix("file://")).stat().st_size > 0
    with grpc.insecure_channel(target) as channel:
        stub = previs_pb2_grpc.PrevisServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetProject(previs_pb2.GetProjectRequest(project_id="p-none"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert health_status(target) == "SERVING"


def test_the_generator_renders_an_animatic_over_the_mesh(services) -> None:
    target = services["generator"]["target"]
    with grpc.insecure_channel(target) as channel:
        stub = generator_pb2_grpc.GeneratorServiceStub(channel)
        spec = generator_pb2.GenerationSpec(
            prompt="wide shot, slow pan right across a harbour",
            width=256,
            height=144,
            duration_s=1,
            fps=12,
        )
        events = [
            r.event for r in stub.Generate(generator_pb2.GenerateRequest(spec=spec), timeout=60)
        ]
    job = events[-1].job
    assert job.state == generator_pb2.JOB_STATE_SUCCEEDED and job.backend == "animatic"
    assert Path(job.result.uri.removeprefix("file://")).stat().st_size == job.result.size_bytes


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not installed (make install)"
)
def test_every_metrics_endpoint_parses_and_passes_promtool(services) -> None:
    for name, service in services.items():
        body = httpx.get(service["metrics"], timeout=5).text
        families = {f.name for f in text_string_to_metric_families(body)}
        assert {
            "clipmesh_service_info",
            "process_resident_memory_bytes",
            "process_cpu_seconds",
        } <= families
        assert f'service="{name}"' in body
        checked = subprocess.run(
            ["promtool", "check", "metrics"],
            input=body,
            capture_output=True,
            text=True,
            check=False,
        )
        assert checked.returncode == 0, f"{name}: {checked.stdout}{checked.stderr}"


def test_sigterm_drains_and_exits_cleanly(services) -> None:
    for service in services.values():
        service["process"].send_signal(signal.SIGTERM)
    for name, service in services.items():
        assert service["process"].wait(timeout=15) == 0, name
        log = service["log"].read_text()
        assert '"message": "draining"' in log and '"message": "stopped"' in log


def test_a_bad_setting_fails_start_up_with_a_message_naming_it(tmp_path, free_ports) -> None:
    env = {**os.environ, "CLIPMESH_INDEX_PORT": "not-a-port"}
    result = subprocess.run(
        [sys.executable, "-m", "clipmesh", "serve", "index"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "CLIPMESH_INDEX_PORT" in result.stderr


def test_clipmesh_up_starts_five_healthy_services_and_stops_them_all(tmp_path, free_ports) -> None:
    env = mesh_environ(tmp_path, free_ports)
    up = subprocess.Popen(
        [sys.executable, "-m", "clipmesh", "up", "--data-dir", str(tmp_path / "mesh")],
        env={**env, "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = []
    try:
        for line in up.stdout:
            output.append(line)
            if "all services SERVING" in line:
                break
        else:
            pytest.fail("clipmesh up never became ready:\n" + "".join(output))
        targets = {n: f"127.0.0.1:{env[CONFIG_TYPES[n].env_name('port')]}" for n in SERVICE_NAMES}
        assert all(health_status(t) == "SERVING" for t in targets.values())
        children = _children_of(up.pid)
        assert len(children) == len(SERVICE_NAMES)
        up.send_signal(signal.SIGTERM)
        rest = up.communicate(timeout=30)[0]
        assert up.returncode == 0, rest
        assert "stopped cleanly" in rest
        assert all(health_status(t, timeout_s=0.3) == "UNREACHABLE" for t in targets.values())
        assert not [pid for pid in children if _alive(pid)], "orphaned service processes"
    finally:
        if up.poll() is None:
            up.kill()


def _children_of(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in found.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


def test_the_index_answers_over_the_mesh(services) -> None:
    with grpc.insecure_channel(services["index"]["target"]) as channel:
        stats = index_pb2_grpc.IndexServiceStub(channel).GetStats(
            index_pb2.GetStatsRequest(), timeout=5
        )
    assert stats.backend == "faiss"
