"""Building index writes for tests: unit vectors with known neighbours."""

from __future__ import annotations

import numpy as np

from clipmesh.index.records import Segments, VideoMeta, VideoWrite

DIMENSION = 16


def unit(vector) -> np.ndarray:
    """`vector` as an L2-normalised float32 array."""
    vector = np.asarray(vector, dtype=np.float32)
    return vector / np.linalg.norm(vector, axis=-1, keepdims=True)


def basis(i: int, dimension: int = DIMENSION) -> np.ndarray:
    """The i-th standard basis vector."""
    vector = np.zeros(dimension, np.float32)
    vector[i % dimension] = 1.0
    return vector


def random_unit(rng: np.random.Generator, count: int, dimension: int = DIMENSION) -> np.ndarray:
    """`count` random unit vectors."""
    return unit(rng.normal(size=(count, dimension)))


def video(video_id: str, vectors, *, segment_s: float = 2.0, **meta) -> VideoWrite:
    """A video whose i-th segment spans [i*segment_s, (i+1)*segment_s) with the i-th vector."""
    vectors = unit(np.atleast_2d(vectors))
    count = len(vectors)
    starts = np.arange(count, dtype=np.float64) * segment_s
    segments = Segments(
        start_s=starts,
        end_s=starts + segment_s,
        keyframe_s=starts + segment_s / 2,
        vectors=vectors,
        thumbnails=tuple(f"thumb://{video_id}/{i}" for i in range(count)),
    )
    meta.setdefault("duration_s", count * segment_s)
    return VideoWrite(VideoMeta(video_id=video_id, **meta), segments)
