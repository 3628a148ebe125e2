"""`min_score`: which videos and moments a threshold keeps, and the count of those it cut."""

from __future__ import annotations

from clipmesh.index.records import MomentHit, VideoMeta, VideoResult
from clipmesh.orchestrator.records import SearchResponse
from clipmesh.orchestrator.search import above_threshold


def _hit(video_id: str, *moment_scores: float) -> VideoResult:
    moments = tuple(MomentHit(i, i + 1, i + 0.5, score) for i, score in enumerate(moment_scores))
    return VideoResult(VideoMeta(video_id), max(moment_scores), moments)


RESPONSE = SearchResponse(
    collection="default",
    hits=(_hit("a", 0.9, 0.5, 0.31), _hit("b", 0.6, 0.2), _hit("c", 0.3)),
    model_id="m",
    warnings=("w",),
)


def test_videos_and_moments_below_the_threshold_are_left_out_and_counted() -> None:
    cut = above_threshold(RESPONSE, 0.31)
    assert [(h.meta.video_id, [m.score for m in h.moments]) for h in cut.hits] == [
        ("a", [0.9, 0.5, 0.31]),  # a score equal to the threshold is kept
        ("b", [0.6]),
    ]
    assert cut.hits_below_min_score == 1
    assert (cut.model_id, cut.warnings) == ("m", ("w",))


def test_a_threshold_above_every_score_cuts_everything() -> None:
    cut = above_threshold(RESPONSE, 0.95)
    assert (cut.hits, cut.hits_below_min_score) == ((), 3)


def test_no_threshold_leaves_the_answer_as_it_is() -> None:
    assert above_threshold(RESPONSE, None) is RESPONSE
