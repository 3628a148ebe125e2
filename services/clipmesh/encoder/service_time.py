"""How long a batch of n items takes: a running fit of `fixed + per_item × n` to measured batches.

Admission needs a forecast of when queued work will be done, and batches are neither free nor
proportional to their size: on a CPU a batch of 1 costs most of a batch of 4 (the weights are
read from memory either way), on a GPU a batch of 64 little more than one. So the model is a
line through recent measurements, fitted by exponentially weighted least squares (recent
batches count most, as load and clocks change). Until two different sizes have been seen the
slope is unknown: the line then goes through the origin (time proportional to size), which
over-estimates large batches after a small one and so errs on the side of refusing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from clipmesh.runtime.estimators import MeanDeviation


@dataclass
class BatchTimeModel:
    """A running estimate of batch compute time by batch size.

    Args:
        decay: Weight kept by the old measurements at each new one (0.9: the last ~10 count).
    """

    decay: float = 0.9
    _weight: float = 0.0
    _n: float = 0.0
    _t: float = 0.0
    _nn: float = 0.0
    _nt: float = 0.0

    @property
    def measured(self) -> bool:
        """Whether any batch has been measured yet (before that, nothing is forecast)."""
        return self._weight > 0

    def record(self, size: int, seconds: float) -> None:
        """Adds one measured batch."""
        d = self.decay
        self._weight = d * self._weight + 1
        self._n = d * self._n + size
        self._t = d * self._t + seconds
        self._nn = d * self._nn + size * size
        self._nt = d * self._nt + size * seconds

    def seconds(self, size: int) -> float:
        """The forecast compute time of a batch of `size` items (0 before any measurement)."""
        if size <= 0 or not self.measured:
            return 0.0
        w, n, t = self._weight, self._n, self._t
        spread = w * self._nn - n * n
        if spread <= 1e-9 * max(1.0, w * self._nn):  # one size seen: proportional to size
            return t / n * size
        per_item = (w * self._nt - n * t) / spread
        fixed = (t - per_item * n) / w
        if per_item < 0 or fixed < 0:  # noise: fall back to the mean cost per item
            return t / n * size
        return fixed + per_item * size

    def per_item_seconds(self, batch: int) -> float:
        """Seconds per item in a batch of `batch`: the unit of retry hints."""
        return self.seconds(batch) / batch if batch > 0 else 0.0


@dataclass
class ForecastCalibration:
    """How far work actually takes past its forecast, and the factor admission allows for it.

    A forecast counts the batches ahead at their fitted times; what it leaves out — decoding
    slowed by the batches computing beside it, the event loop's turn to deliver a result, a
    batch that runs long on a shared machine — shows up as work that was forecast to fit its
    deadline and did not. So every admitted request's actual time is compared with its
    forecast, and admission multiplies forecasts by 1 + the running mean of how far actual
    ran past forecast (actual / forecast - 1) plus `deviations` of its mean deviation, as TCP
    sizes its retransmission timeout from measured round trips: a margin near 1 when forecasts
    hold that grows when the machine makes them optimistic. (Kept as a ratio: a calibration by
    seconds of overrun was measured too, and let more work through that then ended late
    under overload; docs/benchmarks.md, "Search".)

    Args:
        deviations: How many mean deviations above the mean overrun to allow for.
    """

    deviations: float = 3.0
    overrun: MeanDeviation = field(default_factory=MeanDeviation)

    @property
    def measured(self) -> int:
        """How many admitted requests have been compared with their forecasts."""
        return self.overrun.measured

    def record(self, forecast_s: float, actual_s: float) -> None:
        """Adds one admitted request's forecast and the time it actually took."""
        if forecast_s > 0:
            self.overrun.record(actual_s / forecast_s - 1.0)

    @property
    def factor(self) -> float:
        """What to multiply a forecast by before comparing it with a deadline (at least 1)."""
        return max(1.0, 1.0 + self.overrun.bound(self.deviations))
