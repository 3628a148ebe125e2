"""A short, bounded fuzzing run of every harness: the seeds and a few thousand mutations each.

`make fuzz` runs the same harnesses for minutes; this run catches a regression in CI within
about 10 s per harness. Each runs in its own process under libFuzzer's memory and time caps.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="atheris is in the dev extra")

from fuzz.run import HARNESSES, run_harness

RUNS = 2000
SECONDS = 10


@pytest.mark.parametrize("harness", list(HARNESSES))
def test_the_harness_runs_its_seeds_and_mutations_without_a_finding(
    harness: str, tmp_path: Path
) -> None:
    # A fixed seed: CI mutates the same way each time; `make fuzz` explores.
    result = run_harness(harness, seconds=SECONDS, runs=RUNS, work_dir=tmp_path, seed=1)
    assert not result.found, (tmp_path / harness / "fuzz.log").read_text()[-4000:]
    assert result.runs > 0
