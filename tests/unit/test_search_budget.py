"""The share of a search's budget kept for its index stage when the encoder is called."""

from __future__ import annotations

import pytest

from clipmesh.orchestrator.budget import FLOOR_S, MAX_SHARE, IndexReserve


def test_before_any_measurement_only_the_floor_is_kept() -> None:
    assert IndexReserve().seconds(0.5) == FLOOR_S


def test_steady_index_times_keep_about_their_mean() -> None:
    reserve = IndexReserve()
    for _ in range(100):
        reserve.record(0.010)
    assert reserve.seconds(0.5) == pytest.approx(0.010, rel=0.05)


def test_jittery_index_times_keep_room_for_the_jitter() -> None:
    reserve = IndexReserve()
    for _ in range(50):
        reserve.record(0.005)
        reserve.record(0.025)
    mean = 0.015
    assert reserve.seconds(0.5) > mean + 2 * 0.010  # mean + 4 mean deviations, about 0.055


def test_never_more_than_a_share_of_the_budget() -> None:
    reserve = IndexReserve()
    reserve.record(2.0)
    assert reserve.seconds(0.5) == pytest.approx(MAX_SHARE * 0.5)
