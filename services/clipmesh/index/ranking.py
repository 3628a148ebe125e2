"""Exact scoring of candidate videos: every backend ranks its final answer here, so scores and
moments mean the same whichever backend found the candidates.

Candidates come column-wise (`CandidateSegments`): every candidate's segments in one set of
arrays, video i's at rows `bounds[i]:bounds[i + 1]`. A video's score is the maximum over its
rows, taken for all videos at once; moments are found only for the videos returned. Each
video's rows are still scored by a matrix-vector product of their own: BLAS rounds a row's dot
product differently depending on where the row falls in the matrix, and a video's scores must
not depend on which other videos were candidates with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from clipmesh.index.moments import find_moments
from clipmesh.index.records import Segments, VideoMeta, VideoResult


@dataclass(frozen=True)
class CandidateSegments:
    """Candidate videos and all their segments, column-wise.

    Attributes:
        metas: The videos, in the order the index found them (it breaks ties in score).
        bounds: int64 array of shape (len(metas) + 1,): video i's segments are rows
            `bounds[i]:bounds[i + 1]` of the columns below.
        start_s, end_s, keyframe_s: float64 arrays of shape (m,).
        vectors: float32 array of shape (m, d), rows L2-normalised.
        thumbnails: m thumbnail references ("" when none).
    """

    metas: Sequence[VideoMeta]
    bounds: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    keyframe_s: np.ndarray
    vectors: np.ndarray
    thumbnails: Sequence[str]

    @classmethod
    def of(cls, videos: Iterable[tuple[VideoMeta, Segments]]) -> CandidateSegments:
        """The candidates `videos` name, each with its segments (videos without are left out)."""
        chosen = [(meta, segments) for meta, segments in videos if len(segments)]
        if not chosen:
            empty = np.zeros(0)
            return cls([], np.zeros(1, np.int64), empty, empty, empty, np.zeros((0, 0)), ())
        bounds = np.zeros(len(chosen) + 1, np.int64)
        np.cumsum([len(segments) for _, segments in chosen], out=bounds[1:])
        return cls(
            metas=[meta for meta, _ in chosen],
            bounds=bounds,
            start_s=np.concatenate([s.start_s for _, s in chosen]),
            end_s=np.concatenate([s.end_s for _, s in chosen]),
            keyframe_s=np.concatenate([s.keyframe_s for _, s in chosen]),
            vectors=np.concatenate([s.vectors.astype(np.float32, copy=False) for _, s in chosen]),
            thumbnails=[t for _, s in chosen for t in s.thumbnails],
        )


def rank_videos(
    candidates: Iterable[tuple[VideoMeta, Segments]],
    query_vector: np.ndarray,
    *,
    top_k: int,
    max_moments: int,
) -> list[VideoResult]:
    """Scores every segment of each candidate exactly; returns the best `top_k` videos."""
    return rank_candidates(
        CandidateSegments.of(candidates), query_vector, top_k=top_k, max_moments=max_moments
    )


def rank_candidates(
    candidates: CandidateSegments, query_vector: np.ndarray, *, top_k: int, max_moments: int
) -> list[VideoResult]:
    """The best `top_k` candidates by their best segment's exact score (ties: by video id),
    each with its best `max_moments` moments; videos without segments are left out."""
    bounds = candidates.bounds
    present = np.flatnonzero(np.diff(bounds))
    if not len(present):
        return []
    starts = bounds[present]
    rows = zip(starts.tolist(), bounds[present + 1].tolist(), strict=True)
    scores = np.concatenate([candidates.vectors[a:b] @ query_vector for a, b in rows])
    # Rows of videos without segments are none, so each reduction spans exactly one video.
    best = np.maximum.reduceat(scores, starts).tolist()
    ids = [candidates.metas[i].video_id for i in present.tolist()]
    order = sorted(range(len(ids)), key=lambda j: (-best[j], ids[j]))[:top_k]
    results = []
    for j in order:
        a, b = int(starts[j]), int(bounds[present[j] + 1])
        moments = find_moments(
            candidates.start_s[a:b],
            candidates.end_s[a:b],
            candidates.keyframe_s[a:b],
            scores[a:b],
            candidates.thumbnails[a:b],
            max_moments=max_moments,
        )
        results.append(VideoResult(candidates.metas[present[j]], best[j], tuple(moments)))
    return results
