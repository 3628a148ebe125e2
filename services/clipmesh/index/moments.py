"""From scored segments of one video to its best moments.

Segments whose score is close to the video's best (within `margin`) "match"; matching segments
that touch in time (gap at most `merge_gap_s`) merge into one moment spanning them, peaking at
the keyframe of the best of them. Moments come back best first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from clipmesh.index.records import MomentHit


def find_moments(
    start_s: np.ndarray,
    end_s: np.ndarray,
    keyframe_s: np.ndarray,
    scores: np.ndarray,
    thumbnails: Sequence[str],
    *,
    max_moments: int,
    margin: float = 0.05,
    merge_gap_s: float = 0.5,
) -> list[MomentHit]:
    """The best `max_moments` moments of one video's scored segments."""
    if len(scores) == 0:
        return []
    order = np.argsort(start_s, kind="stable")
    # Only the matching segments are walked, in time order, as plain Python numbers: a
    # non-matching segment between two of them ends a run, and so does a gap past the latest
    # end of the run so far. A run's best is its first segment of the highest score.
    positions = np.flatnonzero(scores[order] >= scores.max() - margin)
    chosen = order[positions]
    rows, places = chosen.tolist(), positions.tolist()
    starts, ends = start_s[chosen].tolist(), end_s[chosen].tolist()
    values = scores[chosen].tolist()
    runs = []  # (best score, best of `rows`, start, end)
    best, first_start, latest_end = 0, starts[0], ends[0]
    for k in range(1, len(rows)):
        if places[k] != places[k - 1] + 1 or starts[k] - latest_end > merge_gap_s:
            runs.append((values[best], best, first_start, latest_end))
            best, first_start, latest_end = k, starts[k], ends[k]
            continue
        latest_end = max(latest_end, ends[k])
        if values[k] > values[best]:
            best = k
    runs.append((values[best], best, first_start, latest_end))
    runs.sort(key=lambda run: run[0], reverse=True)  # stable: equal scores stay in time order
    return [
        MomentHit(
            start_s=start,
            end_s=end,
            peak_s=float(keyframe_s[rows[k]]),
            score=score,
            thumbnail=thumbnails[rows[k]],
        )
        for score, k, start, end in runs[:max_moments]
    ]
