from clipmesh_api.common.v1 import access_pb2 as _access_pb2
from clipmesh_api.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IngestStage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INGEST_STAGE_UNSPECIFIED: _ClassVar[IngestStage]
    INGEST_STAGE_QUEUED: _ClassVar[IngestStage]
    INGEST_STAGE_PROBING: _ClassVar[IngestStage]
    INGEST_STAGE_DETECTING_SHOTS: _ClassVar[IngestStage]
    INGEST_STAGE_EXTRACTING: _ClassVar[IngestStage]
    INGEST_STAGE_ENCODING: _ClassVar[IngestStage]
    INGEST_STAGE_INDEXING: _ClassVar[IngestStage]
    INGEST_STAGE_DONE: _ClassVar[IngestStage]
    INGEST_STAGE_DUPLICATE: _ClassVar[IngestStage]
    INGEST_STAGE_FAILED: _ClassVar[IngestStage]
INGEST_STAGE_UNSPECIFIED: IngestStage
INGEST_STAGE_QUEUED: IngestStage
INGEST_STAGE_PROBING: IngestStage
INGEST_STAGE_DETECTING_SHOTS: IngestStage
INGEST_STAGE_EXTRACTING: IngestStage
INGEST_STAGE_ENCODING: IngestStage
INGEST_STAGE_INDEXING: IngestStage
INGEST_STAGE_DONE: IngestStage
INGEST_STAGE_DUPLICATE: IngestStage
INGEST_STAGE_FAILED: IngestStage

class IngestItem(_message.Message):
    __slots__ = ("uri", "title", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    URI_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    uri: str
    title: str
    labels: _containers.ScalarMap[str, str]
    def __init__(self, uri: _Optional[str] = ..., title: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class IngestVideosRequest(_message.Message):
    __slots__ = ("items", "collection")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[IngestItem]
    collection: str
    def __init__(self, items: _Optional[_Iterable[_Union[IngestItem, _Mapping]]] = ..., collection: _Optional[str] = ...) -> None: ...

class IngestError(_message.Message):
    __slots__ = ("reason", "message")
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    reason: str
    message: str
    def __init__(self, reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class VideoProgress(_message.Message):
    __slots__ = ("uri", "video_id", "stage", "fraction", "eta_s", "segments", "error")
    URI_FIELD_NUMBER: _ClassVar[int]
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    FRACTION_FIELD_NUMBER: _ClassVar[int]
    ETA_S_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    uri: str
    video_id: str
    stage: IngestStage
    fraction: float
    eta_s: float
    segments: int
    error: IngestError
    def __init__(self, uri: _Optional[str] = ..., video_id: _Optional[str] = ..., stage: _Optional[_Union[IngestStage, str]] = ..., fraction: _Optional[float] = ..., eta_s: _Optional[float] = ..., segments: _Optional[int] = ..., error: _Optional[_Union[IngestError, _Mapping]] = ...) -> None: ...

class IngestSummary(_message.Message):
    __slots__ = ("ingested", "duplicates", "failed", "segments", "video_seconds", "wall_seconds")
    INGESTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    VIDEO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WALL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ingested: int
    duplicates: int
    failed: int
    segments: int
    video_seconds: float
    wall_seconds: float
    def __init__(self, ingested: _Optional[int] = ..., duplicates: _Optional[int] = ..., failed: _Optional[int] = ..., segments: _Optional[int] = ..., video_seconds: _Optional[float] = ..., wall_seconds: _Optional[float] = ...) -> None: ...

class IngestVideosResponse(_message.Message):
    __slots__ = ("progress", "summary")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    progress: VideoProgress
    summary: IngestSummary
    def __init__(self, progress: _Optional[_Union[VideoProgress, _Mapping]] = ..., summary: _Optional[_Union[IngestSummary, _Mapping]] = ...) -> None: ...

class DeleteVideosRequest(_message.Message):
    __slots__ = ("collection", "video_ids")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    VIDEO_IDS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    video_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, collection: _Optional[str] = ..., video_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteVideosResponse(_message.Message):
    __slots__ = ("deleted_count", "not_found_ids")
    DELETED_COUNT_FIELD_NUMBER: _ClassVar[int]
    NOT_FOUND_IDS_FIELD_NUMBER: _ClassVar[int]
    deleted_count: int
    not_found_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, deleted_count: _Optional[int] = ..., not_found_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetVideoRequest(_message.Message):
    __slots__ = ("collection", "video_id")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    collection: str
    video_id: str
    def __init__(self, collection: _Optional[str] = ..., video_id: _Optional[str] = ...) -> None: ...

class GetVideoResponse(_message.Message):
    __slots__ = ("video", "segments")
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    video: _common_pb2.Video
    segments: int
    def __init__(self, video: _Optional[_Union[_common_pb2.Video, _Mapping]] = ..., segments: _Optional[int] = ...) -> None: ...

class ListVideosRequest(_message.Message):
    __slots__ = ("collection", "filter", "page")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    collection: str
    filter: _common_pb2.MetadataFilter
    page: _common_pb2.PageRequest
    def __init__(self, collection: _Optional[str] = ..., filter: _Optional[_Union[_common_pb2.MetadataFilter, _Mapping]] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListVideosResponse(_message.Message):
    __slots__ = ("videos", "page")
    VIDEOS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    videos: _containers.RepeatedCompositeFieldContainer[_common_pb2.Video]
    page: _common_pb2.PageResponse
    def __init__(self, videos: _Optional[_Iterable[_Union[_common_pb2.Video, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...
