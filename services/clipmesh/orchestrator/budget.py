"""How much of a search's budget to keep for the index when the encoder is called.

The encoder refuses work it forecasts would finish after the deadline it is given
(`WOULD_MISS_DEADLINE`). Given the whole search's deadline it would accept an embedding that
finishes just in time — and leaves the index no time, so the search would still end
DEADLINE_EXCEEDED after all the waiting. So the encoder gets the deadline minus the time the
index stage usually takes, measured here as a running mean and mean deviation of recent index
stages (the way TCP sizes a retransmission timeout): mean + 4 deviations, at least a floor,
at most a quarter of the budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from clipmesh.runtime.estimators import MeanDeviation

FLOOR_S = 0.002
"""The least kept for the index: one gRPC round trip on loopback."""
MAX_SHARE = 0.25
"""The most of a budget kept for the index, whatever it has measured."""
DEVIATIONS = 4
"""Mean deviations above the mean index stage kept (as TCP's timeout: mean + 4 deviations)."""


@dataclass
class IndexReserve:
    """A running estimate of the index stage's time, and the share of a budget to keep for it."""

    stage_s: MeanDeviation = field(default_factory=MeanDeviation)

    def record(self, seconds: float) -> None:
        """Adds one index stage's measured time."""
        self.stage_s.record(seconds)

    def seconds(self, budget_s: float) -> float:
        """Seconds of a `budget_s` search to keep for its index stage."""
        wanted = max(FLOOR_S, self.stage_s.bound(DEVIATIONS))
        return min(wanted, MAX_SHARE * budget_s)
