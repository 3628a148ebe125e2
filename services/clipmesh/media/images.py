"""The shape rule every intake of an untrusted still image applies: the encoder's query and
keyframe images and previs's reference images refuse the same strips."""

from __future__ import annotations

MAX_ASPECT_RATIO = 100
"""Longest side over shortest; preprocessing scales the shortest side to the model's input."""


def too_elongated(width: int, height: int) -> bool:
    """True when the longest side is over `MAX_ASPECT_RATIO` times the shortest: a strip that
    scaling to the model's (or a detector's) side would blow up."""
    return max(width, height) > MAX_ASPECT_RATIO * min(width, height)
