"""Previs's domain: projects, their scenes and shots, every revision and clip, and requests.

The engine edits these records in place while a run goes on; the store keeps them as JSON
(`store.py`) and the servicer answers with their API form (`convert.py`). Field by field they
mean what `protos/clipmesh/orchestrator/v1/previs.proto` documents; times are Unix seconds
(0: not set).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class ShotState(enum.Enum):
    """Where a shot is; the last four are where a run leaves it."""

    PENDING = "pending"
    GENERATING = "generating"
    CHECKING = "checking"
    READY = "ready"
    BELOW_THRESHOLD = "below_threshold"
    BLOCKED = "blocked"
    FAILED = "failed"


ENDED_SHOT_STATES = frozenset(
    {ShotState.READY, ShotState.BELOW_THRESHOLD, ShotState.BLOCKED, ShotState.FAILED}
)


class ProjectState(enum.Enum):
    """Whether a project's run goes on, ended, or was cut short."""

    RUNNING = "running"
    DONE = "done"
    INTERRUPTED = "interrupted"


@dataclass
class QualityScores:
    """The automatic checks of one clip (`quality.py` says what each score means).

    The last three say what `text_match` compared the frames with (`checks.match_text`):
    the prompt rendered in `text_match_language`, which the encoder's text tower reads, and
    the scripts of that text the tower was not trained on (the match is then not enforced).
    They are empty in clips checked before they were recorded.
    """

    sharpness: float = 0.0
    flicker: float = 0.0
    smoothness: float = 0.0
    text_match: float = 0.0
    passed: bool = False
    failures: list[str] = field(default_factory=list)
    text_match_enforced: bool = False
    text_match_language: str = ""
    text_match_text: str = ""
    text_match_unread_scripts: list[str] = field(default_factory=list)


@dataclass
class Clip:
    """One generated clip of a revision: how it was asked for, made, checked and indexed."""

    uri: str = ""
    job_id: str = ""
    seed: int = 0
    duration_s: float = 0.0
    scores: QualityScores = field(default_factory=QualityScores)
    style: str = ""
    video_id: str = ""
    attempt: int = 0
    variant: int = 0
    consistency: float | None = None
    failure: str = ""
    prompt: str = ""
    actual_prompt: str = ""


@dataclass
class ShotRevision:
    """One version of a shot: the note that made it, its prompt and lineage, and its clips.

    `selected_clip` is an index into `clips`, -1 while none is usable.
    """

    revision: int = 0
    note: str = ""
    prompt: str = ""
    actual_prompt: str = ""
    lineage: list[str] = field(default_factory=list)
    clips: list[Clip] = field(default_factory=list)
    selected_clip: int = 0
    create_time_s: float = 0.0
    negative_prompt: str = ""
    reference_video_id: str = ""
    reference_score: float = 0.0
    based_on: int = 0


@dataclass
class Shot:
    """One shot of the script (at most 10 s) and its history; `current_revision` counts from 1
    (0: none yet)."""

    shot_id: str
    scene_id: str = ""
    order: int = 0
    description: str = ""
    duration_s: float = 0.0
    characters: list[str] = field(default_factory=list)
    location: str = ""
    time_of_day: str = ""
    camera_hints: list[str] = field(default_factory=list)
    state: ShotState = ShotState.PENDING
    blocked_reason: str = ""
    revisions: list[ShotRevision] = field(default_factory=list)
    current_revision: int = 0
    has_reference_image: bool = False


@dataclass
class Scene:
    """A scene heading of the script."""

    scene_id: str
    heading: str = ""


@dataclass
class Cut:
    """The stitched cut and its timeline."""

    mp4_uri: str = ""
    otio_uri: str = ""
    duration_s: float = 0.0
    update_time_s: float = 0.0


class ExportFormat(enum.Enum):
    """An editor's format for a cut's timeline; the value is its file's extension."""

    OTIO = "otio"
    FCP7_XML = "xml"
    FCPXML = "fcpxml"
    CMX3600_EDL = "edl"


@dataclass
class ExportRequest:
    """Which project's cut to export, and in which format (OpenTimelineIO when not said)."""

    project_id: str = ""
    format: ExportFormat = ExportFormat.OTIO


@dataclass
class CutExport:
    """A project's cut and the file its timeline was exported to."""

    cut: Cut
    export_uri: str = ""


@dataclass
class ProjectSettings:
    """What every shot of a project is generated with."""

    variants: int = 0
    backend: str = ""
    style: str = ""
    language: str = ""
    width: int = 0
    height: int = 0
    fps: float = 0.0
    collection: str = ""
    model: str = ""
    multi_shot: bool = False


@dataclass
class Project:
    """A script turned into shots, and the cut of their selected clips."""

    project_id: str
    title: str = ""
    scenes: list[Scene] = field(default_factory=list)
    shots: list[Shot] = field(default_factory=list)
    cut: Cut | None = None
    create_time_s: float = 0.0
    settings: ProjectSettings = field(default_factory=ProjectSettings)
    state: ProjectState = ProjectState.RUNNING
    notices: list[str] = field(default_factory=list)
    owner: str = ""


@dataclass(frozen=True)
class ProjectProgress:
    """One report of a run; the last carries the whole project."""

    project_id: str
    stage: str
    shots_done: int
    shots_total: int
    eta_s: float
    message: str
    project: Project | None = None


@dataclass(frozen=True)
class ProjectRequest:
    """What CreateProject asks for, before it is checked (`requests.new_project`).

    Attributes:
        format: "auto", "plain" or "fountain".
        references: (shot order, encoded image) pairs.
    """

    title: str
    script: str
    format: str = "auto"
    variants: int = 0
    backend: str = ""
    style: str = ""
    references: tuple[tuple[int, bytes], ...] = ()
    collection: str = ""
    width: int = 0
    height: int = 0
    fps: float = 0.0
    model: str = ""
    multi_shot: bool = False


@dataclass(frozen=True)
class ReviewRequest:
    """What ReviewShot asks for: exactly one of a note, a revision to restore, a clip to
    select (checked by `requests.note_of`)."""

    project_id: str
    shot_id: str
    note: str = ""
    restore_revision: int = 0
    select_clip: int | None = None
