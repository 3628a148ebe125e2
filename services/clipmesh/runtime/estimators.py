"""A running mean and mean deviation of a measured quantity: the one way clipmesh sizes a
margin that follows the machine (the index's share of a search budget, the encoder's allowance
for forecasts that run over)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class MeanDeviation:
    """A running mean and mean deviation, as TCP keeps them for round trips (RFC 6298).

    Each new value moves the mean by `gain` of its error and the deviation by `gain` of the
    error's size, so `bound(k)` — the mean plus k deviations — stays near the mean while the
    values are steady and widens as soon as they vary. The first value sets the mean, and half
    its size the deviation.

    Args:
        gain: Weight of each new value (0.125, TCP's: about the last eight count).
    """

    gain: float = 0.125
    mean: float = 0.0
    deviation: float = 0.0
    measured: int = 0

    def record(self, value: float) -> None:
        """Adds one measured value."""
        if not self.measured:
            self.mean, self.deviation = value, abs(value) / 2
        else:
            error = value - self.mean
            self.mean += self.gain * error
            self.deviation += self.gain * (abs(error) - self.deviation)
        self.measured += 1

    def bound(self, deviations: float) -> float:
        """The mean plus `deviations` mean deviations (0 before any value)."""
        return self.mean + deviations * self.deviation
