from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VideoSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VIDEO_SOURCE_UNSPECIFIED: _ClassVar[VideoSource]
    VIDEO_SOURCE_INGESTED: _ClassVar[VideoSource]
    VIDEO_SOURCE_GENERATED: _ClassVar[VideoSource]
VIDEO_SOURCE_UNSPECIFIED: VideoSource
VIDEO_SOURCE_INGESTED: VideoSource
VIDEO_SOURCE_GENERATED: VideoSource

class Media(_message.Message):
    __slots__ = ("inline_bytes", "uri", "mime_type")
    INLINE_BYTES_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    inline_bytes: bytes
    uri: str
    mime_type: str
    def __init__(self, inline_bytes: _Optional[bytes] = ..., uri: _Optional[str] = ..., mime_type: _Optional[str] = ...) -> None: ...

class TimeRange(_message.Message):
    __slots__ = ("start_s", "end_s")
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    start_s: float
    end_s: float
    def __init__(self, start_s: _Optional[float] = ..., end_s: _Optional[float] = ...) -> None: ...

class Video(_message.Message):
    __slots__ = ("video_id", "collection", "uri", "title", "duration_s", "fps", "width", "height", "size_bytes", "source", "create_time", "labels", "content_sha256")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    video_id: str
    collection: str
    uri: str
    title: str
    duration_s: float
    fps: float
    width: int
    height: int
    size_bytes: int
    source: VideoSource
    create_time: _timestamp_pb2.Timestamp
    labels: _containers.ScalarMap[str, str]
    content_sha256: str
    def __init__(self, video_id: _Optional[str] = ..., collection: _Optional[str] = ..., uri: _Optional[str] = ..., title: _Optional[str] = ..., duration_s: _Optional[float] = ..., fps: _Optional[float] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., size_bytes: _Optional[int] = ..., source: _Optional[_Union[VideoSource, str]] = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., content_sha256: _Optional[str] = ...) -> None: ...

class Moment(_message.Message):
    __slots__ = ("start_s", "end_s", "peak_s", "score", "thumbnail_uri")
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    PEAK_S_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    THUMBNAIL_URI_FIELD_NUMBER: _ClassVar[int]
    start_s: float
    end_s: float
    peak_s: float
    score: float
    thumbnail_uri: str
    def __init__(self, start_s: _Optional[float] = ..., end_s: _Optional[float] = ..., peak_s: _Optional[float] = ..., score: _Optional[float] = ..., thumbnail_uri: _Optional[str] = ...) -> None: ...

class VideoHit(_message.Message):
    __slots__ = ("video", "score", "moments")
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    MOMENTS_FIELD_NUMBER: _ClassVar[int]
    video: Video
    score: float
    moments: _containers.RepeatedCompositeFieldContainer[Moment]
    def __init__(self, video: _Optional[_Union[Video, _Mapping]] = ..., score: _Optional[float] = ..., moments: _Optional[_Iterable[_Union[Moment, _Mapping]]] = ...) -> None: ...

class StringList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, values: _Optional[_Iterable[str]] = ...) -> None: ...

class NumericRange(_message.Message):
    __slots__ = ("min", "max", "min_exclusive", "max_exclusive")
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    MIN_EXCLUSIVE_FIELD_NUMBER: _ClassVar[int]
    MAX_EXCLUSIVE_FIELD_NUMBER: _ClassVar[int]
    min: float
    max: float
    min_exclusive: bool
    max_exclusive: bool
    def __init__(self, min: _Optional[float] = ..., max: _Optional[float] = ..., min_exclusive: bool = ..., max_exclusive: bool = ...) -> None: ...

class FilterClause(_message.Message):
    __slots__ = ("field", "equals", "any_of", "range", "negate")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    EQUALS_FIELD_NUMBER: _ClassVar[int]
    ANY_OF_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    NEGATE_FIELD_NUMBER: _ClassVar[int]
    field: str
    equals: str
    any_of: StringList
    range: NumericRange
    negate: bool
    def __init__(self, field: _Optional[str] = ..., equals: _Optional[str] = ..., any_of: _Optional[_Union[StringList, _Mapping]] = ..., range: _Optional[_Union[NumericRange, _Mapping]] = ..., negate: bool = ...) -> None: ...

class MetadataFilter(_message.Message):
    __slots__ = ("clauses",)
    CLAUSES_FIELD_NUMBER: _ClassVar[int]
    clauses: _containers.RepeatedCompositeFieldContainer[FilterClause]
    def __init__(self, clauses: _Optional[_Iterable[_Union[FilterClause, _Mapping]]] = ...) -> None: ...

class PageRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class PageResponse(_message.Message):
    __slots__ = ("next_page_token", "total_size")
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    next_page_token: str
    total_size: int
    def __init__(self, next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class StageTiming(_message.Message):
    __slots__ = ("stage", "duration_ms")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    stage: str
    duration_ms: float
    def __init__(self, stage: _Optional[str] = ..., duration_ms: _Optional[float] = ...) -> None: ...
