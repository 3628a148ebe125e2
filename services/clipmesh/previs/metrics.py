"""Previs metrics (Prometheus): shots and clips by outcome, regenerations, time per shot."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from clipmesh.previs.records import ENDED_SHOT_STATES
from clipmesh.runtime.metrics import create_zero_series

CLIP_RESULTS = ("passed", "below_threshold", "failed")

PREVIS_SHOTS = Counter(
    "clipmesh_previs_shots_total",
    "Previs shot revisions finished, by outcome (ready, below_threshold, blocked, failed).",
    ["outcome"],
)
PREVIS_CLIPS = Counter(
    "clipmesh_previs_clips_total",
    f"Previs clips, by result ({', '.join(CLIP_RESULTS)}).",
    ["result"],
)
PREVIS_REGENERATIONS = Counter(
    "clipmesh_previs_regenerations_total",
    "Clips regenerated with a new seed because the previous try missed a quality threshold.",
)
PREVIS_SHOT_SECONDS = Histogram(
    "clipmesh_previs_shot_seconds",
    "Wall time of one shot revision: screening, generation of every variant, checks, ingest.",
    buckets=(1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)


def create_series() -> None:
    """Every shot outcome's and clip result's series at 0 (previs's start)."""
    create_zero_series(PREVIS_SHOTS, outcome=[state.value for state in ENDED_SHOT_STATES])
    create_zero_series(PREVIS_CLIPS, result=CLIP_RESULTS)
