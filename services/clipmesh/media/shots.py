"""Shot-aware segmentation: where a video's segments start and end, and which frame shows each.

Cuts come from PySceneDetect's `ContentDetector` (HSV difference between consecutive frames),
fed the analysis pass's small frames (8 a second, 160 pixels) through its `process_frame` API
rather than its `SceneManager`, which decodes and converts every frame in full (about three
times slower for the same cuts; the figures are in docs/benchmarks.md). The price is
precision: a cut is placed on the first analysis frame after it, up to 1/8 s late.

Segments then follow the rules of the data model:

1. Shots are cut where the detector says, but never shorter than `min_segment_s`.
2. Shots longer than `max_window_s` are split into equal windows, so a search hit can point
   inside a long take.
3. Each segment's keyframe is the sharpest analysis frame in the middle half of its span:
   the middle keeps fades and dissolves at the edges out, and the sharpest frame (variance of
   the Laplacian) avoids motion blur, which costs the embedding more than a few frames'
   distance from the centre.
4. Consecutive segments whose keyframes look nearly the same (mean absolute difference of
   16×16 colour thumbnails) are merged, so a static take is one segment, however long; the
   merged segment keeps the first keyframe. Each is compared with that first keyframe, not
   with its neighbour, so a slow fade or pan cannot drift into one endless segment.

The segments tile `[0, duration_s]` with no gaps or overlaps.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np
from scenedetect import ContentDetector, FrameTimecode

from clipmesh.media.frames import AnalysisFrame

_THUMBNAIL_SIDE = 16


@dataclass(frozen=True)
class PlannedSegment:
    """A span of a video and the time of the frame that will stand for it.

    Attributes:
        start_s: Where the segment starts.
        end_s: Where it ends (the next segment's start).
        keyframe_s: The frame to embed, `start_s <= keyframe_s <= end_s`.
    """

    start_s: float
    end_s: float
    keyframe_s: float


@dataclass(frozen=True)
class _Sample:
    """What is kept of one analysis frame: enough to choose and compare keyframes."""

    time_s: float
    sharpness: float
    thumbnail: np.ndarray


@dataclass
class _Span:
    start_s: float
    end_s: float
    keyframe: _Sample | None


def _sample(frame: AnalysisFrame) -> _Sample:
    gray = cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2GRAY)
    sharpness = float(cv2.Laplacian(gray, cv2.CV_32F).var())
    side = _THUMBNAIL_SIDE
    thumbnail = cv2.resize(frame.rgb, (side, side), interpolation=cv2.INTER_AREA)
    return _Sample(frame.time_s, sharpness, thumbnail)


def _detect(
    frames: Iterable[AnalysisFrame], *, threshold: float, min_segment_s: float
) -> tuple[list[float], list[_Sample]]:
    """Runs the cut detector over the frames; returns the cut times and the kept samples."""
    detector = ContentDetector(threshold=threshold, min_scene_len=min_segment_s)
    cuts: list[FrameTimecode] = []
    samples: list[_Sample] = []
    timecode = None
    shape = None
    for frame in frames:
        # The rate only converts to frame numbers, which nothing here uses; times are exact.
        timecode = FrameTimecode(frame.time_s, fps=30.0)
        rgb, shape = frame.rgb, shape or frame.rgb.shape
        if rgb.shape != shape:
            # A stream may change frame size midway (FLV, H.264 in MPEG-TS); the detector
            # compares consecutive frames pixel by pixel, so keep them all the first's size.
            rgb = cv2.resize(rgb, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        cuts.extend(detector.process_frame(timecode, bgr))
        samples.append(_sample(frame))
    if timecode is not None:
        cuts.extend(detector.post_process(timecode))
    return [cut.seconds for cut in cuts], samples


def _shot_bounds(cuts_s: list[float], duration_s: float, min_segment_s: float) -> list[float]:
    bounds = [0.0]
    for cut_s in sorted(cuts_s):
        if cut_s - bounds[-1] >= min_segment_s and duration_s - cut_s >= min_segment_s:
            bounds.append(cut_s)
    bounds.append(duration_s)
    return bounds


def _windows(bounds: list[float], max_window_s: float) -> list[tuple[float, float]]:
    windows = []
    for start_s, end_s in itertools.pairwise(bounds):
        count = max(1, math.ceil((end_s - start_s) / max_window_s - 1e-9))
        edges = [start_s + (end_s - start_s) * i / count for i in range(count)] + [end_s]
        windows.extend(itertools.pairwise(edges))
    return windows


def _keyframe(
    samples: list[_Sample], times_s: np.ndarray, start_s: float, end_s: float
) -> _Sample | None:
    """The sharpest sample in the middle half of the span, else the one nearest its middle."""
    quarter_s = (end_s - start_s) / 4
    low, high = np.searchsorted(times_s, [start_s + quarter_s, end_s - quarter_s], side="left")
    middle = samples[low:high]
    if middle:
        return max(middle, key=lambda sample: sample.sharpness)
    low, high = np.searchsorted(times_s, [start_s, end_s], side="left")
    inside = samples[low:high]
    centre_s = (start_s + end_s) / 2
    return min(inside, key=lambda sample: abs(sample.time_s - centre_s), default=None)


def _near_duplicates(first: _Sample | None, second: _Sample | None, threshold: float) -> bool:
    if first is None or second is None:
        return False
    difference = cv2.absdiff(first.thumbnail, second.thumbnail)
    return float(difference.mean()) < threshold


def plan_segments(
    analysis_frames: Iterable[AnalysisFrame],
    duration_s: float,
    *,
    max_window_s: float = 10.0,
    min_segment_s: float = 0.5,
    duplicate_threshold: float = 6.0,
    cut_threshold: float = 27.0,
) -> list[PlannedSegment]:
    """Splits a video into segments that follow its shots, each with a keyframe time.

    Consumes `analysis_frames` as it goes and keeps about 1 KB per frame (a 16×16 thumbnail
    and a sharpness score): some 30 MB an hour of video at 8 analysis frames a second.

    Args:
        analysis_frames: The analysis pass (`frames.analysis_frames`), in time order.
        duration_s: The video's duration, from `probe`.
        max_window_s: Longest segment cut out of a single shot before merging duplicates.
        min_segment_s: Shortest shot; cuts closer together are ignored.
        duplicate_threshold: Mean absolute difference (0–255) of keyframe thumbnails below
            which consecutive segments are merged; 0 merges nothing. Compression noise on a
            still shot is about 1; distinct shots, or a pan seconds apart, differ by tens.
        cut_threshold: `ContentDetector`'s threshold; lower finds more cuts.

    Returns:
        Segments in time order, tiling `[0, duration_s]`.
    """
    if duration_s <= 0:
        raise ValueError(f"duration_s must be positive, not {duration_s}")
    cuts_s, samples = _detect(analysis_frames, threshold=cut_threshold, min_segment_s=min_segment_s)
    times_s = np.array([sample.time_s for sample in samples])
    merged: list[_Span] = []
    for start_s, end_s in _windows(_shot_bounds(cuts_s, duration_s, min_segment_s), max_window_s):
        keyframe = _keyframe(samples, times_s, start_s, end_s)
        if merged and _near_duplicates(merged[-1].keyframe, keyframe, duplicate_threshold):
            merged[-1].end_s = end_s
        else:
            merged.append(_Span(start_s, end_s, keyframe))
    return [
        PlannedSegment(
            span.start_s,
            span.end_s,
            (span.start_s + span.end_s) / 2 if span.keyframe is None else span.keyframe.time_s,
        )
        for span in merged
    ]
