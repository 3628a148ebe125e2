"""SIGKILL the generator gateway while a job's webhook waits in the outbox: the event was
committed with the job's end, so the gateway started again on the same data directory delivers
it, once, under the event id its attempts before the kill carried.

The receiver (tests/fakes/webhook_receiver.py) is down while the job ends, so the event is
attempted and retried but cannot get through; it comes up while the gateway is dead.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
import standardwebhooks
import yaml

from clipmesh_api.generator.v1 import generator_pb2, generator_pb2_grpc
from clipmesh_client.webhooks import verify
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.support import webhook_outbox

SECRET = "whsec_" + base64.b64encode(bytes(range(7, 39))).decode()
CALLER = (("x-clipmesh-caller", "team-a"),)


def _gateway_env(tmp_path: Path) -> dict[str, str]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "webhooks": {"allow_http_loopback": True},
                "callers": {"team-a": {"webhook_secrets": [SECRET]}},
            }
        )
    )
    return {
        "CLIPMESH_GENERATOR_POLICY_FILE": str(policy),
        "CLIPMESH_GENERATOR_WEBHOOK_INITIAL_BACKOFF_S": "0.2",
        "CLIPMESH_GENERATOR_WEBHOOK_MAX_BACKOFF_S": "1",
    }


def _run_job(target: str, webhook_url: str) -> generator_pb2.Job:
    spec = generator_pb2.GenerationSpec(
        prompt="a tracking shot along a harbour wall",
        backend="animatic",
        width=128,
        height=128,
        duration_s=1.0,
        fps=12.0,
    )
    with grpc.insecure_channel(target) as channel:
        stub = generator_pb2_grpc.GeneratorServiceStub(channel)
        request = generator_pb2.GenerateRequest(spec=spec, webhook_url=webhook_url)
        return [r.event for r in stub.Generate(request, metadata=CALLER, timeout=60)][-1].job


def _outbox_until(database: Path, check: Callable[[dict], bool], timeout_s: float = 60) -> dict:
    """The one outbox row once `check` holds for it."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = webhook_outbox(database)
        if len(rows) == 1 and check(rows[0]):
            return rows[0]
        assert time.monotonic() < deadline, f"the outbox never got there: {rows}"
        time.sleep(0.05)


@pytest.mark.timeout(120)
def test_an_event_waiting_in_the_outbox_is_delivered_once_after_the_gateway_is_killed(
    start_services, tmp_path: Path
) -> None:
    receiver = WebhookReceiver()  # down: every attempt meets a refused connection
    (gateway,) = start_services("generator", env=_gateway_env(tmp_path))
    database = Path(gateway.env["CLIPMESH_GENERATOR_DATA_DIR"]) / "jobs.sqlite3"
    job = _run_job(gateway.target, receiver.url)
    before = _outbox_until(database, lambda row: row["attempts"] >= 2)
    gateway.kill()
    at_kill = webhook_outbox(database)[0]  # attempts made up to the kill, committed

    with receiver:
        gateway.start()
        gateway.wait_serving()
        after = _outbox_until(database, lambda row: row["state"] != "pending")
        deliveries = receiver.requests

    print(
        f"\nbefore the kill: {at_kill['attempts']} attempts, state {at_kill['state']}, "
        f"event {at_kill['event_id']}; after the restart: {after['attempts']} attempts in all, "
        f"state {after['state']}, receiver requests {len(deliveries)}, "
        f"event ids {[d.event_id for d in deliveries]}"
    )
    assert job.state == generator_pb2.JobState.JOB_STATE_SUCCEEDED
    assert at_kill["state"] == "pending" and at_kill["attempts"] >= before["attempts"]
    assert at_kill["event_id"] == before["event_id"]
    assert (after["state"], after["attempts"]) == ("delivered", at_kill["attempts"] + 1)
    (delivery,) = deliveries
    assert delivery.delivered and delivery.event_id == at_kill["event_id"] == after["event_id"]
    verify(SECRET, delivery.headers, delivery.body, now=delivery.received_s)
    event = standardwebhooks.Webhook(SECRET).verify(delivery.body, delivery.headers)
    assert event == json.loads(delivery.body)
    assert (event["type"], event["data"]["job"]["jobId"]) == ("job.succeeded", job.job_id)


@pytest.mark.timeout(120)
def test_an_attempt_cut_short_by_the_kill_is_sent_again_under_the_same_event_id(
    start_services, tmp_path: Path
) -> None:
    """Killed after the receiver got the event but before its answer was committed: delivery
    is at least once, so the event comes again after the restart, and its id lets the receiver
    see it is the same event."""
    with WebhookReceiver() as receiver:
        receiver.hold_answers()  # the request arrives; the answer waits for the kill
        (gateway,) = start_services("generator", env=_gateway_env(tmp_path))
        database = Path(gateway.env["CLIPMESH_GENERATOR_DATA_DIR"]) / "jobs.sqlite3"
        job = _run_job(gateway.target, receiver.url)
        receiver.wait_for_requests(1)
        gateway.kill()
        at_kill = webhook_outbox(database)[0]
        receiver.release_answers()  # written to a dead connection

        gateway.start()
        gateway.wait_serving()
        after = _outbox_until(database, lambda row: row["state"] != "pending")
        requests = receiver.requests

    print(
        f"\nkilled mid-attempt: outbox {at_kill['attempts']} attempts, state {at_kill['state']}; "
        f"after the restart: {after['attempts']} attempts, state {after['state']}, receiver "
        f"requests {len(requests)}, distinct event ids {len({r.event_id for r in requests})}"
    )
    assert (at_kill["state"], at_kill["attempts"]) == ("pending", 0)
    assert (after["state"], after["attempts"]) == ("delivered", 1)
    assert [r.event_id for r in requests] == [at_kill["event_id"]] * 2
    assert len({r.body for r in requests}) == 1
    for request in requests:
        verify(SECRET, request.headers, request.body, now=request.received_s)
    assert json.loads(requests[-1].body)["data"]["job"]["jobId"] == job.job_id
