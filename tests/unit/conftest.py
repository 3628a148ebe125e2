"""Fixtures shared by unit modules: small generated videos for the media tests
(`test_ingest_media_inputs.py`, `test_ingest_media_frames.py`)."""

from __future__ import annotations

import pytest

from clipmesh.demo.library import VideoSpec, make_video


@pytest.fixture(scope="session")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, VideoSpec]:
    """Small generated videos, made once for the test run (tests only read them)."""
    root = tmp_path_factory.mktemp("videos")
    return {
        "cuts": make_video(root / "cuts.mp4", seed=7, duration_s=8.0, shots=3),
        "long": make_video(root / "long.mp4", seed=8, duration_s=24.0, shots=1, size=(160, 90)),
        "static": make_video(
            root / "static.mp4", seed=9, duration_s=24.0, shots=1, size=(160, 90), pan_per_s=0
        ),
        "rotated": make_video(
            root / "rotated.mp4", seed=10, duration_s=1.0, shots=1, size=(64, 32), rotation_deg=90
        ),
    }
