"""The running mean and mean deviation behind clipmesh's self-sizing margins."""

from __future__ import annotations

import pytest

from clipmesh.runtime.estimators import MeanDeviation


def test_the_first_value_sets_the_mean_and_half_its_size_the_deviation() -> None:
    estimate = MeanDeviation()
    assert estimate.bound(4) == 0.0 and not estimate.measured
    estimate.record(-0.2)
    assert (estimate.mean, estimate.deviation, estimate.measured) == (-0.2, 0.1, 1)


def test_steady_values_converge_and_a_change_widens_the_bound_at_once() -> None:
    estimate = MeanDeviation()
    for _ in range(100):
        estimate.record(10.0)
    assert estimate.mean == pytest.approx(10.0)
    assert estimate.bound(4) == pytest.approx(10.0, abs=0.01)
    estimate.record(20.0)
    assert estimate.mean == pytest.approx(11.25)  # an eighth of the error
    assert estimate.bound(4) > 15.0  # the deviation jumps by an eighth of the error's size
