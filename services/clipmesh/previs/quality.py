"""Automatic quality checks of a generated clip (the `QualityScores` of a `Clip`).

Scores:

- **sharpness**: mean variance of the Laplacian of the grey frames, sampled evenly over the
  clip at most 256 pixels long. Edges and texture raise it; blur and flat colour lower it.
- **flicker**: how much each frame's mean brightness (0–255) leaves the trend of its
  neighbours, `mean |b[i] - (b[i-1] + b[i+1]) / 2|`, over a run of adjacent frames from the
  middle of the clip. Measured against the neighbours' mean rather than the previous frame
  alone, so a steady fade or a pan onto a brighter area (a linear trend) is not flicker,
  while a brightness that alternates by ±d scores 2d, as the plain difference would.
  Adjacent frames, not an even spread: a stride of two frames would hide an odd–even flicker.
- **smoothness**: 0 to 1, from dense optical flow (Farneback) over the same run. With `v[t]`
  the mean flow vector of step t, in pixels, `1 - mean|v[t+1] - v[t]| / (mean|v[t]| +
  mean|v[t+1] - v[t]| + 1)`: a steady pan or a still (no jerk) scores 1; motion whose
  change is as large as the motion itself (random jumps) scores near 0.5 or below. The
  1-pixel term keeps codec noise on a near-still clip from counting as jerk.
- **text_match**: the mean cosine between the prompt's text embedding and the frames'
  embeddings, computed from the encoder service's vectors (`text_video_match`). The mean,
  not the max: the whole clip should show the prompt, not one lucky frame.

Default thresholds (`QualityThresholds`) sit between measurements of good, blurred, flickering
and shaken clips; docs/previs.md lists them and how they were chosen.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from clipmesh.media.frames import frames_at
from clipmesh.media.probe import probe

# Keeps codec noise on a near-still clip from reading as jerk (see the module docstring).
_FLOW_NOISE_PX = 1.0


@dataclass(frozen=True)
class ClipScores:
    """The automatic scores of one clip; see the module docstring for each.

    Attributes:
        sharpness: Mean variance of the Laplacian (higher is sharper).
        flicker: Mean brightness deviation from the neighbours' trend, 0–255 (lower is steadier).
        smoothness: Motion smoothness, 0 to 1 (higher is smoother).
        text_match: Cosine between prompt and frames, or `None` when not computed.
    """

    sharpness: float
    flicker: float
    smoothness: float
    text_match: float | None = None


@dataclass(frozen=True)
class QualityThresholds:
    """The limits a clip must meet to pass; docs/previs.md says how the defaults were chosen.

    Attributes:
        min_sharpness: Lowest acceptable mean Laplacian variance.
        max_flicker: Highest acceptable brightness deviation, on the 0–255 scale.
        min_smoothness: Lowest acceptable motion smoothness, 0 to 1.
        min_text_match: Lowest acceptable text–video cosine; skipped when not computed.
    """

    min_sharpness: float = 50.0
    max_flicker: float = 3.0
    min_smoothness: float = 0.75
    min_text_match: float = 0.2

    def passes(self, scores: ClipScores) -> tuple[bool, list[str]]:
        """Checks scores against the limits.

        Returns:
            Whether every score met its limit, and one reason per score that did not.
        """
        reasons = []
        if scores.sharpness < self.min_sharpness:
            reasons.append(f"sharpness {scores.sharpness:.1f} < {self.min_sharpness:g}")
        if scores.flicker > self.max_flicker:
            reasons.append(f"flicker {scores.flicker:.2f} > {self.max_flicker:g}")
        if scores.smoothness < self.min_smoothness:
            reasons.append(f"smoothness {scores.smoothness:.2f} < {self.min_smoothness:g}")
        if scores.text_match is not None and scores.text_match < self.min_text_match:
            reasons.append(f"text match {scores.text_match:.2f} < {self.min_text_match:g}")
        return not reasons, reasons


def _decode(path: Path, times_s: list[float], max_side: int) -> list[np.ndarray]:
    return [np.asarray(image) for image in frames_at(path, times_s, max_side=max_side)]


def sample_frames(
    path: Path | str, *, max_frames: int = 16, max_side: int = 256
) -> list[np.ndarray]:
    """Decodes up to `max_frames` frames spread evenly over a clip.

    Args:
        path: The clip.
        max_frames: Most frames to return; fewer when the clip has fewer.
        max_side: Longest side of the frames, in pixels.

    Returns:
        RGB uint8 arrays (height, width, 3), in time order.

    Raises:
        InvalidArgument: `NOT_A_VIDEO` or `CORRUPT_MEDIA` when the file cannot be decoded.
    """
    path = Path(path)
    info = probe(path)
    count = max(1, min(max_frames, info.frame_count_estimate))
    # Frame centres of `count` equal slices, so neither end is over-represented.
    times_s = [(i + 0.5) * info.duration_s / count for i in range(count)]
    return _decode(path, times_s, max_side)


def adjacent_frames(path: Path | str, *, count: int = 16, max_side: int = 256) -> list[np.ndarray]:
    """Decodes a run of up to `count` adjacent frames from the middle of a clip.

    Flicker and motion are measured frame to frame, so they need neighbours, not a spread.

    Raises:
        InvalidArgument: `NOT_A_VIDEO` or `CORRUPT_MEDIA` when the file cannot be decoded.
    """
    path = Path(path)
    info = probe(path)
    count = max(1, min(count, info.frame_count_estimate))
    first = max(0, (info.frame_count_estimate - count) // 2)
    times_s = [(first + i) / info.fps for i in range(count)]
    return _decode(path, times_s, max_side)


def _grey(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame


def sharpness(frames: Sequence[np.ndarray]) -> float:
    """Mean variance of the Laplacian of the frames (higher is sharper)."""
    if not frames:
        raise ValueError("no frames to score")
    return float(np.mean([cv2.Laplacian(_grey(f), cv2.CV_64F).var() for f in frames]))


def flicker(frames: Sequence[np.ndarray]) -> float:
    """Mean deviation of each frame's brightness from its neighbours' mean, 0–255.

    Args:
        frames: Adjacent frames; with fewer than three there is no trend and no flicker.
    """
    brightness = np.array([_grey(f).mean() for f in frames], dtype=np.float64)
    if len(brightness) < 3:
        return 0.0
    trend = (brightness[:-2] + brightness[2:]) / 2
    return float(np.mean(np.abs(brightness[1:-1] - trend)))


def smoothness(frames: Sequence[np.ndarray]) -> float:
    """Motion smoothness 0–1 from the jerk of the mean optical-flow vector (higher is smoother).

    Args:
        frames: Adjacent frames; with fewer than three there is no jerk to see and it is 1.
    """
    greys = [_grey(f) for f in frames]
    if len(greys) < 3:
        return 1.0
    steps = np.array(
        [
            cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)
            .reshape(-1, 2)
            .mean(axis=0)
            for a, b in itertools.pairwise(greys)
        ]
    )
    motion_px = float(np.linalg.norm(steps, axis=1).mean())
    jerk_px = float(np.linalg.norm(np.diff(steps, axis=0), axis=1).mean())
    return 1.0 - jerk_px / (motion_px + jerk_px + _FLOW_NOISE_PX)


def text_video_match(
    text_vector: Sequence[float], frame_vectors: Sequence[Sequence[float]]
) -> float:
    """Mean cosine between a text embedding and each frame's embedding.

    Args:
        text_vector: The prompt's embedding, any norm.
        frame_vectors: One embedding per frame, same dimension, any norm.

    Raises:
        ValueError: No frames, mismatched dimensions or a zero vector.
    """
    text = np.asarray(text_vector, dtype=np.float64)
    frames = np.asarray(frame_vectors, dtype=np.float64)
    if frames.ndim != 2 or frames.shape[0] == 0 or frames.shape[1] != text.shape[-1]:
        raise ValueError(f"need frame vectors of dimension {text.shape[-1]}, got {frames.shape}")
    norms = np.linalg.norm(frames, axis=1)
    text_norm = np.linalg.norm(text)
    if text_norm == 0 or np.any(norms == 0):
        raise ValueError("cannot compare a zero vector")
    return float(np.mean(frames @ text / norms / text_norm))


def score_clip(
    path: Path | str, *, text_match: float | None = None, max_side: int = 256
) -> ClipScores:
    """Scores a clip: sharpness over an even spread, flicker and smoothness over a run.

    Args:
        path: The clip.
        text_match: The text–video cosine from `text_video_match`, when computed.
        max_side: Longest side the frames are scored at, in pixels.

    Raises:
        InvalidArgument: `NOT_A_VIDEO` or `CORRUPT_MEDIA` when the file cannot be decoded.
    """
    spread = sample_frames(path, max_side=max_side)
    run = adjacent_frames(path, max_side=max_side)
    return ClipScores(sharpness(spread), flicker(run), smoothness(run), text_match)
