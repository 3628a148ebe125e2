"""What ingest reports: the stages a video goes through, its progress, and how it ended."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class IngestStage(enum.Enum):
    """Where one video is; the last three are final."""

    QUEUED = "queued"
    PROBING = "probing"
    DETECTING_SHOTS = "detecting_shots"
    EXTRACTING = "extracting"
    ENCODING = "encoding"
    INDEXING = "indexing"
    DONE = "done"
    DUPLICATE = "duplicate"
    FAILED = "failed"


@dataclass(frozen=True)
class IngestItem:
    """One video to ingest.

    Attributes:
        uri: A local path or `file://` URI (checked against the allowed roots).
        title: Its title; "" for the file name.
        labels: Metadata stored with it.
    """

    uri: str
    title: str = ""
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class IngestError:
    """Why a video failed: a stable reason and a message for people."""

    reason: str
    message: str


@dataclass(frozen=True)
class VideoProgress:
    """How one video stands.

    Attributes:
        uri: The item's URI, as given.
        stage: Where it is.
        fraction: Done so far, 0 to 1.
        video_id: Its id, once its content is hashed.
        eta_s: Seconds left, or -1 when unknown.
        segments: Segments written, once done.
        error: Why it failed, when it did.
    """

    uri: str
    stage: IngestStage
    fraction: float = 0.0
    video_id: str = ""
    eta_s: float = -1.0
    segments: int = 0
    error: IngestError | None = None


@dataclass(frozen=True)
class IngestOutcome:
    """How ingesting one video ended."""

    stage: IngestStage
    segments: int = 0
    video_seconds: float = 0.0
    reason: str = ""
    video_id: str = ""


@dataclass(frozen=True)
class IngestSummary:
    """A whole request's totals."""

    ingested: int
    duplicates: int
    failed: int
    segments: int
    video_seconds: float
    wall_seconds: float
