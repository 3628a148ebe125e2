from clipmesh_api.common.v1 import common_pb2 as _common_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Segment(_message.Message):
    __slots__ = ("start_s", "end_s", "keyframe_s", "vector", "thumbnail_uri", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    KEYFRAME_S_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    THUMBNAIL_URI_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    start_s: float
    end_s: float
    keyframe_s: float
    vector: _containers.RepeatedScalarFieldContainer[float]
    thumbnail_uri: str
    labels: _containers.ScalarMap[str, str]
    def __init__(self, start_s: _Optional[float] = ..., end_s: _Optional[float] = ..., keyframe_s: _Optional[float] = ..., vector: _Optional[_Iterable[float]] = ..., thumbnail_uri: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class VideoSegments(_message.Message):
    __slots__ = ("video", "segments")
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    video: _common_pb2.Video
    segments: _containers.RepeatedCompositeFieldContainer[Segment]
    def __init__(self, video: _Optional[_Union[_common_pb2.Video, _Mapping]] = ..., segments: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ...) -> None: ...

class UpsertSegmentsRequest(_message.Message):
    __slots__ = ("collection", "videos")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    VIDEOS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    videos: _containers.RepeatedCompositeFieldContainer[VideoSegments]
    def __init__(self, collection: _Optional[str] = ..., videos: _Optional[_Iterable[_Union[VideoSegments, _Mapping]]] = ...) -> None: ...

class UpsertSegmentsResponse(_message.Message):
    __slots__ = ("videos_upserted", "segments_upserted", "sequence")
    VIDEOS_UPSERTED_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_UPSERTED_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    videos_upserted: int
    segments_upserted: int
    sequence: int
    def __init__(self, videos_upserted: _Optional[int] = ..., segments_upserted: _Optional[int] = ..., sequence: _Optional[int] = ...) -> None: ...

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

class WeightedVector(_message.Message):
    __slots__ = ("vector", "weight")
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    vector: _containers.RepeatedScalarFieldContainer[float]
    weight: float
    def __init__(self, vector: _Optional[_Iterable[float]] = ..., weight: _Optional[float] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("collection", "queries", "top_k", "max_moments_per_video", "filter")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    MAX_MOMENTS_PER_VIDEO_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    collection: str
    queries: _containers.RepeatedCompositeFieldContainer[WeightedVector]
    top_k: int
    max_moments_per_video: int
    filter: _common_pb2.MetadataFilter
    def __init__(self, collection: _Optional[str] = ..., queries: _Optional[_Iterable[_Union[WeightedVector, _Mapping]]] = ..., top_k: _Optional[int] = ..., max_moments_per_video: _Optional[int] = ..., filter: _Optional[_Union[_common_pb2.MetadataFilter, _Mapping]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("hits", "degraded", "degraded_reason", "timings", "index_type")
    HITS_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_REASON_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    INDEX_TYPE_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[_common_pb2.VideoHit]
    degraded: bool
    degraded_reason: str
    timings: _containers.RepeatedCompositeFieldContainer[_common_pb2.StageTiming]
    index_type: str
    def __init__(self, hits: _Optional[_Iterable[_Union[_common_pb2.VideoHit, _Mapping]]] = ..., degraded: bool = ..., degraded_reason: _Optional[str] = ..., timings: _Optional[_Iterable[_Union[_common_pb2.StageTiming, _Mapping]]] = ..., index_type: _Optional[str] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    def __init__(self, collection: _Optional[str] = ...) -> None: ...

class CollectionStats(_message.Message):
    __slots__ = ("collection", "videos", "segments", "dimension", "index_type", "memory_bytes", "wal_bytes", "last_snapshot_time", "rebuilding")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    VIDEOS_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    INDEX_TYPE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    WAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    LAST_SNAPSHOT_TIME_FIELD_NUMBER: _ClassVar[int]
    REBUILDING_FIELD_NUMBER: _ClassVar[int]
    collection: str
    videos: int
    segments: int
    dimension: int
    index_type: str
    memory_bytes: int
    wal_bytes: int
    last_snapshot_time: _timestamp_pb2.Timestamp
    rebuilding: bool
    def __init__(self, collection: _Optional[str] = ..., videos: _Optional[int] = ..., segments: _Optional[int] = ..., dimension: _Optional[int] = ..., index_type: _Optional[str] = ..., memory_bytes: _Optional[int] = ..., wal_bytes: _Optional[int] = ..., last_snapshot_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., rebuilding: bool = ...) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("collections", "backend")
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedCompositeFieldContainer[CollectionStats]
    backend: str
    def __init__(self, collections: _Optional[_Iterable[_Union[CollectionStats, _Mapping]]] = ..., backend: _Optional[str] = ...) -> None: ...

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

class GetSegmentsRequest(_message.Message):
    __slots__ = ("collection", "video_id", "span")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_FIELD_NUMBER: _ClassVar[int]
    collection: str
    video_id: str
    span: _common_pb2.TimeRange
    def __init__(self, collection: _Optional[str] = ..., video_id: _Optional[str] = ..., span: _Optional[_Union[_common_pb2.TimeRange, _Mapping]] = ...) -> None: ...

class GetSegmentsResponse(_message.Message):
    __slots__ = ("segments",)
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    segments: _containers.RepeatedCompositeFieldContainer[Segment]
    def __init__(self, segments: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ...) -> None: ...
