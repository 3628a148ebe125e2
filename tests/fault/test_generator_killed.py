"""SIGKILL the generator gateway mid-job, as its SDK user sees it, against the local DashScope
fake that counts billable submissions.

Killed while the provider renders: the caller's stream breaks, and after the restart the
caller's retry with the same idempotency key finds the same job, which completes on the same
provider task. Killed while the submission itself is in flight (the provider has the task,
the gateway never learnt its id): the job fails with SUBMISSION_INTERRUPTED and is never
submitted a second time. tests/integration/test_generator_restart.py covers the queue.
"""

from __future__ import annotations

import threading

import pytest

from clipmesh_client import ClipmeshError
from clipmesh_client.generation import GeneratorClient
from tests.fakes.dashscope_server import FakeDashScope


class HeldSubmissions(FakeDashScope):
    """A DashScope that creates each task at once but holds its answer until `release` is set:
    the moment a gateway has billed a task and does not yet know its id."""

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.submission_arrived = threading.Event()
        self.release = threading.Event()

    def start(self) -> HeldSubmissions:
        super().start()
        # A held answer is written to a connection the killed gateway closed: a broken pipe
        # is the expected end of it, not an error worth a traceback on stderr.
        self._server.handle_error = lambda request, client_address: None
        return self

    def submit(self, body: object) -> dict:
        answer = super().submit(body)
        self.submission_arrived.set()
        self.release.wait(timeout=60)
        return answer


def _gateway_env(fake: FakeDashScope) -> dict[str, str]:
    return {
        "CLIPMESH_GENERATOR_DASHSCOPE_BASE_URL": fake.base_url,
        "CLIPMESH_GENERATOR_DASHSCOPE_API_KEY": fake.api_key,
        "CLIPMESH_GENERATOR_DASHSCOPE_POLL_INITIAL_S": "0.05",
        "CLIPMESH_GENERATOR_DASHSCOPE_POLL_MAX_S": "0.2",
    }


@pytest.mark.timeout(90)
def test_a_retry_after_the_gateway_died_mid_render_finds_the_same_job_and_task(
    start_services, tmp_path
) -> None:
    shot = {"prompt": "a dolly shot down a pier", "backend": "dashscope", "idempotency_key": "s7"}
    with FakeDashScope(api_key="sk-fault", task_duration_s=3.0) as fake:
        (gateway,) = start_services("generator", env=_gateway_env(fake))
        with GeneratorClient(gateway.target, max_attempts=1) as client:
            events = client.generate(**shot)
            submitted = next(e.job for e in events if e.job.provider_task_id)
            gateway.kill()
            with pytest.raises(ClipmeshError):  # the caller's stream dies with the gateway
                list(events)
        rendering = fake.status_of(submitted.provider_task_id)

        gateway.start()
        gateway.wait_serving()
        with GeneratorClient(gateway.target, max_attempts=1) as client:
            retried = [event.job for event in client.generate(**shot, timeout_s=60)]
            finished = retried[-1]
            download = client.download_output(finished.job_id, tmp_path / "s7.mp4")
        tasks_created = fake.tasks_created
        violations = fake.violations

    print(
        f"jobs acknowledged: 1 (provider task {rendering} at the kill), "
        f"job after the retry: {finished.state}, same job: {finished.job_id == submitted.job_id}, "
        f"provider tasks created: {tasks_created}, output: {download.stat().st_size} bytes"
    )
    assert rendering in ("PENDING", "RUNNING"), "the kill did not land mid-render"
    assert finished.job_id == submitted.job_id
    assert finished.provider_task_id == submitted.provider_task_id
    assert finished.state == "succeeded"
    assert tasks_created == 1
    assert violations == []


@pytest.mark.timeout(90)
def test_a_gateway_killed_mid_submission_fails_the_job_instead_of_billing_twice(
    start_services,
) -> None:
    with HeldSubmissions(api_key="sk-fault") as fake:
        (gateway,) = start_services("generator", env=_gateway_env(fake))
        with GeneratorClient(gateway.target, max_attempts=1) as client:
            events = client.generate("a crane shot", backend="dashscope", idempotency_key="s8")
            job_id = next(events).job.job_id
            assert fake.submission_arrived.wait(timeout=30), "the gateway never submitted"
            gateway.kill()
            fake.release.set()  # the answer with the task id goes to a dead connection
            with pytest.raises(ClipmeshError):
                list(events)

        gateway.start()
        gateway.wait_serving()
        with GeneratorClient(gateway.target, max_attempts=1) as client:
            after = client.get_job(job_id)
            tasks_after_restart = fake.tasks_created
            again = [e.job for e in client.generate("a crane shot", backend="dashscope")][-1]
        tasks_created = fake.tasks_created

    print(
        f"submissions in flight at the kill: 1, job after the restart: {after.state} "
        f"({after.error_reason}), provider tasks after the restart: {tasks_after_restart}, "
        f"after a fresh submission ({again.state}): {tasks_created}"
    )
    assert after.state == "failed"
    assert after.error_reason == "SUBMISSION_INTERRUPTED"
    assert tasks_after_restart == 1  # the interrupted submission was never sent again
    assert again.state == "succeeded"
    assert tasks_created == 2
