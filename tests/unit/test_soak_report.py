"""The soak's report: which outcomes count as errors, latency percentiles, RSS growth."""

from __future__ import annotations

import pytest

from bench.soak_report import OperationStats, is_expected, rss_growth
from clipmesh_client.errors import DeadlineExceededError, ResourceExhaustedError


def test_load_shedding_and_duplicates_are_expected_refusals() -> None:
    assert is_expected("search", "RESOURCE_EXHAUSTED", "QUEUE_FULL")
    assert is_expected("search", "DEADLINE_EXCEEDED", "BUDGET_EXCEEDED")
    assert is_expected("ingest", "DUPLICATE")
    assert is_expected("generation", "RESOURCE_EXHAUSTED", "QUEUE_FULL")


def test_other_failures_are_unexpected() -> None:
    # A client-side deadline is not the budget doing its job; nor is a broken dependency.
    assert not is_expected("search", "DEADLINE_EXCEEDED")
    assert not is_expected("search", "UNAVAILABLE", "DEPENDENCY_UNAVAILABLE")
    assert not is_expected("ingest", "VIDEO_FAILED", "NOT_A_VIDEO")
    assert not is_expected("generation", "JOB_FAILED", "INTERNAL")
    assert not is_expected("generation", "DUPLICATE")


def test_stats_count_refusals_and_errors_apart_and_keep_the_first_message_of_each() -> None:
    stats = OperationStats("search")
    stats.accepted(0.1)
    stats.failed_with(ResourceExhaustedError("encoder queue full", reason="QUEUE_FULL"))
    stats.failed_with(DeadlineExceededError("out of budget", reason="BUDGET_EXCEEDED"))
    stats.failed_with(DeadlineExceededError("client deadline"))
    stats.failed_with(DeadlineExceededError("client deadline, again"))

    summary = stats.summary()

    assert summary["requests"] == 5
    assert summary["ok"] == 1
    assert summary["expected_refusals"] == {
        "RESOURCE_EXHAUSTED/QUEUE_FULL": 1,
        "DEADLINE_EXCEEDED/BUDGET_EXCEEDED": 1,
    }
    assert summary["unexpected_errors"] == {"DEADLINE_EXCEEDED": 2}
    assert summary["examples"] == {
        "RESOURCE_EXHAUSTED/QUEUE_FULL": "encoder queue full",
        "DEADLINE_EXCEEDED/BUDGET_EXCEEDED": "out of budget",
        "DEADLINE_EXCEEDED": "client deadline",
    }


def test_percentiles_are_of_accepted_requests_in_milliseconds() -> None:
    stats = OperationStats("search")
    for ms in range(1, 101):
        stats.accepted(ms / 1000)
    stats.failed("RESOURCE_EXHAUSTED")

    summary = stats.summary()

    assert summary["p50_ms"] == pytest.approx(50.5)
    assert summary["p99_ms"] == pytest.approx(99.01)


def test_no_accepted_request_gives_no_percentiles() -> None:
    stats = OperationStats("generation")
    stats.failed("RESOURCE_EXHAUSTED")
    assert stats.summary()["p50_ms"] is None


def test_rss_growth_compares_the_end_with_right_after_warm_up() -> None:
    # 100 s run: warm-up to 20 s (the start-up climb is ignored), then 100 MB, ending at 105.
    samples = [(0, 50.0), (10, 90.0), (20, 100.0), (25, 100.0), (50, 102.0)]
    samples += [(90, 104.0), (95, 105.0), (100, 106.0)]

    growth = rss_growth(samples, 100, warmup_fraction=0.2)

    assert growth == {"start": 50.0, "after_warmup": 100.0, "end": 105.0, "growth_pct": 5.0}


def test_rss_growth_falls_back_to_the_nearest_samples_when_windows_are_empty() -> None:
    samples = [(0, 80.0), (40, 100.0), (60, 90.0)]

    growth = rss_growth(samples, 100, warmup_fraction=0.2)

    assert growth["after_warmup"] == 100.0
    assert growth["end"] == 90.0
    assert growth["growth_pct"] == -10.0


def test_rss_growth_without_samples_is_unknown() -> None:
    assert rss_growth([], 100, warmup_fraction=0.2)["growth_pct"] is None
