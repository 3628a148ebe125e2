"""What moves between the stages of a bulk ingest, and what each file's outcome is.

A `PreparedVideo` travels through Ray's object store as msgpack bytes (one `video` column),
from the worker that cut it to the embedding and then to the driver, which writes it to the
index and reports a `FileOutcome`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import msgspec
import numpy as np

from clipmesh.index.records import Segments, VideoMeta, VideoWrite


class Outcome(enum.StrEnum):
    """How one file ended (the report's `outcome`)."""

    DONE = "done"
    DUPLICATE = "duplicate"
    FAILED = "failed"


class PreparedVideo(msgspec.Struct, kw_only=True):
    """One listed file after the CPU stage, and after embedding.

    Attributes:
        uri: As listed.
        size_bytes: Its size, once opened (-1 when it never was).
        ready: True when it is to be written; False when already indexed or failed.
        outcome: DUPLICATE or FAILED when not ready.
        reason, message: Why it failed.
        meta: The video's metadata, when ready.
        start_s, end_s, keyframe_s: The planned segments, when ready.
        thumbnails: Each segment's thumbnail URI.
        keyframes: Each segment's keyframe as JPEG, until embedded (then empty).
        vectors: The embeddings, float32 row-major (n × dimension), once embedded.
        dimension: Length of each vector.
        worker_s: Seconds the workers spent on it.
    """

    uri: str
    size_bytes: int = -1
    ready: bool = False
    outcome: Outcome = Outcome.FAILED
    reason: str = ""
    message: str = ""
    video_id: str = ""
    meta: VideoMeta | None = None
    start_s: list[float] = msgspec.field(default_factory=list)
    end_s: list[float] = msgspec.field(default_factory=list)
    keyframe_s: list[float] = msgspec.field(default_factory=list)
    thumbnails: list[str] = msgspec.field(default_factory=list)
    keyframes: list[bytes] = msgspec.field(default_factory=list)
    vectors: bytes = b""
    dimension: int = 0
    worker_s: float = 0.0

    def failed(self, reason: str, message: str) -> PreparedVideo:
        """This video, failed."""
        return msgspec.structs.replace(
            self, ready=False, outcome=Outcome.FAILED, reason=reason, message=message, keyframes=[]
        )

    def embedded(self, vectors: np.ndarray) -> PreparedVideo:
        """This video with its vectors, its keyframes dropped (they are not needed again)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        return msgspec.structs.replace(
            self, keyframes=[], vectors=vectors.tobytes(), dimension=int(vectors.shape[1])
        )

    def write(self) -> VideoWrite:
        """The index write that stores it with all its segments."""
        assert self.meta is not None, "only a ready video is written"
        vectors = np.frombuffer(self.vectors, dtype=np.float32).reshape(-1, self.dimension)
        segments = Segments(
            start_s=np.array(self.start_s, dtype=np.float64),
            end_s=np.array(self.end_s, dtype=np.float64),
            keyframe_s=np.array(self.keyframe_s, dtype=np.float64),
            vectors=vectors,
            thumbnails=tuple(self.thumbnails),
        )
        return VideoWrite(self.meta, segments)


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(PreparedVideo)


def pack(video: PreparedVideo) -> bytes:
    return _ENCODER.encode(video)


def unpack(data: bytes) -> PreparedVideo:
    return _DECODER.decode(data)


@dataclass(frozen=True)
class FileOutcome:
    """One line of the report.

    Attributes:
        uri: As listed.
        outcome: done, duplicate or failed.
        video_id: The content id, once hashed.
        reason, message: Why it failed ("" otherwise).
        segments: Segments written (done only).
        video_seconds: Its duration (done only).
        size_bytes: Its size (-1 when never opened).
        at_s: When the outcome was known, in seconds since the run's pipeline started.
    """

    uri: str
    outcome: Outcome
    video_id: str = ""
    reason: str = ""
    message: str = ""
    segments: int = 0
    video_seconds: float = 0.0
    size_bytes: int = -1
    at_s: float = 0.0

    @classmethod
    def of(cls, video: PreparedVideo, outcome: Outcome | None = None, **changes) -> FileOutcome:
        """The outcome of `video` (written: DONE with its segments and duration)."""
        outcome = outcome or video.outcome
        done = outcome == Outcome.DONE
        fields = {
            "uri": video.uri,
            "outcome": outcome,
            "video_id": video.video_id,
            "reason": video.reason,
            "message": video.message,
            "segments": len(video.start_s) if done else 0,
            "video_seconds": video.meta.duration_s if done and video.meta else 0.0,
            "size_bytes": video.size_bytes,
        }
        return cls(**{**fields, **changes})
