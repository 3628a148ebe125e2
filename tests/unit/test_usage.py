"""Quota charges (runtime/usage.py): check-and-add, refunds, the day boundary, restarts, and
the refusal's details."""

from __future__ import annotations

import datetime

import pytest

from clipmesh.runtime.errors import ResourceExhausted
from clipmesh.runtime.policy import CallerPolicy, Quota
from clipmesh.runtime.usage import QuotaLedger, next_midnight_s

BYTES = Quota.INGEST_BYTES_PER_DAY
# One second before midnight UTC, 2 December 2026.
LATE = datetime.datetime(2026, 12, 2, 23, 59, 59, tzinfo=datetime.UTC).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _team(limit: float | None) -> CallerPolicy:
    return CallerPolicy("team-a", quotas={BYTES: limit})


async def test_charges_add_up_to_the_limit_and_not_past_it(tmp_path) -> None:
    ledger = QuotaLedger(tmp_path / "usage.sqlite3", Clock(LATE))
    await ledger.charge("c1", _team(100), BYTES, 60)
    await ledger.charge("c2", _team(100), BYTES, 40)
    with pytest.raises(ResourceExhausted) as refused:
        await ledger.charge("c3", _team(100), BYTES, 1)
    error = refused.value
    assert error.reason == "QUOTA_EXCEEDED"
    assert error.metadata == {
        "quota": "ingest_bytes_per_day",
        "caller": "team-a",
        "limit": "100",
        "used": "100",
        "requested": "1",
        "reset_time": "2026-12-03T00:00:00Z",
    }
    assert error.retry_after_s == pytest.approx(1.0)  # until midnight
    (violation,) = error.quota_violations
    assert (violation.subject, violation.quota, violation.limit) == (
        "caller:team-a",
        "ingest_bytes_per_day",
        100,
    )
    assert "resets at 2026-12-03T00:00:00Z" in error.message
    # A charge that alone is larger than what is left is refused too, and nothing is written.
    with pytest.raises(ResourceExhausted):
        await ledger.charge("big", _team(1000), BYTES, 901)
    (use,) = await ledger.use(_team(1000), [BYTES])
    assert use.used == 100


async def test_a_refund_gives_the_amount_back_once(tmp_path) -> None:
    ledger = QuotaLedger(tmp_path / "usage.sqlite3", Clock(LATE))
    await ledger.charge("c1", _team(100), BYTES, 100)
    assert await ledger.refund("c1")
    assert not await ledger.refund("c1")
    await ledger.charge("c2", _team(100), BYTES, 100)  # fits again
    await ledger.charge("c2", _team(100), BYTES, 100)  # the same id is not charged twice
    (use,) = await ledger.use(_team(100), [BYTES])
    assert use.used == 100


async def test_use_survives_a_restart_and_starts_again_at_midnight(tmp_path) -> None:
    clock = Clock(LATE)
    ledger = QuotaLedger(tmp_path / "usage.sqlite3", clock)
    await ledger.charge("c1", _team(100), BYTES, 100)
    ledger.close()
    reopened = QuotaLedger(tmp_path / "usage.sqlite3", clock)  # a restart, the same day
    with pytest.raises(ResourceExhausted):
        await reopened.check_left(_team(100), BYTES)
    clock.now = LATE + 1  # midnight
    await reopened.check_left(_team(100), BYTES)
    await reopened.charge("c2", _team(100), BYTES, 100)
    (use,) = await reopened.use(_team(100), [BYTES])
    assert use.used == 100 and use.reset_time_s == next_midnight_s(LATE + 1)
    # Yesterday's charge can still be refunded (a job that ended after midnight).
    assert await reopened.refund("c1")


async def test_an_unlimited_quota_is_counted_but_never_refuses(tmp_path) -> None:
    ledger = QuotaLedger(tmp_path / "usage.sqlite3", Clock(LATE))
    for n in range(5):
        await ledger.charge(f"c{n}", _team(None), BYTES, 10**12)
    await ledger.check_left(_team(None), BYTES)
    (use,) = await ledger.use(_team(None), [BYTES])
    assert use.limit is None and use.used == 5 * 10**12
    assert ledger.today() == {("team-a", "ingest_bytes_per_day"): 5 * 10**12}


async def test_old_charges_are_pruned_after_a_week(tmp_path) -> None:
    clock = Clock(LATE)
    ledger = QuotaLedger(tmp_path / "usage.sqlite3", clock)
    await ledger.charge("old", _team(None), BYTES, 1)
    ledger.close()
    clock.now = LATE + 9 * 86_400
    reopened = QuotaLedger(tmp_path / "usage.sqlite3", clock)
    assert not await reopened.refund("old")  # gone
