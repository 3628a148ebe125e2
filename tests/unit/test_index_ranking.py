"""The index's exact ranking, vectorised, answers exactly as the straightforward version did.

`rank_videos`, `find_moments` and `RawVectors.take` were rewritten for speed (one gather and
one widening for all candidates, moments only for the videos returned); the versions they
replaced are kept here, verbatim, as the specification, and both run on the same random data:
scores, ranking, ties and moments must be equal to the bit.
"""

from __future__ import annotations

import numpy as np
import pytest

from clipmesh.index.collection import AnnSettings, Collection
from clipmesh.index.moments import find_moments
from clipmesh.index.ranking import rank_videos
from clipmesh.index.records import (
    MomentHit,
    SearchQuery,
    Segments,
    VideoMeta,
    VideoResult,
    VideoWrite,
)
from clipmesh.index.vectors import STORED_DTYPE, RawVectors
from tests.index_data import unit

DIMENSION = 64


def straightforward_moments(
    start_s, end_s, keyframe_s, scores, thumbnails, *, max_moments, margin=0.05, merge_gap_s=0.5
) -> list[MomentHit]:
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


def straightforward_ranking(candidates, query_vector, *, top_k, max_moments) -> list[VideoResult]:
    results = []
    for meta, segments in candidates:
        if not len(segments):
            continue
        scores = segments.vectors.astype(np.float32, copy=False) @ query_vector
        moments = straightforward_moments(
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


def straightforward_take(vectors: RawVectors, slots: np.ndarray) -> np.ndarray:
    base, tail = vectors._base, vectors._tail
    out = np.empty((len(slots), vectors.dimension), np.float32)
    in_base = slots < len(base)
    if in_base.any():
        out[in_base] = base[slots[in_base]]
    if (~in_base).any():
        out[~in_base] = tail[slots[~in_base] - len(base)]
    return out


def random_segments(rng: np.random.Generator, pool: np.ndarray, video_id: str) -> Segments:
    """Segments in shuffled time order, some overlapping, some touching, some a gap apart, with
    vectors drawn from a small pool (so scores tie) and rounded as the index stores them."""
    count = int(rng.integers(0, 40))
    lengths = rng.choice([0.5, 1.0, 2.0, 3.7], size=count)
    gaps = rng.choice([-1.0, 0.0, 0.25, 0.5, 0.75, 3.0], size=count)
    start = np.maximum(0.0, np.cumsum(lengths + gaps) - lengths)
    if count > 3:
        start[rng.integers(0, count)] = start[0]  # two segments starting together
    end = start + lengths
    keyframe = start + lengths * rng.random(count)
    order = rng.permutation(count)
    vectors = pool[rng.integers(0, len(pool), size=count)].astype(STORED_DTYPE)
    return Segments(
        start[order],
        end[order],
        keyframe[order],
        vectors.astype(np.float32),
        tuple(f"thumb://{video_id}/{i}" for i in range(count)),
    )


def random_candidates(rng: np.random.Generator, videos: int) -> list[tuple[VideoMeta, Segments]]:
    pool = unit(rng.normal(size=(int(rng.integers(3, 30)), DIMENSION)))
    ids = [f"v{i:03d}" for i in rng.permutation(videos)]
    return [(VideoMeta(video_id=v), random_segments(rng, pool, v)) for v in ids]


@pytest.mark.parametrize("seed", range(40))
def test_moments_are_those_the_straightforward_walk_finds(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(20):
        pool = unit(rng.normal(size=(int(rng.integers(2, 12)), DIMENSION)))
        segments = random_segments(rng, pool, "v")
        scores = segments.vectors @ unit(rng.normal(size=DIMENSION))
        options = {
            "max_moments": int(rng.integers(1, 8)),
            "margin": float(rng.choice([0.0, 0.05, 0.3, 2.0])),
            "merge_gap_s": float(rng.choice([0.0, 0.5, 2.0])),
        }
        columns = (segments.start_s, segments.end_s, segments.keyframe_s, scores)
        assert find_moments(*columns, segments.thumbnails, **options) == straightforward_moments(
            *columns, segments.thumbnails, **options
        )


@pytest.mark.parametrize("seed", range(40))
def test_ranking_is_the_straightforward_ranking_to_the_bit(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    candidates = random_candidates(rng, int(rng.integers(0, 40)))
    query = unit(rng.normal(size=DIMENSION))
    for top_k in (1, 3, 10, 100):
        for max_moments in (1, 3, 20):
            options = {"top_k": top_k, "max_moments": max_moments}
            expected = straightforward_ranking(candidates, query, **options)
            assert rank_videos(candidates, query, **options) == expected


def test_ties_in_score_are_broken_by_video_id_as_before() -> None:
    vector = unit(np.arange(1, DIMENSION + 1))
    same = Segments(np.zeros(1), np.ones(1), np.zeros(1), vector[None], ("",))
    candidates = [(VideoMeta(video_id=v), same) for v in ("c", "a", "b")]
    ranked = rank_videos(candidates, vector, top_k=2, max_moments=1)
    assert [r.meta.video_id for r in ranked] == ["a", "b"]
    assert ranked == straightforward_ranking(candidates, vector, top_k=2, max_moments=1)


def test_raw_vectors_read_from_the_snapshot_the_tail_or_both_as_before(tmp_path) -> None:
    rng = np.random.default_rng(5)
    written = RawVectors(DIMENSION)
    written.append(rng.normal(scale=0.2, size=(300, DIMENSION)).astype(np.float32))
    written.save(tmp_path / "vectors.npy")
    vectors = RawVectors.load(tmp_path / "vectors.npy")
    vectors.append(rng.normal(scale=1e-4, size=(200, DIMENSION)).astype(np.float32))  # subnormals
    for slots in (
        np.zeros(0, np.int64),
        rng.integers(0, 300, size=50),  # snapshot rows only
        rng.integers(300, 500, size=50),  # tail rows only
        rng.integers(0, 500, size=400),  # both, any order, repeats
    ):
        got = vectors.take(slots)
        assert got.dtype == np.float32
        assert np.array_equal(
            got.view(np.uint32), straightforward_take(vectors, slots).view(np.uint32)
        )


def test_a_collection_search_ranks_as_the_straightforward_ranking_of_its_segments() -> None:
    rng = np.random.default_rng(9)
    collection = Collection("default", DIMENSION, AnnSettings())
    # Few enough segments (≤ 128) and videos (≤ 3 × top_k) that every video is a candidate of
    # every search, whichever segments the index finds first.
    candidates = random_candidates(rng, 6)
    collection.apply_upsert([VideoWrite(meta, s) for meta, s in candidates if 0 < len(s) <= 20])
    everything = [(e.meta, collection.segments_of(e)) for e in collection.videos.values()]
    for _ in range(20):
        query = unit(rng.normal(size=DIMENSION))
        result = collection.search(SearchQuery("default", query, top_k=3, max_moments=4))
        expected = straightforward_ranking(everything, query, top_k=3, max_moments=4)
        assert result.videos == expected
