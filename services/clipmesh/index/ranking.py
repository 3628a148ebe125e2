"""Exact scoring of candidate videos: every backend ranks its final answer here, so scores and
moments mean the same whichever backend found the candidates."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from clipmesh.index.moments import find_moments
from clipmesh.index.records import Segments, VideoMeta, VideoResult


def rank_videos(
    candidates: Iterable[tuple[VideoMeta, Segments]],
    query_vector: np.ndarray,
    *,
    top_k: int,
    max_moments: int,
) -> list[VideoResult]:
    """Scores every segment of each candidate exactly; returns the best `top_k` videos."""
    results = []
    for meta, segments in candidates:
        if not len(segments):
            continue
        scores = segments.vectors.astype(np.float32, copy=False) @ query_vector
        moments = find_moments(
            segments.start_s,
            segments.end_s,
            segments.keyframe_s,
            scores,
            segments.thumbnails,
            max_moments=max_moments,
        )
        results.append(VideoResult(meta, float(scores.max()), tuple(moments)))
    results.sort(key=lambda r: (-r.score, r.meta.video_id))
    return results[:top_k]
