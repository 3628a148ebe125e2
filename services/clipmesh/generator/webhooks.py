"""Webhooks: a job's end announced to its caller's URL, signed, retried, at least once.

The event is built when the job ends and committed with it (outbox.py), so a gateway killed
between the end and the delivery delivers after it restarts. The dispatcher takes what is due,
signs each attempt afresh (Standard Webhooks: `webhook-id`, `webhook-timestamp`,
`webhook-signature`, with every secret the caller's policy lists, so a receiver rotating its
secret verifies with either) and POSTs it (webhook_post.py: the address connected to is the
address checked, no redirects). A failed attempt is retried with exponential backoff and
jitter until `max_age_s` (a day by default, never less than an hour) has passed since the job
ended; the event id stays the same, so receivers de-duplicate. The URL is checked again
against the policy at every attempt: a host the policy stopped allowing gets nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from dataclasses import dataclass

from google.protobuf import json_format

from clipmesh.generator import metrics
from clipmesh.generator.convert import job_to_proto
from clipmesh.generator.jobs import Job, state_name
from clipmesh.generator.ledger import JobLedger
from clipmesh.generator.outbox import OutboxEvent
from clipmesh.generator.webhook_post import Resolver, post_event
from clipmesh.generator.webhook_urls import check_webhook_url
from clipmesh.runtime.access import PolicySource
from clipmesh.runtime.errors import InvalidArgument
from clipmesh.runtime.usage import rfc3339
from clipmesh_client.webhooks import sign

log = logging.getLogger(__name__)

# Delivered and given-up events are kept this long for inspection, then pruned (hourly).
KEEP_DONE_S = 7 * 86_400
PRUNE_EVERY_S = 3600.0
# The longest the dispatcher sleeps without looking at the outbox (a clock that jumped).
MAX_IDLE_S = 60.0
# The wait after a round failed unexpectedly (the store failing): the dispatcher goes on, but
# never in a tight loop of attempts whose outcome cannot be recorded.
FAILED_ROUND_WAIT_S = 5.0
# Doublings of the initial backoff beyond which every cap is reached (0.01 s × 2**40 is over a
# year); without a bound, 2**1024 overflows a float after a long outage.
MAX_DOUBLINGS = 40


@dataclass(frozen=True)
class WebhookSettings:
    """How webhooks are delivered.

    Attributes:
        timeout_s: One attempt's limit (connect, send, answer).
        initial_backoff_s: Wait after the first failed attempt; doubles with each failure.
        max_backoff_s: The longest wait between two attempts.
        max_age_s: How long after the job's end attempts go on.
        max_in_flight: Attempts at once.
        resolver: Host name → addresses (None: the system's resolver).
    """

    timeout_s: float = 10.0
    initial_backoff_s: float = 5.0
    max_backoff_s: float = 600.0
    max_age_s: float = 86_400.0
    max_in_flight: int = 8
    resolver: Resolver | None = None

    def backoff_s(self, attempts: int) -> float:
        """The wait after `attempts` failed attempts: exponential, capped, ±20 % jitter so a
        receiver that comes back is not hit by every event at once."""
        doublings = min(max(0, attempts - 1), MAX_DOUBLINGS)
        base = min(self.max_backoff_s, self.initial_backoff_s * 2.0**doublings)
        return base * random.uniform(0.8, 1.2)


def webhook_event(job: Job) -> OutboxEvent | None:
    """The event announcing the end of `job` (None when it has no webhook).

    The body follows the Standard Webhooks shape: `type` ("job.succeeded", "job.failed",
    "job.cancelled"), `timestamp`, and `data.job`, the job as the API's JSON (proto3 JSON
    mapping: the same fields a GetJob answer has, camelCase).
    """
    if not job.webhook_url:
        return None
    ended_s = job.end_time_s or time.time()
    body = {
        "type": f"job.{state_name(job.state)}",
        "timestamp": rfc3339(ended_s),
        "data": {"job": json_format.MessageToDict(job_to_proto(job))},
    }
    return OutboxEvent(
        event_id=f"evt_{uuid.uuid4().hex}",
        job_id=job.job_id,
        caller=job.caller,
        url=job.webhook_url,
        payload=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
        created_s=ended_s,
    )


class WebhookDispatcher:
    """Delivers the outbox's due events, from one task on the gateway's loop."""

    def __init__(self, ledger: JobLedger, policies: PolicySource, settings: WebhookSettings):
        self._ledger = ledger
        self._policies = policies
        self._settings = settings
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._gate = asyncio.Semaphore(settings.max_in_flight)
        self._next_prune_s = 0.0

    def start(self) -> None:
        self._ledger.on_webhook = self._wake.set
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                wait_s = await self._round()
            except Exception:  # the dispatcher outlives any one failure, or no webhook goes
                log.exception("webhook dispatch failed; trying again in %g s", FAILED_ROUND_WAIT_S)
                await asyncio.sleep(FAILED_ROUND_WAIT_S)
                continue
            if wait_s > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait_s)

    async def _round(self) -> float:
        """Attempts every due event; returns the wait before the next round (0: at once)."""
        if time.time() >= self._next_prune_s:
            await self._ledger.outbox(lambda outbox: outbox.prune(time.time() - KEEP_DONE_S))
            self._next_prune_s = time.time() + PRUNE_EVERY_S
        due = await self._ledger.outbox(
            # Held past the attempt's timeout, so no other replica sends the same event while
            # this one is at it.
            lambda outbox: outbox.due(
                time.time(), 4 * self._settings.max_in_flight, self._settings.timeout_s + 30
            )
        )
        if due:
            # Every attempt ends before a failure is raised: none is left running unrecorded
            # while the next round takes its event again.
            outcomes = await asyncio.gather(
                *(self._deliver(event) for event in due), return_exceptions=True
            )
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
            return 0.0
        pending = await self._ledger.outbox(lambda outbox: outbox.pending())
        metrics.WEBHOOK_PENDING.set(pending)
        next_s = await self._ledger.outbox(lambda outbox: outbox.next_due_s())
        wait_s = MAX_IDLE_S if next_s is None else max(0.0, next_s - time.time())
        return min(wait_s, MAX_IDLE_S)

    async def _deliver(self, event: OutboxEvent) -> None:
        async with self._gate:
            try:
                error, retryable, asked_wait_s = await self._attempt(event)
            except Exception as exc:  # never let one event stop the dispatcher
                log.exception("webhook %s: attempt failed unexpectedly", event.event_id)
                error, retryable, asked_wait_s = f"internal error: {type(exc).__name__}", True, 0.0
        attempts, now = event.attempts + 1, time.time()
        if error is None:
            await self._ledger.outbox(lambda o: o.delivered(event.event_id, attempts, now))
            metrics.WEBHOOK_ATTEMPTS.labels("delivered").inc()
            log.info(
                "webhook delivered",
                extra={"event_id": event.event_id, "job_id": event.job_id, "attempts": attempts},
            )
            return
        # A receiver's Retry-After is honoured, within the longest backoff.
        wait_s = max(self._settings.backoff_s(attempts), asked_wait_s)
        next_s = now + min(wait_s, self._settings.max_backoff_s)
        if retryable and next_s - event.created_s <= self._settings.max_age_s:
            await self._ledger.outbox(lambda o: o.retry(event.event_id, attempts, next_s, error))
            metrics.WEBHOOK_ATTEMPTS.labels("retry").inc()
            log.info(
                "webhook attempt failed; will retry",
                extra={"event_id": event.event_id, "error": error, "retry_in_s": next_s - now},
            )
            return
        await self._ledger.outbox(lambda o: o.failed(event.event_id, attempts, now, error))
        metrics.WEBHOOK_ATTEMPTS.labels("failed").inc()
        log.warning(
            "webhook given up",
            extra={"event_id": event.event_id, "job_id": event.job_id, "error": error},
        )

    async def _attempt(self, event: OutboxEvent) -> tuple[str | None, bool, float]:
        """One attempt; returns (None, …) when delivered, else (why, whether to retry, the
        wait the receiver asked for)."""
        policy = self._policies.current()
        caller = policy.caller(event.caller)
        if not caller.webhook_secrets:
            return "the policy gives the job's caller no webhook secret any more", False, 0.0
        try:
            target = check_webhook_url(event.url, policy.webhooks, caller.webhook_hosts)
        except InvalidArgument as refused:
            why = f"the policy does not allow this URL any more: {refused.message}"
            return why, False, 0.0
        headers = sign(caller.webhook_secrets, event.event_id, int(time.time()), event.payload)
        outcome = await post_event(
            target,
            event.payload,
            headers,
            rules=policy.webhooks,
            timeout_s=self._settings.timeout_s,
            resolver=self._settings.resolver,
        )
        if outcome.delivered:
            return None, False, 0.0
        return outcome.error, outcome.retryable, outcome.retry_after_s or 0.0
