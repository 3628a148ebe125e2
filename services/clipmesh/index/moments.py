"""From scored segments of one video to its best moments.

Segments whose score is close to the video's best (within `margin`) "match"; matching segments
that touch in time (gap at most `merge_gap_s`) merge into one moment spanning them, peaking at
the keyframe of the best of them. Moments come back best first.
"""

from __future__ import annotations

import numpy as np

from clipmesh.index.records import MomentHit


def find_moments(
    start_s: np.ndarray,
    end_s: np.ndarray,
    keyframe_s: np.ndarray,
    scores: np.ndarray,
    thumbnails: tuple[str, ...] | list[str],
    *,
    max_moments: int,
    margin: float = 0.05,
    merge_gap_s: float = 0.5,
) -> list[MomentHit]:
    """The best `max_moments` moments of one video's scored segments."""
    if len(scores) == 0:
        return []
    order = np.argsort(start_s, kind="stable")
    matching = scores[order] >= scores.max() - margin
    moments: list[MomentHit] = []
    run: list[int] = []

    def close_run() -> None:
        if not run:
            return
        best = max(run, key=lambda i: scores[i])
        moments.append(
            MomentHit(
                start_s=float(start_s[run[0]]),
                end_s=float(max(end_s[i] for i in run)),
                peak_s=float(keyframe_s[best]),
                score=float(scores[best]),
                thumbnail=thumbnails[best],
            )
        )
        run.clear()

    for position, index in enumerate(order):
        if not matching[position]:
            close_run()
            continue
        if run and start_s[index] - max(end_s[i] for i in run) > merge_gap_s:
            close_run()
        run.append(int(index))
    close_run()
    moments.sort(key=lambda m: m.score, reverse=True)
    return moments[:max_moments]
