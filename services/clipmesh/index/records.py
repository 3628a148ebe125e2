"""The index's domain: videos, their segments, queries and results — independent of protobuf
and of the backend (FAISS or Milvus) that stores them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from clipmesh.runtime.errors import InvalidArgument

SOURCES = ("ingested", "generated")
DEFAULT_COLLECTION = "default"
_COLLECTION = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def collection_name(name: str, where: str = "collection") -> str:
    """The collection name, defaulted and checked."""
    name = name or DEFAULT_COLLECTION
    if not _COLLECTION.fullmatch(name):  # fullmatch: `$` would let "name\n" through
        raise InvalidArgument(
            f"{where} {name!r} must start with a letter or _ and hold at most 64 of A-Z a-z 0-9 _",
            field=where,
            reason="BAD_COLLECTION",
        )
    return name


@dataclass(frozen=True)
class VideoMeta:
    """A video's metadata, as stored and filtered on."""

    video_id: str
    uri: str = ""
    title: str = ""
    duration_s: float = 0.0
    fps: float = 0.0
    width: int = 0
    height: int = 0
    size_bytes: int = 0
    source: str = ""  # "ingested", "generated" or "" (unknown)
    create_time_s: float = 0.0  # Unix seconds
    content_sha256: str = ""
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Segments:
    """All segments of one video, column-wise.

    Attributes:
        start_s, end_s, keyframe_s: float64 arrays of shape (n,).
        vectors: float32 array of shape (n, d), rows L2-normalised.
        thumbnails: n thumbnail references ("" when none).
    """

    start_s: np.ndarray
    end_s: np.ndarray
    keyframe_s: np.ndarray
    vectors: np.ndarray
    thumbnails: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.start_s)


@dataclass(frozen=True)
class VideoWrite:
    """One video to store: its metadata and the complete list of its segments."""

    meta: VideoMeta
    segments: Segments


@dataclass(frozen=True)
class MomentHit:
    """A matching span inside a video."""

    start_s: float
    end_s: float
    peak_s: float
    score: float
    thumbnail: str = ""


@dataclass(frozen=True)
class VideoResult:
    """A matching video with its best moments, best first."""

    meta: VideoMeta
    score: float
    moments: tuple[MomentHit, ...]


@dataclass(frozen=True)
class SearchQuery:
    """A validated search.

    Attributes:
        collection: Where to search.
        vector: The weighted combination of the query vectors, scaled so a video's score is the
            weighted mean of its cosine similarities (float32, shape (d,)).
        top_k: Videos to return.
        max_moments: Moments per video.
        filter: Videos must pass it (None: all).
        deadline: `time.monotonic()` by which the answer is wanted (None: no hurry).
    """

    collection: str
    vector: np.ndarray
    top_k: int
    max_moments: int
    filter: object | None = None
    deadline: float | None = None


@dataclass
class SearchResult:
    """What a search found and what it cost."""

    videos: list[VideoResult]
    index_type: str
    degraded: bool = False
    degraded_reason: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class CollectionStats:
    """Sizes and state of one collection."""

    collection: str
    videos: int
    segments: int
    dimension: int
    index_type: str
    memory_bytes: int
    wal_bytes: int = 0
    last_snapshot_time_s: float | None = None
    rebuilding: bool = False
