from clipmesh_api.common.v1 import access_pb2 as _access_pb2
from clipmesh_api.common.v1 import common_pb2 as _common_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]

class CancelOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CANCEL_OUTCOME_UNSPECIFIED: _ClassVar[CancelOutcome]
    CANCEL_OUTCOME_CANCELLED: _ClassVar[CancelOutcome]
    CANCEL_OUTCOME_REQUESTED: _ClassVar[CancelOutcome]
    CANCEL_OUTCOME_NOT_CANCELLABLE: _ClassVar[CancelOutcome]

class ShotType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SHOT_TYPE_UNSPECIFIED: _ClassVar[ShotType]
    SHOT_TYPE_SINGLE: _ClassVar[ShotType]
    SHOT_TYPE_MULTI: _ClassVar[ShotType]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState
CANCEL_OUTCOME_UNSPECIFIED: CancelOutcome
CANCEL_OUTCOME_CANCELLED: CancelOutcome
CANCEL_OUTCOME_REQUESTED: CancelOutcome
CANCEL_OUTCOME_NOT_CANCELLABLE: CancelOutcome
SHOT_TYPE_UNSPECIFIED: ShotType
SHOT_TYPE_SINGLE: ShotType
SHOT_TYPE_MULTI: ShotType

class GenerationSpec(_message.Message):
    __slots__ = ("prompt", "negative_prompt", "backend", "model", "width", "height", "duration_s", "fps", "seed", "prompt_extend", "watermark", "labels", "shot_type", "generate_audio")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_PROMPT_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    PROMPT_EXTEND_FIELD_NUMBER: _ClassVar[int]
    WATERMARK_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SHOT_TYPE_FIELD_NUMBER: _ClassVar[int]
    GENERATE_AUDIO_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    negative_prompt: str
    backend: str
    model: str
    width: int
    height: int
    duration_s: float
    fps: float
    seed: int
    prompt_extend: bool
    watermark: bool
    labels: _containers.ScalarMap[str, str]
    shot_type: ShotType
    generate_audio: bool
    def __init__(self, prompt: _Optional[str] = ..., negative_prompt: _Optional[str] = ..., backend: _Optional[str] = ..., model: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., duration_s: _Optional[float] = ..., fps: _Optional[float] = ..., seed: _Optional[int] = ..., prompt_extend: bool = ..., watermark: bool = ..., labels: _Optional[_Mapping[str, str]] = ..., shot_type: _Optional[_Union[ShotType, str]] = ..., generate_audio: bool = ...) -> None: ...

class GenerationResult(_message.Message):
    __slots__ = ("uri", "duration_s", "fps", "width", "height", "size_bytes", "sha256", "cache_hit")
    URI_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    uri: str
    duration_s: float
    fps: float
    width: int
    height: int
    size_bytes: int
    sha256: str
    cache_hit: bool
    def __init__(self, uri: _Optional[str] = ..., duration_s: _Optional[float] = ..., fps: _Optional[float] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., cache_hit: bool = ...) -> None: ...

class JobError(_message.Message):
    __slots__ = ("reason", "message", "provider_code")
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_CODE_FIELD_NUMBER: _ClassVar[int]
    reason: str
    message: str
    provider_code: str
    def __init__(self, reason: _Optional[str] = ..., message: _Optional[str] = ..., provider_code: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("job_id", "idempotency_key", "backend", "spec", "state", "progress", "queue_position", "eta_s", "result", "error", "orig_prompt", "actual_prompt", "provider_task_id", "create_time", "start_time", "end_time", "output_deleted", "caller", "webhook_url")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POSITION_FIELD_NUMBER: _ClassVar[int]
    ETA_S_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ORIG_PROMPT_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_PROMPT_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_DELETED_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    idempotency_key: str
    backend: str
    spec: GenerationSpec
    state: JobState
    progress: float
    queue_position: int
    eta_s: float
    result: GenerationResult
    error: JobError
    orig_prompt: str
    actual_prompt: str
    provider_task_id: str
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    output_deleted: bool
    caller: str
    webhook_url: str
    def __init__(self, job_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., backend: _Optional[str] = ..., spec: _Optional[_Union[GenerationSpec, _Mapping]] = ..., state: _Optional[_Union[JobState, str]] = ..., progress: _Optional[float] = ..., queue_position: _Optional[int] = ..., eta_s: _Optional[float] = ..., result: _Optional[_Union[GenerationResult, _Mapping]] = ..., error: _Optional[_Union[JobError, _Mapping]] = ..., orig_prompt: _Optional[str] = ..., actual_prompt: _Optional[str] = ..., provider_task_id: _Optional[str] = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., output_deleted: bool = ..., caller: _Optional[str] = ..., webhook_url: _Optional[str] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("job", "message", "event_time")
    JOB_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    job: Job
    message: str
    event_time: _timestamp_pb2.Timestamp
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., message: _Optional[str] = ..., event_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("spec", "idempotency_key", "webhook_url")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    spec: GenerationSpec
    idempotency_key: str
    webhook_url: str
    def __init__(self, spec: _Optional[_Union[GenerationSpec, _Mapping]] = ..., idempotency_key: _Optional[str] = ..., webhook_url: _Optional[str] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: JobEvent
    def __init__(self, event: _Optional[_Union[JobEvent, _Mapping]] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class WatchJobResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: JobEvent
    def __init__(self, event: _Optional[_Union[JobEvent, _Mapping]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class CancelJobResponse(_message.Message):
    __slots__ = ("job", "outcome")
    JOB_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    job: Job
    outcome: CancelOutcome
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., outcome: _Optional[_Union[CancelOutcome, str]] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("states", "backend", "page")
    STATES_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedScalarFieldContainer[JobState]
    backend: str
    page: _common_pb2.PageRequest
    def __init__(self, states: _Optional[_Iterable[_Union[JobState, str]]] = ..., backend: _Optional[str] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "page")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    page: _common_pb2.PageResponse
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class DownloadJobOutputRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class DownloadJobOutputResponse(_message.Message):
    __slots__ = ("chunk", "size_bytes", "sha256")
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    chunk: bytes
    size_bytes: int
    sha256: str
    def __init__(self, chunk: _Optional[bytes] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class DeleteJobOutputRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class DeleteJobOutputResponse(_message.Message):
    __slots__ = ("job", "file_removed")
    JOB_FIELD_NUMBER: _ClassVar[int]
    FILE_REMOVED_FIELD_NUMBER: _ClassVar[int]
    job: Job
    file_removed: bool
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., file_removed: bool = ...) -> None: ...

class GetUsageRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetUsageResponse(_message.Message):
    __slots__ = ("caller", "quotas")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    QUOTAS_FIELD_NUMBER: _ClassVar[int]
    caller: str
    quotas: _containers.RepeatedCompositeFieldContainer[_access_pb2.QuotaUsage]
    def __init__(self, caller: _Optional[str] = ..., quotas: _Optional[_Iterable[_Union[_access_pb2.QuotaUsage, _Mapping]]] = ...) -> None: ...
