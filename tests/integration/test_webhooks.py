"""Webhooks end to end: a job's end, committed with its event, POSTed signed to the caller's
receiver, retried until it gets through, and refused where the policy does not let it go.

A real gateway serves in this process on the animatic backend (small renders) under a policy
file in development mode (http to loopback allowed); the receiver
(tests/fakes/webhook_receiver.py) is a real HTTP server on a free loopback port. The outbox is
read from the gateway's own SQLite file, as an operator would inspect it. Where webhooks may
not go is test_webhook_refusals.py; a gateway killed with an event waiting is
tests/fault/test_webhook_delivery_after_kill.py.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import sqlite3
import time
from pathlib import Path

import grpc
import pytest
import standardwebhooks

from clipmesh_api.generator.v1 import generator_pb2
from clipmesh_client.webhooks import WebhookVerificationError, verify
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.integration.conftest import (
    DEVELOPMENT_POLICY,
    WEBHOOK_SECRET,
    as_caller,
    outbox_until,
    run_job,
    settled,
    verified_by_both,
    webhook_gateway,
    webhook_refusal,
    webhook_request,
)
from tests.support import webhook_outbox

pytestmark = pytest.mark.timeout(120)

State = generator_pb2.JobState
OTHER_SECRET = "whsec_" + base64.b64encode(bytes(range(101, 133))).decode()


async def test_an_ended_job_is_posted_once_signed_for_any_standard_webhooks_verifier(
    tmp_path: Path,
) -> None:
    with WebhookReceiver() as receiver:
        async with webhook_gateway(tmp_path, DEVELOPMENT_POLICY) as gateway:
            job = await run_job(gateway, receiver.url)
            (row,) = await settled(gateway, 1)
        deliveries = receiver.requests

    assert job.state == State.JOB_STATE_SUCCEEDED
    assert job.webhook_url == receiver.url
    (delivery,) = deliveries
    event = verified_by_both(WEBHOOK_SECRET, delivery)
    assert event["type"] == "job.succeeded"
    assert event["data"]["job"]["jobId"] == job.job_id
    assert event["data"]["job"]["state"] == "JOB_STATE_SUCCEEDED"
    assert event["data"]["job"]["caller"] == "team-a"
    assert delivery.event_id == row["event_id"] and row["job_id"] == job.job_id
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    assert delivery.headers["content-type"] == "application/json"
    with pytest.raises(WebhookVerificationError):
        verify(OTHER_SECRET, delivery.headers, delivery.body)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(OTHER_SECRET).verify(delivery.body, delivery.headers)


async def test_a_cancelled_job_is_announced_as_cancelled(tmp_path: Path) -> None:
    with WebhookReceiver() as receiver:
        async with webhook_gateway(tmp_path, DEVELOPMENT_POLICY) as gateway:
            # One animatic render at a time: the second job waits behind the first (a long
            # render) until it is cancelled, so it ends CANCELLED whatever the first one does.
            long = webhook_request(
                receiver.url,
                prompt="a long take",
                width=1280,
                height=720,
                duration_s=10.0,
                fps=30.0,
            )
            calls, queued = [], []
            for _ in range(2):
                calls.append(gateway.stub.Generate(long, metadata=as_caller("team-a")))
                queued.append((await calls[-1].read()).event.job)
            first, second = queued
            for job in (second, first):
                await gateway.stub.CancelJob(
                    generator_pb2.CancelJobRequest(job_id=job.job_id), metadata=as_caller("team-a")
                )
            ended = {}
            for call in calls:
                job = [response.event async for response in call][-1].job
                ended[job.job_id] = job
            rows = await settled(gateway, 2)
        deliveries = receiver.requests

    assert ended[second.job_id].state == State.JOB_STATE_CANCELLED
    events = {verified_by_both(WEBHOOK_SECRET, d)["data"]["job"]["jobId"]: d for d in deliveries}
    assert sorted(events) == sorted(ended), "one delivery per ended job"
    for job_id, delivery in events.items():
        state = generator_pb2.JobState.Name(ended[job_id].state).removeprefix("JOB_STATE_")
        assert json.loads(delivery.body)["type"] == f"job.{state.lower()}"
    assert json.loads(events[second.job_id].body)["type"] == "job.cancelled"
    assert {d.event_id for d in deliveries} == {row["event_id"] for row in rows}


async def test_a_receiver_down_for_a_while_gets_each_event_exactly_once(tmp_path: Path) -> None:
    receiver = WebhookReceiver()  # not listening: every attempt meets a refused connection
    async with webhook_gateway(tmp_path, DEVELOPMENT_POLICY) as gateway:
        before = await gateway.attempts()
        job = await run_job(gateway, receiver.url)
        (waiting,) = await outbox_until(gateway, lambda rows: rows and rows[0]["attempts"] >= 3)
        with receiver:
            (row,) = await settled(gateway, 1)
            after = await gateway.attempts()
        deliveries = receiver.requests

    print(
        f"\nreceiver down: {waiting['attempts']} refused attempts ({waiting['last_error']!r}); "
        f"after it came up: outbox attempts {row['attempts']}, state {row['state']}, "
        f"deliveries {len(deliveries)}, event ids {sorted({d.event_id for d in deliveries})}, "
        f"metrics retry +{after['retry'] - before['retry']:g}, "
        f"delivered +{after['delivered'] - before['delivered']:g}"
    )
    assert waiting["state"] == "pending" and "connection failed" in waiting["last_error"]
    assert row["state"] == "delivered" and row["attempts"] > waiting["attempts"]
    (delivery,) = deliveries
    assert delivery.event_id == waiting["event_id"] == row["event_id"]
    assert verified_by_both(WEBHOOK_SECRET, delivery)["data"]["job"]["jobId"] == job.job_id
    assert after["retry"] - before["retry"] == row["attempts"] - 1
    assert after["delivered"] - before["delivered"] == 1


async def test_a_failing_receiver_is_retried_with_the_same_event_freshly_signed(
    tmp_path: Path,
) -> None:
    with WebhookReceiver() as receiver:
        # Retry-After: 1 spaces the attempts a second apart, so each carries its own timestamp.
        receiver.answer_next(500, 500, headers={"Retry-After": "1"})
        async with webhook_gateway(tmp_path, DEVELOPMENT_POLICY) as gateway:
            before = await gateway.attempts()
            job = await run_job(gateway, receiver.url)
            (row,) = await settled(gateway, 1)
            after = await gateway.attempts()
        attempts = receiver.requests

    stamps = [int(a.headers["webhook-timestamp"]) for a in attempts]
    print(
        f"\nreceiver 500, 500, 200: attempts {len(attempts)} (outbox {row['attempts']}), "
        f"statuses {[a.status for a in attempts]}, "
        f"event ids {sorted({a.event_id for a in attempts})}, timestamps {stamps}"
    )
    assert [a.status for a in attempts] == [500, 500, 200]
    assert {a.event_id for a in attempts} == {row["event_id"]}
    assert (row["state"], row["attempts"]) == ("delivered", 3)
    assert len({a.body for a in attempts}) == 1  # the same event, byte for byte
    for attempt in attempts:  # each signed when sent: fresh, and verifiable on its own
        assert abs(int(attempt.headers["webhook-timestamp"]) - attempt.received_s) <= 1
        assert verified_by_both(WEBHOOK_SECRET, attempt)["data"]["job"]["jobId"] == job.job_id
    assert stamps == sorted(set(stamps)), "every attempt is signed with its own timestamp"
    assert len({a.headers["webhook-signature"] for a in attempts}) == 3
    assert after["retry"] - before["retry"] == 2
    assert after["delivered"] - before["delivered"] == 1


async def test_an_event_failing_for_a_long_outage_is_still_retried_and_delivered(
    tmp_path: Path,
) -> None:
    """The backoff doubles per attempt up to its cap; after a long outage (here 2 000 attempts
    already made, written into the stopped gateway's outbox) it still yields a wait, and the
    dispatcher goes on: the event and a new job's event are delivered once the receiver is up."""
    receiver = WebhookReceiver()
    async with webhook_gateway(tmp_path, DEVELOPMENT_POLICY) as gateway:
        old = await run_job(gateway, receiver.url, prompt="before the outage")
        await outbox_until(gateway, lambda rows: rows and rows[0]["attempts"] >= 1)
    with contextlib.closing(sqlite3.connect(gateway.database)) as db, db:
        db.execute("UPDATE webhook_outbox SET attempts = 2000, next_attempt_s = 0")

    async with webhook_gateway(tmp_path, DEVELOPMENT_POLICY) as gateway:
        (retried,) = await outbox_until(gateway, lambda rows: rows[0]["attempts"] >= 2002)
        with receiver:
            new = await run_job(gateway, receiver.url, prompt="after the outage")
            rows = await settled(gateway, 2)
        deliveries = receiver.requests

    print(f"\nlong outage: {retried['attempts']} attempts, then {[r['state'] for r in rows]}")
    assert [row["state"] for row in rows] == ["delivered", "delivered"]
    jobs = sorted(json.loads(d.body)["data"]["job"]["jobId"] for d in deliveries)
    assert jobs == sorted([old.job_id, new.job_id])


async def test_a_job_store_locked_for_a_while_does_not_stop_deliveries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process's write lock on the job store (an operator's sqlite3 shell, a backup)
    makes recording an attempt fail after SQLite's busy timeout; the dispatcher says so and
    goes on once the lock is gone."""
    receiver = WebhookReceiver()
    async with webhook_gateway(tmp_path, DEVELOPMENT_POLICY) as gateway:
        job = await run_job(gateway, receiver.url)
        await outbox_until(gateway, lambda rows: rows and rows[0]["attempts"] >= 1)
        with contextlib.closing(sqlite3.connect(gateway.database, isolation_level=None)) as db:
            db.execute("BEGIN IMMEDIATE")
            deadline = time.monotonic() + 60
            while not any("webhook dispatch failed" in r.message for r in caplog.records):
                assert time.monotonic() < deadline, "the locked store never failed a round"
                await asyncio.sleep(0.1)
            db.execute("ROLLBACK")
        with receiver:
            (row,) = await settled(gateway, 1)
        deliveries = receiver.requests

    print(f"\nlocked store: outbox {row['state']} after {row['attempts']} recorded attempts")
    assert row["state"] == "delivered"
    (delivery,) = deliveries
    assert delivery.event_id == row["event_id"]
    assert json.loads(delivery.body)["data"]["job"]["jobId"] == job.job_id


async def test_the_same_idempotency_key_means_the_same_job_and_one_event(tmp_path: Path) -> None:
    with WebhookReceiver() as receiver:
        async with webhook_gateway(tmp_path, DEVELOPMENT_POLICY) as gateway:
            first = await run_job(gateway, receiver.url, key="shot-7")
            again = await run_job(gateway, receiver.url, key="shot-7")
            (row,) = await settled(gateway, 1)
            elsewhere = await webhook_refusal(gateway, receiver.url + "?v=2", key="shot-7")
            without = await webhook_refusal(gateway, "", key="shot-7")
            rows = await asyncio.to_thread(webhook_outbox, gateway.database)
            listed = await gateway.stub.ListJobs(
                generator_pb2.ListJobsRequest(), metadata=as_caller("team-a")
            )
        deliveries = receiver.requests

    assert again.job_id == first.job_id and again.state == State.JOB_STATE_SUCCEEDED
    assert [job.job_id for job in listed.jobs] == [first.job_id]
    assert rows == [row] and row["job_id"] == first.job_id
    assert [d.event_id for d in deliveries] == [row["event_id"]]
    for refused in (elsewhere, without):
        assert refused.code == grpc.StatusCode.FAILED_PRECONDITION
        assert refused.reason == "IDEMPOTENCY_KEY_REUSED"
        assert refused.metadata["job_id"] == first.job_id
