"""Searches under a real budget: what the mesh sustains within 500 ms, and how it says no.

Two measurements, both with every query carrying the budget users run with (500 ms):

- Budget-bounded throughput. Queries arrive open-loop (Poisson arrivals at a set rate, as
  independent users send them, not a fixed set of callers that wait for each other); a rate
  *holds* when at least 99% of its queries succeed within the budget. The rate is stepped up
  until two steps in a row fail; the highest that held is `budget_bounded_qps`.
- Admission at concurrency 32: 32 callers back to back, far past what 2 cores can embed in
  500 ms. Work the mesh cannot do in time should be refused at once (RESOURCE_EXHAUSTED with a
  retry delay), not accepted and left to end DEADLINE_EXCEEDED: `admitted_deadline_exceeded`
  counts the latter, `refusal_p99_ms` says how fast a refusal comes. A refused caller waits the
  delay its RetryInfo gives (and up to half as long again, at random) before its next
  query, as the error contract asks of callers (docs/errors.md); callers that ignore it are
  measured too (`impolite`), since a refusal costs each service a call.

A failure is counted by its code, reason and, for a spent budget, the stage that spent it
(the service that did not answer in time, or the one there was no time left to call).
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field

from bench.common import console, latency_summary
from bench.search_steps import TOP_K
from clipmesh_client import AsyncClient, ClipmeshError

HOLDS_AT = 0.99  # share of queries that must succeed within the budget for a rate to hold


@dataclass
class Outcomes:
    """How the queries of one measurement ended, and how long each took."""

    codes: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)  # "CODE REASON" of failures
    ok_s: list[float] = field(default_factory=list)
    refused_s: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        return {
            "outcomes": dict(self.codes),
            "failure_reasons": dict(self.reasons),
            **(latency_summary(self.ok_s) if self.ok_s else {"p50_ms": None, "p99_ms": None}),
            "refusals": len(self.refused_s),
            "refusal_p99_ms": latency_summary(self.refused_s)["p99_ms"] if self.refused_s else None,
        }


def _failure(error: ClipmeshError) -> str:
    """ "CODE REASON", and where the budget ran out for DEADLINE_EXCEEDED."""
    label = f"{error.code.name} {error.reason}"
    if error.code.name != "DEADLINE_EXCEEDED":
        return label
    stage = error.metadata.get("service")
    if not stage and (before := re.search(r"before the (\w+) was called", error.message)):
        stage = f"before {before[1]}"
    return f"{label} ({stage or 'unknown stage'})"


async def _one(
    client: AsyncClient, image: bytes, budget_ms: int, outcomes: Outcomes
) -> float | None:
    """One search; returns the retry delay a refusal gave (None otherwise)."""
    began = time.perf_counter()
    try:
        await client.search(image=image, top_k=TOP_K, skip_cache=True, budget_ms=budget_ms)
    except ClipmeshError as error:
        outcomes.codes[error.code.name] += 1
        outcomes.reasons[_failure(error)] += 1
        if error.code.name == "RESOURCE_EXHAUSTED":
            outcomes.refused_s.append(time.perf_counter() - began)
        return error.retry_after_s
    elapsed = time.perf_counter() - began
    outcomes.codes["OK" if elapsed * 1000 <= budget_ms else "OK_LATE"] += 1
    outcomes.ok_s.append(elapsed)
    return None


async def open_loop(
    client: AsyncClient, images: list[bytes], rate: float, seconds: float, budget_ms: int
) -> dict[str, object]:
    """Poisson arrivals at `rate` queries/s for `seconds`; every query carries `budget_ms`."""
    outcomes = Outcomes()
    arrivals = random.Random(int(rate * 1000))
    tasks, sent, started = [], 0, time.perf_counter()
    next_at = started
    while next_at - started < seconds:
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        image = images[sent % len(images)]
        tasks.append(asyncio.create_task(_one(client, image, budget_ms, outcomes)))
        sent += 1
        next_at += arrivals.expovariate(rate)
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    in_budget = outcomes.codes["OK"] / sent
    return {
        "rate": rate,
        "sent": sent,
        "completed_per_s": round(len(outcomes.ok_s) / elapsed, 2),
        "in_budget_share": round(in_budget, 4),
        "holds": in_budget >= HOLDS_AT,
        **outcomes.summary(),
    }


async def budget_bounded(
    client: AsyncClient,
    images: list[bytes],
    *,
    budget_ms: int,
    start: float,
    step: float,
    seconds: float,
) -> dict[str, object]:
    """Steps the arrival rate up from `start` until two steps in a row fail to hold."""
    steps, rate, failed_in_a_row, best = [], start, 0, 0.0
    while failed_in_a_row < 2:
        level = await open_loop(client, images, rate, seconds, budget_ms)
        console.print(f"open loop {rate:g}/s: {level}")
        steps.append(level)
        if level["holds"]:
            best, failed_in_a_row = rate, 0
        else:
            failed_in_a_row += 1
        rate += step
    return {"budget_ms": budget_ms, "budget_bounded_qps": best, "steps": steps}


async def admission_at(
    client: AsyncClient,
    images: list[bytes],
    concurrency: int,
    count: int,
    budget_ms: int,
    *,
    polite: bool = True,
) -> dict[str, object]:
    """`count` queries from `concurrency` callers back to back, each with `budget_ms`; polite
    callers wait the retry delay of a refusal before their next query."""
    outcomes = Outcomes()
    next_query = iter(range(count))

    async def caller(number: int) -> None:
        jitter = random.Random(number)
        for n in next_query:
            retry_after_s = await _one(client, images[n % len(images)], budget_ms, outcomes)
            if polite and retry_after_s:
                # Up to half as long again, at random, as clients back off (gRPC's own retries
                # jitter too): callers refused together would otherwise return together.
                await asyncio.sleep(retry_after_s * jitter.uniform(1.0, 1.5))

    started = time.perf_counter()
    await asyncio.gather(*(caller(number) for number in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "callers_wait_retry_delay": polite,
        "budget_ms": budget_ms,
        "queries": count,
        "admitted_deadline_exceeded": outcomes.codes["DEADLINE_EXCEEDED"],
        "completed_per_s": round(len(outcomes.ok_s) / elapsed, 2),
        **outcomes.summary(),
    }
