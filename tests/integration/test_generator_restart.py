"""SIGKILL the gateway mid-job and start it again: the provider task is polled to the end
and never submitted twice; queued jobs are still queued and then run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc

from clipmesh.cli.probe import health_status
from clipmesh_api.generator.v1 import generator_pb2, generator_pb2_grpc
from tests.fakes.dashscope_server import FakeDashScope

State = generator_pb2.JobState


def _start(env: dict[str, str], log: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "clipmesh", "serve", "generator"],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    target = f"127.0.0.1:{env['CLIPMESH_GENERATOR_PORT']}"
    deadline = time.monotonic() + 60
    while health_status(target, timeout_s=0.5) != "SERVING":
        assert process.poll() is None, log.read_text()[-2000:]
        assert time.monotonic() < deadline, "the gateway did not start"
        time.sleep(0.1)
    return process


def _watch_to_end(stub, job_id: str) -> generator_pb2.Job:
    events = stub.WatchJob(generator_pb2.WatchJobRequest(job_id=job_id), timeout=60)
    return [r.event for r in events][-1].job


def test_a_killed_gateway_resumes_its_provider_task_and_its_queue(tmp_path, free_ports) -> None:
    with FakeDashScope(api_key="sk-restart", task_duration_s=3.0) as fake:
        env = {
            **os.environ,
            "CLIPMESH_GENERATOR_HOST": "127.0.0.1",
            "CLIPMESH_GENERATOR_PORT": str(free_ports()),
            "CLIPMESH_GENERATOR_METRICS_HOST": "127.0.0.1",
            "CLIPMESH_GENERATOR_METRICS_PORT": str(free_ports()),
            "CLIPMESH_GENERATOR_DATA_DIR": str(tmp_path / "generator"),
            "CLIPMESH_GENERATOR_DASHSCOPE_BASE_URL": fake.base_url,
            "CLIPMESH_GENERATOR_DASHSCOPE_API_KEY": fake.api_key,
            "CLIPMESH_GENERATOR_DASHSCOPE_MAX_CONCURRENT": "1",
            "CLIPMESH_GENERATOR_DASHSCOPE_POLL_INITIAL_S": "0.05",
            "CLIPMESH_GENERATOR_DASHSCOPE_POLL_MAX_S": "0.2",
        }
        log = tmp_path / "generator.log"
        gateway = _start(env, log)
        target = f"127.0.0.1:{env['CLIPMESH_GENERATOR_PORT']}"
        with grpc.insecure_channel(target) as channel:
            stub = generator_pb2_grpc.GeneratorServiceStub(channel)
            first = stub.Generate(
                generator_pb2.GenerateRequest(
                    spec=generator_pb2.GenerationSpec(prompt="a dolly shot", backend="dashscope"),
                    idempotency_key="restart-1",
                ),
                timeout=60,
            )
            submitted = next(e.event.job for e in first if e.event.job.provider_task_id)
            waiting = stub.Generate(
                generator_pb2.GenerateRequest(
                    spec=generator_pb2.GenerationSpec(prompt="the next shot", backend="dashscope")
                ),
                timeout=60,
            )
            queued = next(waiting).event.job
            assert queued.state == State.JOB_STATE_QUEUED
        gateway.send_signal(signal.SIGKILL)
        gateway.wait()
        assert fake.tasks_created == 1

        gateway = _start(env, log)
        try:
            with grpc.insecure_channel(target) as channel:
                stub = generator_pb2_grpc.GeneratorServiceStub(channel)
                resumed = _watch_to_end(stub, submitted.job_id)
                assert resumed.state == State.JOB_STATE_SUCCEEDED
                assert resumed.provider_task_id == submitted.provider_task_id
                assert resumed.idempotency_key == "restart-1"
                later = _watch_to_end(stub, queued.job_id)
                assert later.state == State.JOB_STATE_SUCCEEDED
        finally:
            gateway.terminate()
            gateway.wait(timeout=30)
        assert fake.tasks_created == 2  # one task per job: none was submitted twice
        assert fake.violations == []
