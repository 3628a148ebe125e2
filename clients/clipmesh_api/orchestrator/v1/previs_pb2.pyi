from clipmesh_api.common.v1 import access_pb2 as _access_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ScriptFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCRIPT_FORMAT_UNSPECIFIED: _ClassVar[ScriptFormat]
    SCRIPT_FORMAT_PLAIN: _ClassVar[ScriptFormat]
    SCRIPT_FORMAT_FOUNTAIN: _ClassVar[ScriptFormat]

class ExportFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPORT_FORMAT_UNSPECIFIED: _ClassVar[ExportFormat]
    EXPORT_FORMAT_OTIO: _ClassVar[ExportFormat]
    EXPORT_FORMAT_FCP7_XML: _ClassVar[ExportFormat]
    EXPORT_FORMAT_FCPXML: _ClassVar[ExportFormat]
    EXPORT_FORMAT_CMX3600_EDL: _ClassVar[ExportFormat]

class ShotState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SHOT_STATE_UNSPECIFIED: _ClassVar[ShotState]
    SHOT_STATE_PENDING: _ClassVar[ShotState]
    SHOT_STATE_GENERATING: _ClassVar[ShotState]
    SHOT_STATE_CHECKING: _ClassVar[ShotState]
    SHOT_STATE_READY: _ClassVar[ShotState]
    SHOT_STATE_BELOW_THRESHOLD: _ClassVar[ShotState]
    SHOT_STATE_BLOCKED: _ClassVar[ShotState]
    SHOT_STATE_FAILED: _ClassVar[ShotState]

class ProjectState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROJECT_STATE_UNSPECIFIED: _ClassVar[ProjectState]
    PROJECT_STATE_RUNNING: _ClassVar[ProjectState]
    PROJECT_STATE_DONE: _ClassVar[ProjectState]
    PROJECT_STATE_INTERRUPTED: _ClassVar[ProjectState]
SCRIPT_FORMAT_UNSPECIFIED: ScriptFormat
SCRIPT_FORMAT_PLAIN: ScriptFormat
SCRIPT_FORMAT_FOUNTAIN: ScriptFormat
EXPORT_FORMAT_UNSPECIFIED: ExportFormat
EXPORT_FORMAT_OTIO: ExportFormat
EXPORT_FORMAT_FCP7_XML: ExportFormat
EXPORT_FORMAT_FCPXML: ExportFormat
EXPORT_FORMAT_CMX3600_EDL: ExportFormat
SHOT_STATE_UNSPECIFIED: ShotState
SHOT_STATE_PENDING: ShotState
SHOT_STATE_GENERATING: ShotState
SHOT_STATE_CHECKING: ShotState
SHOT_STATE_READY: ShotState
SHOT_STATE_BELOW_THRESHOLD: ShotState
SHOT_STATE_BLOCKED: ShotState
SHOT_STATE_FAILED: ShotState
PROJECT_STATE_UNSPECIFIED: ProjectState
PROJECT_STATE_RUNNING: ProjectState
PROJECT_STATE_DONE: ProjectState
PROJECT_STATE_INTERRUPTED: ProjectState

class QualityScores(_message.Message):
    __slots__ = ("sharpness", "flicker", "smoothness", "text_match", "passed", "failures", "text_match_enforced", "text_match_language", "text_match_text", "text_match_unread_scripts")
    SHARPNESS_FIELD_NUMBER: _ClassVar[int]
    FLICKER_FIELD_NUMBER: _ClassVar[int]
    SMOOTHNESS_FIELD_NUMBER: _ClassVar[int]
    TEXT_MATCH_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    TEXT_MATCH_ENFORCED_FIELD_NUMBER: _ClassVar[int]
    TEXT_MATCH_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TEXT_MATCH_TEXT_FIELD_NUMBER: _ClassVar[int]
    TEXT_MATCH_UNREAD_SCRIPTS_FIELD_NUMBER: _ClassVar[int]
    sharpness: float
    flicker: float
    smoothness: float
    text_match: float
    passed: bool
    failures: _containers.RepeatedScalarFieldContainer[str]
    text_match_enforced: bool
    text_match_language: str
    text_match_text: str
    text_match_unread_scripts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, sharpness: _Optional[float] = ..., flicker: _Optional[float] = ..., smoothness: _Optional[float] = ..., text_match: _Optional[float] = ..., passed: bool = ..., failures: _Optional[_Iterable[str]] = ..., text_match_enforced: bool = ..., text_match_language: _Optional[str] = ..., text_match_text: _Optional[str] = ..., text_match_unread_scripts: _Optional[_Iterable[str]] = ...) -> None: ...

class Clip(_message.Message):
    __slots__ = ("uri", "job_id", "seed", "duration_s", "scores", "style", "video_id", "attempt", "variant", "consistency", "failure", "prompt", "actual_prompt")
    URI_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    STYLE_FIELD_NUMBER: _ClassVar[int]
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_PROMPT_FIELD_NUMBER: _ClassVar[int]
    uri: str
    job_id: str
    seed: int
    duration_s: float
    scores: QualityScores
    style: str
    video_id: str
    attempt: int
    variant: int
    consistency: float
    failure: str
    prompt: str
    actual_prompt: str
    def __init__(self, uri: _Optional[str] = ..., job_id: _Optional[str] = ..., seed: _Optional[int] = ..., duration_s: _Optional[float] = ..., scores: _Optional[_Union[QualityScores, _Mapping]] = ..., style: _Optional[str] = ..., video_id: _Optional[str] = ..., attempt: _Optional[int] = ..., variant: _Optional[int] = ..., consistency: _Optional[float] = ..., failure: _Optional[str] = ..., prompt: _Optional[str] = ..., actual_prompt: _Optional[str] = ...) -> None: ...

class ShotRevision(_message.Message):
    __slots__ = ("revision", "note", "prompt", "actual_prompt", "lineage", "clips", "selected_clip", "create_time", "negative_prompt", "reference_video_id", "reference_score", "based_on")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_PROMPT_FIELD_NUMBER: _ClassVar[int]
    LINEAGE_FIELD_NUMBER: _ClassVar[int]
    CLIPS_FIELD_NUMBER: _ClassVar[int]
    SELECTED_CLIP_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_PROMPT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_SCORE_FIELD_NUMBER: _ClassVar[int]
    BASED_ON_FIELD_NUMBER: _ClassVar[int]
    revision: int
    note: str
    prompt: str
    actual_prompt: str
    lineage: _containers.RepeatedScalarFieldContainer[str]
    clips: _containers.RepeatedCompositeFieldContainer[Clip]
    selected_clip: int
    create_time: _timestamp_pb2.Timestamp
    negative_prompt: str
    reference_video_id: str
    reference_score: float
    based_on: int
    def __init__(self, revision: _Optional[int] = ..., note: _Optional[str] = ..., prompt: _Optional[str] = ..., actual_prompt: _Optional[str] = ..., lineage: _Optional[_Iterable[str]] = ..., clips: _Optional[_Iterable[_Union[Clip, _Mapping]]] = ..., selected_clip: _Optional[int] = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., negative_prompt: _Optional[str] = ..., reference_video_id: _Optional[str] = ..., reference_score: _Optional[float] = ..., based_on: _Optional[int] = ...) -> None: ...

class Shot(_message.Message):
    __slots__ = ("shot_id", "scene_id", "order", "description", "duration_s", "characters", "location", "time_of_day", "camera_hints", "state", "blocked_reason", "revisions", "current_revision", "has_reference_image")
    SHOT_ID_FIELD_NUMBER: _ClassVar[int]
    SCENE_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    CHARACTERS_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    TIME_OF_DAY_FIELD_NUMBER: _ClassVar[int]
    CAMERA_HINTS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_REASON_FIELD_NUMBER: _ClassVar[int]
    REVISIONS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_REVISION_FIELD_NUMBER: _ClassVar[int]
    HAS_REFERENCE_IMAGE_FIELD_NUMBER: _ClassVar[int]
    shot_id: str
    scene_id: str
    order: int
    description: str
    duration_s: float
    characters: _containers.RepeatedScalarFieldContainer[str]
    location: str
    time_of_day: str
    camera_hints: _containers.RepeatedScalarFieldContainer[str]
    state: ShotState
    blocked_reason: str
    revisions: _containers.RepeatedCompositeFieldContainer[ShotRevision]
    current_revision: int
    has_reference_image: bool
    def __init__(self, shot_id: _Optional[str] = ..., scene_id: _Optional[str] = ..., order: _Optional[int] = ..., description: _Optional[str] = ..., duration_s: _Optional[float] = ..., characters: _Optional[_Iterable[str]] = ..., location: _Optional[str] = ..., time_of_day: _Optional[str] = ..., camera_hints: _Optional[_Iterable[str]] = ..., state: _Optional[_Union[ShotState, str]] = ..., blocked_reason: _Optional[str] = ..., revisions: _Optional[_Iterable[_Union[ShotRevision, _Mapping]]] = ..., current_revision: _Optional[int] = ..., has_reference_image: bool = ...) -> None: ...

class Scene(_message.Message):
    __slots__ = ("scene_id", "heading")
    SCENE_ID_FIELD_NUMBER: _ClassVar[int]
    HEADING_FIELD_NUMBER: _ClassVar[int]
    scene_id: str
    heading: str
    def __init__(self, scene_id: _Optional[str] = ..., heading: _Optional[str] = ...) -> None: ...

class Cut(_message.Message):
    __slots__ = ("mp4_uri", "otio_uri", "duration_s", "update_time")
    MP4_URI_FIELD_NUMBER: _ClassVar[int]
    OTIO_URI_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    mp4_uri: str
    otio_uri: str
    duration_s: float
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, mp4_uri: _Optional[str] = ..., otio_uri: _Optional[str] = ..., duration_s: _Optional[float] = ..., update_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Project(_message.Message):
    __slots__ = ("project_id", "title", "scenes", "shots", "cut", "create_time", "settings", "state", "notices", "owner")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    SCENES_FIELD_NUMBER: _ClassVar[int]
    SHOTS_FIELD_NUMBER: _ClassVar[int]
    CUT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    NOTICES_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    title: str
    scenes: _containers.RepeatedCompositeFieldContainer[Scene]
    shots: _containers.RepeatedCompositeFieldContainer[Shot]
    cut: Cut
    create_time: _timestamp_pb2.Timestamp
    settings: ProjectSettings
    state: ProjectState
    notices: _containers.RepeatedScalarFieldContainer[str]
    owner: str
    def __init__(self, project_id: _Optional[str] = ..., title: _Optional[str] = ..., scenes: _Optional[_Iterable[_Union[Scene, _Mapping]]] = ..., shots: _Optional[_Iterable[_Union[Shot, _Mapping]]] = ..., cut: _Optional[_Union[Cut, _Mapping]] = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., settings: _Optional[_Union[ProjectSettings, _Mapping]] = ..., state: _Optional[_Union[ProjectState, str]] = ..., notices: _Optional[_Iterable[str]] = ..., owner: _Optional[str] = ...) -> None: ...

class ProjectSettings(_message.Message):
    __slots__ = ("variants", "backend", "style", "language", "width", "height", "fps", "collection", "model", "multi_shot")
    VARIANTS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    STYLE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MULTI_SHOT_FIELD_NUMBER: _ClassVar[int]
    variants: int
    backend: str
    style: str
    language: str
    width: int
    height: int
    fps: float
    collection: str
    model: str
    multi_shot: bool
    def __init__(self, variants: _Optional[int] = ..., backend: _Optional[str] = ..., style: _Optional[str] = ..., language: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., fps: _Optional[float] = ..., collection: _Optional[str] = ..., model: _Optional[str] = ..., multi_shot: bool = ...) -> None: ...

class ProjectProgress(_message.Message):
    __slots__ = ("project_id", "stage", "shots_done", "shots_total", "eta_s", "message", "project")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    SHOTS_DONE_FIELD_NUMBER: _ClassVar[int]
    SHOTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    ETA_S_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    stage: str
    shots_done: int
    shots_total: int
    eta_s: float
    message: str
    project: Project
    def __init__(self, project_id: _Optional[str] = ..., stage: _Optional[str] = ..., shots_done: _Optional[int] = ..., shots_total: _Optional[int] = ..., eta_s: _Optional[float] = ..., message: _Optional[str] = ..., project: _Optional[_Union[Project, _Mapping]] = ...) -> None: ...

class CreateProjectRequest(_message.Message):
    __slots__ = ("title", "script", "format", "variants", "backend", "style", "references", "collection", "width", "height", "fps", "model", "multi_shot")
    TITLE_FIELD_NUMBER: _ClassVar[int]
    SCRIPT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    VARIANTS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    STYLE_FIELD_NUMBER: _ClassVar[int]
    REFERENCES_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MULTI_SHOT_FIELD_NUMBER: _ClassVar[int]
    title: str
    script: str
    format: ScriptFormat
    variants: int
    backend: str
    style: str
    references: _containers.RepeatedCompositeFieldContainer[ShotReference]
    collection: str
    width: int
    height: int
    fps: float
    model: str
    multi_shot: bool
    def __init__(self, title: _Optional[str] = ..., script: _Optional[str] = ..., format: _Optional[_Union[ScriptFormat, str]] = ..., variants: _Optional[int] = ..., backend: _Optional[str] = ..., style: _Optional[str] = ..., references: _Optional[_Iterable[_Union[ShotReference, _Mapping]]] = ..., collection: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., fps: _Optional[float] = ..., model: _Optional[str] = ..., multi_shot: bool = ...) -> None: ...

class ShotReference(_message.Message):
    __slots__ = ("shot_order", "image")
    SHOT_ORDER_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    shot_order: int
    image: bytes
    def __init__(self, shot_order: _Optional[int] = ..., image: _Optional[bytes] = ...) -> None: ...

class CreateProjectResponse(_message.Message):
    __slots__ = ("progress",)
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    progress: ProjectProgress
    def __init__(self, progress: _Optional[_Union[ProjectProgress, _Mapping]] = ...) -> None: ...

class ReviewShotRequest(_message.Message):
    __slots__ = ("project_id", "shot_id", "note", "restore_revision", "select_clip")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SHOT_ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    RESTORE_REVISION_FIELD_NUMBER: _ClassVar[int]
    SELECT_CLIP_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    shot_id: str
    note: str
    restore_revision: int
    select_clip: int
    def __init__(self, project_id: _Optional[str] = ..., shot_id: _Optional[str] = ..., note: _Optional[str] = ..., restore_revision: _Optional[int] = ..., select_clip: _Optional[int] = ...) -> None: ...

class ReviewShotResponse(_message.Message):
    __slots__ = ("progress",)
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    progress: ProjectProgress
    def __init__(self, progress: _Optional[_Union[ProjectProgress, _Mapping]] = ...) -> None: ...

class GetProjectRequest(_message.Message):
    __slots__ = ("project_id",)
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    def __init__(self, project_id: _Optional[str] = ...) -> None: ...

class GetProjectResponse(_message.Message):
    __slots__ = ("project",)
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    project: Project
    def __init__(self, project: _Optional[_Union[Project, _Mapping]] = ...) -> None: ...

class ExportCutRequest(_message.Message):
    __slots__ = ("project_id", "format")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    format: ExportFormat
    def __init__(self, project_id: _Optional[str] = ..., format: _Optional[_Union[ExportFormat, str]] = ...) -> None: ...

class ExportCutResponse(_message.Message):
    __slots__ = ("cut", "export_uri")
    CUT_FIELD_NUMBER: _ClassVar[int]
    EXPORT_URI_FIELD_NUMBER: _ClassVar[int]
    cut: Cut
    export_uri: str
    def __init__(self, cut: _Optional[_Union[Cut, _Mapping]] = ..., export_uri: _Optional[str] = ...) -> None: ...
