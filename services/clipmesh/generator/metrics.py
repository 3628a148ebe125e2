"""Generator gateway metrics (Prometheus): jobs, queue, providers, cache, rate limits."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

from clipmesh.generator.jobs import ENDED_STATES, JobState
from clipmesh.runtime.metrics import create_zero_series

# Generation takes seconds to many minutes; queue waits range from 0 to hours.
JOB_SECONDS_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 3600)

JOBS = Gauge(
    "clipmesh_generator_jobs",
    "Jobs the gateway holds now, by state and backend.",
    ["state", "backend"],
)
JOBS_ENDED = Counter(
    "clipmesh_generator_jobs_ended_total",
    "Jobs that ended, by final state and backend.",
    ["state", "backend"],
)
QUEUE_DEPTH = Gauge(
    "clipmesh_generator_queue_depth", "Jobs waiting for a provider slot, by backend.", ["backend"]
)
QUEUE_SECONDS = Histogram(
    "clipmesh_generator_queue_seconds",
    "Time a job waited in the queue before running.",
    ["backend"],
    buckets=JOB_SECONDS_BUCKETS,
)
RESULT_SECONDS = Histogram(
    "clipmesh_generator_time_to_result_seconds",
    "Time from submission to a successful result.",
    ["backend"],
    buckets=JOB_SECONDS_BUCKETS,
)
PROVIDER_ERRORS = Counter(
    "clipmesh_generator_provider_errors_total",
    "Errors a provider answered, by backend and the provider's code.",
    ["backend", "code"],
)
PROVIDER_RETRIES = Counter(
    "clipmesh_generator_provider_retries_total",
    "Provider calls retried after a 429, a 5xx or a transport error.",
    ["backend"],
)
CACHE_LOOKUPS = Counter(
    "clipmesh_generator_cache_lookups_total", "Content cache lookups, by result.", ["result"]
)
RATE_LIMIT_WAIT_SECONDS = Histogram(
    "clipmesh_generator_rate_limit_wait_seconds",
    "Time a submission waited for the provider's submissions-per-second limit.",
    ["backend"],
    buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
WEBHOOK_ATTEMPTS = Counter(
    "clipmesh_generator_webhook_attempts_total",
    "Webhook delivery attempts, by outcome: delivered, retry (failed, tried again later), "
    "failed (given up: refused for good, or retried for the whole retry period).",
    ["outcome"],
)
WEBHOOK_PENDING = Gauge(
    "clipmesh_generator_webhooks_pending", "Webhook events waiting to be delivered."
)


def create_series(backends: Iterable[str]) -> None:
    """Every series whose labels are known in advance, at 0, for the gateway's `backends` (its
    start): a first failed job or given-up webhook then shows as an increase from 0. The
    providers' error codes appear as providers answer them."""
    backends = tuple(backends)
    unfinished = [state.value for state in JobState if state not in ENDED_STATES]
    create_zero_series(JOBS, state=unfinished, backend=backends)
    create_zero_series(JOBS_ENDED, state=[state.value for state in ENDED_STATES], backend=backends)
    for metric in (
        QUEUE_DEPTH,
        QUEUE_SECONDS,
        RESULT_SECONDS,
        PROVIDER_RETRIES,
        RATE_LIMIT_WAIT_SECONDS,
    ):
        create_zero_series(metric, backend=backends)
    create_zero_series(CACHE_LOOKUPS, result=("hit", "miss"))
    create_zero_series(WEBHOOK_ATTEMPTS, outcome=("delivered", "retry", "failed"))
