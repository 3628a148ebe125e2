"""Per-caller quota use, kept durably so that limits hold across restarts.

A charge is one row — an id, the caller, the quota, the UTC day and an amount — written before
the work starts, in the same transaction as the record of the work where the service has one
(the generator's job insert), and deleted again (refunded) when the work turns out to cost
nothing: a generation that failed or was cancelled, an ingest that failed or was a duplicate.
The use of a daily quota is the sum of a caller's charges of the day; it starts from zero at
midnight UTC. Charging is check-and-add in one transaction, so concurrent requests cannot both
pass a limit only one of them fits.

`ChargeBook` works on a database the service owns (inside its transactions);
`QuotaLedger` is a standalone store for a service without one (the orchestrator's ingest),
on SQLite or on a PostgreSQL database its replicas share.
Both feed `clipmesh_quota_used` / `clipmesh_quota_limit` through one collector, read from the
database at scrape time, so the gauges are right after a restart and at midnight.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector

from clipmesh.runtime.access import PolicySource
from clipmesh.runtime.database import Database, SqliteDatabase, open_database
from clipmesh.runtime.errors import ResourceExhausted
from clipmesh.runtime.policy import CallerPolicy, Quota
from clipmesh.runtime.postgres import DatabaseTarget, Migration
from clipmesh_api.common.v1 import access_pb2
from clipmesh_client.status import QuotaViolation

log = logging.getLogger(__name__)

USAGE_SCHEMA = """
CREATE TABLE IF NOT EXISTS quota_charges (
    charge_id TEXT PRIMARY KEY,
    caller TEXT NOT NULL,
    quota TEXT NOT NULL,
    day TEXT NOT NULL,
    amount REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS quota_charges_by_caller ON quota_charges (day, caller, quota)
"""
# IF NOT EXISTS: the generator's job store and the orchestrator's ledger may share one
# database, and so this one table (charge ids are job ids or ingest ids; they never meet).
USAGE_TABLE_POSTGRES = """
CREATE TABLE IF NOT EXISTS quota_charges (
    charge_id TEXT PRIMARY KEY,
    caller TEXT NOT NULL,
    quota TEXT NOT NULL,
    day TEXT NOT NULL,
    amount DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS quota_charges_by_caller ON quota_charges (day, caller, quota);
"""
# Charges are kept a little over a week: enough to read back yesterday's use, bounded.
KEEP_DAYS = 8

Clock = Callable[[], float]


def utc_day(time_s: float) -> str:
    """The UTC date of `time_s`, as charges are keyed ("2026-12-02")."""
    return datetime.datetime.fromtimestamp(time_s, datetime.UTC).date().isoformat()


def next_midnight_s(time_s: float) -> float:
    """When the day of `time_s` ends (UTC), as Unix seconds."""
    day = datetime.datetime.fromtimestamp(time_s, datetime.UTC).date()
    midnight = datetime.datetime.combine(day, datetime.time(), datetime.UTC)
    return (midnight + datetime.timedelta(days=1)).timestamp()


def rfc3339(time_s: float) -> str:
    return datetime.datetime.fromtimestamp(time_s, datetime.UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class QuotaUse:
    """One quota of a caller: its limit (None: unlimited), what is used, when it resets (0 for
    a quota that does not)."""

    quota: Quota
    limit: float | None
    used: float
    reset_time_s: float = 0.0


def quota_use_to_proto(use: QuotaUse) -> access_pb2.QuotaUsage:
    """A quota's use in its API form (`clipmesh.common.v1.QuotaUsage`)."""
    message = access_pb2.QuotaUsage(quota=use.quota.value, used=use.used, unit=use.quota.unit)
    if use.limit is not None:
        message.limit = use.limit
    if use.reset_time_s:
        message.reset_time.FromSeconds(int(use.reset_time_s))
    return message


def quota_use_from_proto(message: access_pb2.QuotaUsage) -> QuotaUse:
    return QuotaUse(
        Quota(message.quota),
        message.limit if message.HasField("limit") else None,
        message.used,
        message.reset_time.seconds if message.HasField("reset_time") else 0.0,
    )


def quota_exceeded(
    caller: str, quota: Quota, *, limit: float, used: float, asked: float, now_s: float
) -> ResourceExhausted:
    """The refusal of a request that would take `caller` past `limit`: RESOURCE_EXHAUSTED with
    a QuotaFailure, and for a daily quota the reset time (metadata) and the wait (RetryInfo)."""
    unit = quota.unit
    what = f"{_amount(used, unit)} of its {_amount(limit, unit)} {quota.value}"
    metadata = {
        "quota": quota.value,
        "caller": caller,
        "limit": _number(limit),
        "used": _number(used),
        "requested": _number(asked),
    }
    retry_after_s = 10.0
    if quota.daily:
        reset_s = next_midnight_s(now_s)
        metadata["reset_time"] = rfc3339(reset_s)
        retry_after_s = max(1.0, reset_s - now_s)
        when = f"; it resets at {metadata['reset_time']}"
        reason = "QUOTA_EXCEEDED"
    else:
        when = "; retry when one of its jobs has ended"
        reason = "TOO_MANY_JOBS"
    needs = f"this request needs {_amount(asked, unit)}" if asked else "nothing is left"
    message = f"caller {caller!r} has used {what}; {needs}{when}"
    violation = QuotaViolation(
        subject=f"caller:{caller}", quota=quota.value, description=message, limit=int(limit)
    )
    return ResourceExhausted(
        message,
        retry_after_s=retry_after_s,
        reason=reason,
        metadata=metadata,
        quota_violations=(violation,),
    )


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.3f}"


def _amount(value: float, unit: str) -> str:
    return f"{_number(value)} {unit}"


class ChargeBook:
    """Quota charges in a database whose schema includes `USAGE_SCHEMA` (or, on PostgreSQL,
    `USAGE_TABLE_POSTGRES`). Methods run inside the caller's transaction when it has one open.

    Args:
        db: The database.
        clock: Unix seconds now (tests move it past midnight).
    """

    def __init__(self, db: Database, clock: Clock = time.time) -> None:
        self._db = db
        self._clock = clock

    def charge(self, charge_id: str, caller: CallerPolicy, quota: Quota, amount: float) -> None:
        """Adds a charge, or raises the ResourceExhausted of `quota_exceeded` when the caller's
        use today plus `amount` would pass its limit. A charge id already present is left as it
        is, unchecked (a retried request is not charged, or refused, twice)."""
        with self._db.transaction():  # joins the caller's, when it has one open
            # Check-and-add must not interleave with another replica's for the same caller.
            self._db.lock(f"quota:{caller.name}")
            known = self._db.execute(
                "SELECT 1 FROM quota_charges WHERE charge_id = ?", (charge_id,)
            ).fetchone()
            if known:
                return
            now = self._clock()
            limit = caller.limit(quota)
            if limit is not None:
                used = self.used(caller.name, quota, now)
                if used + amount > limit:
                    raise quota_exceeded(
                        caller.name, quota, limit=limit, used=used, asked=amount, now_s=now
                    )
            self._db.execute(
                "INSERT INTO quota_charges (charge_id, caller, quota, day, amount)"
                " VALUES (?, ?, ?, ?, ?)",
                (charge_id, caller.name, quota.value, utc_day(now), amount),
            )

    def check_left(self, caller: CallerPolicy, quota: Quota) -> None:
        """Raises the `quota_exceeded` refusal when the caller has nothing left today."""
        limit = caller.limit(quota)
        if limit is None:
            return
        now = self._clock()
        used = self.used(caller.name, quota, now)
        if used >= limit:
            raise quota_exceeded(caller.name, quota, limit=limit, used=used, asked=0, now_s=now)

    def refund(self, charge_id: str) -> bool:
        """Deletes a charge; True when there was one."""
        cursor = self._db.execute("DELETE FROM quota_charges WHERE charge_id = ?", (charge_id,))
        return cursor.rowcount > 0

    def used(self, caller: str, quota: Quota, now_s: float | None = None) -> float:
        """The caller's use of a daily quota on the day of `now_s` (default now)."""
        day = utc_day(self._clock() if now_s is None else now_s)
        (total,) = self._db.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM quota_charges"
            " WHERE day = ? AND caller = ? AND quota = ?",
            (day, caller, quota.value),
        ).fetchone()
        return float(total)

    def use(self, caller: CallerPolicy, quotas: Iterable[Quota]) -> list[QuotaUse]:
        """The caller's daily `quotas` as they stand today."""
        now = self._clock()
        return [
            QuotaUse(q, caller.limit(q), self.used(caller.name, q, now), next_midnight_s(now))
            for q in quotas
        ]

    def today(self) -> dict[tuple[str, str], float]:
        """Every caller's use today, by (caller, quota), for the metrics."""
        rows = self._db.execute(
            "SELECT caller, quota, SUM(amount) FROM quota_charges WHERE day = ?"
            " GROUP BY caller, quota",
            (utc_day(self._clock()),),
        ).fetchall()
        return {(caller, quota): float(total) for caller, quota, total in rows}

    def prune(self) -> int:
        """Drops charges older than `KEEP_DAYS`; returns how many."""
        oldest = utc_day(self._clock() - KEEP_DAYS * 86_400)
        return self._db.execute("DELETE FROM quota_charges WHERE day < ?", (oldest,)).rowcount


class QuotaLedger:
    """A standalone store of quota charges, for a service that keeps no other database (the
    orchestrator's ingest): `usage.sqlite3` under its data dir, or a PostgreSQL database its
    replicas share, so that every replica counts the same use. Coroutines; the database work
    runs on worker threads.

    Args:
        db: The database (`open_quota_database`), or an SQLite file's path.
        clock: Unix seconds now.
    """

    SCHEMA_VERSION = 1

    def __init__(self, db: Database | Path, clock: Clock = time.time) -> None:
        if isinstance(db, Path):
            db = SqliteDatabase(db, "quota ledger", USAGE_SCHEMA, self.SCHEMA_VERSION)
        self._db = db
        self._book = ChargeBook(self._db, clock)
        self._book.prune()

    async def charge(self, charge_id: str, caller: CallerPolicy, quota: Quota, amount: float):
        """See `ChargeBook.charge`."""
        await asyncio.to_thread(self._book.charge, charge_id, caller, quota, amount)

    async def refund(self, charge_id: str) -> bool:
        return await asyncio.to_thread(self._book.refund, charge_id)

    async def check_left(self, caller: CallerPolicy, quota: Quota) -> None:
        """See `ChargeBook.check_left`."""
        await asyncio.to_thread(self._book.check_left, caller, quota)

    async def use(self, caller: CallerPolicy, quotas: Iterable[Quota]) -> list[QuotaUse]:
        return await asyncio.to_thread(self._book.use, caller, list(quotas))

    def today(self) -> dict[tuple[str, str], float]:
        return self._book.today()

    def close(self) -> None:
        self._db.close()


def open_quota_database(
    data_dir: Path, target: DatabaseTarget | None = None, *, pool_size: int = 4
) -> Database:
    """The quota ledger's database: `target` when given, else `data_dir/usage.sqlite3`."""
    return open_database(
        target,
        sqlite_path=data_dir / "usage.sqlite3",
        what="quota ledger",
        sqlite_schema=USAGE_SCHEMA,
        sqlite_version=QuotaLedger.SCHEMA_VERSION,
        migrations=[Migration(1, USAGE_TABLE_POSTGRES)],
        pool_size=pool_size,
    )


# Metrics. One collector for the process; each service adds a source while it runs (tests run
# several services in one process, and a metric family may be written only once).

UsageSource = Callable[[], Iterable[tuple[str, Quota, float, float | None]]]
"""Yields (caller, quota, used, limit) rows; limit None is unlimited (not exported)."""


class _QuotaCollector(Collector):
    def __init__(self) -> None:
        self._sources: dict[int, UsageSource] = {}
        self._lock = threading.Lock()

    def add(self, source: UsageSource) -> Callable[[], None]:
        """Registers a source; returns what removes it."""
        with self._lock:
            key = id(source)
            self._sources[key] = source

        def remove() -> None:
            with self._lock:
                self._sources.pop(key, None)

        return remove

    def collect(self):
        used = GaugeMetricFamily(
            "clipmesh_quota_used",
            "Use of each caller's quota: today's for a daily quota, now for concurrent jobs.",
            labels=["caller", "quota"],
        )
        limit = GaugeMetricFamily(
            "clipmesh_quota_limit",
            "Each caller's quota limits from the policy (absent: unlimited).",
            labels=["caller", "quota"],
        )
        with self._lock:
            sources = list(self._sources.values())
        seen: set[tuple[str, str]] = set()
        for source in sources:
            try:
                rows = list(source())
            except Exception:  # a scrape must never fail for one service's store
                log.exception("quota metrics: a usage source failed")
                continue
            for caller, quota, value, bound in rows:
                if (caller, quota.value) in seen:
                    continue
                seen.add((caller, quota.value))
                used.add_metric([caller, quota.value], value)
                if bound is not None:
                    limit.add_metric([caller, quota.value], bound)
        yield used
        yield limit


QUOTA_METRICS = _QuotaCollector()
REGISTRY.register(QUOTA_METRICS)


def policy_usage_rows(
    policies: PolicySource, ledger: QuotaLedger, quotas: list[Quota]
) -> UsageSource:
    """A metrics source: today's use of `quotas` by every caller the policy names."""

    def rows() -> Iterable[tuple[str, Quota, float, float | None]]:
        policy = policies.current()
        if not policy.enforced:
            return []
        today = ledger.today()
        return [
            (name, quota, today.get((name, quota.value), 0.0), caller.limit(quota))
            for name, caller in policy.callers.items()
            for quota in quotas
        ]

    return rows
