"""Quota charges shared by replicas through PostgreSQL (runtime/usage.py): the orchestrator's
replicas count one caller's ingest bytes together — concurrent charges from two replicas never
pass the limit — and the ledger shares its database (and its one table) with the generator's
job store, whichever of the two migrates first."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from clipmesh.generator.schema import open_job_database
from clipmesh.runtime.errors import ResourceExhausted
from clipmesh.runtime.policy import CallerPolicy, Quota
from clipmesh.runtime.postgres import DatabaseTarget
from clipmesh.runtime.usage import QuotaLedger, open_quota_database

BYTES = Quota.INGEST_BYTES_PER_DAY
TEAM = CallerPolicy("team-a", quotas={BYTES: 100.0})


async def test_two_replicas_count_one_callers_use_together(
    postgres_database: DatabaseTarget, tmp_path: Path
) -> None:
    first = QuotaLedger(open_quota_database(tmp_path / "a", postgres_database))
    second = QuotaLedger(open_quota_database(tmp_path / "b", postgres_database))
    try:
        # 20 charges of 10 at once, half on each replica: exactly 10 fit under 100.
        outcomes = await asyncio.gather(
            *(
                (first if n % 2 else second).charge(f"ingest-{n}", TEAM, BYTES, 10)
                for n in range(20)
            ),
            return_exceptions=True,
        )
        refused = [o for o in outcomes if isinstance(o, ResourceExhausted)]
        assert len(refused) == 10 and all(o is None or o in refused for o in outcomes)
        (use,) = await first.use(TEAM, [BYTES])
        assert use.used == 100
        assert await second.refund("ingest-1")  # charged on the other replica
        assert (await first.use(TEAM, [BYTES]))[0].used == 90
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize("first", ["job store", "quota ledger"])
def test_the_ledger_and_the_job_store_share_one_database(
    postgres_database: DatabaseTarget, tmp_path: Path, first: str
) -> None:
    openers = {
        "job store": lambda: open_job_database(tmp_path, postgres_database),
        "quota ledger": lambda: open_quota_database(tmp_path, postgres_database),
    }
    opened = [openers[first](), *(open() for name, open in openers.items() if name != first)]
    try:
        for db in opened:
            assert db.execute("SELECT COUNT(*) FROM quota_charges").fetchone() == (0,)
    finally:
        for db in opened:
            db.close()
