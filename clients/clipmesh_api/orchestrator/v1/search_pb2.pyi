from clipmesh_api.common.v1 import access_pb2 as _access_pb2
from clipmesh_api.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClipReference(_message.Message):
    __slots__ = ("video_id", "span")
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_FIELD_NUMBER: _ClassVar[int]
    video_id: str
    span: _common_pb2.TimeRange
    def __init__(self, video_id: _Optional[str] = ..., span: _Optional[_Union[_common_pb2.TimeRange, _Mapping]] = ...) -> None: ...

class QueryPart(_message.Message):
    __slots__ = ("image", "text", "clip", "weight")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CLIP_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    text: str
    clip: ClipReference
    weight: float
    def __init__(self, image: _Optional[bytes] = ..., text: _Optional[str] = ..., clip: _Optional[_Union[ClipReference, _Mapping]] = ..., weight: _Optional[float] = ...) -> None: ...

class SearchVideosRequest(_message.Message):
    __slots__ = ("parts", "collection", "top_k", "max_moments_per_video", "filter", "budget_ms", "skip_cache", "min_score")
    PARTS_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    MAX_MOMENTS_PER_VIDEO_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    BUDGET_MS_FIELD_NUMBER: _ClassVar[int]
    SKIP_CACHE_FIELD_NUMBER: _ClassVar[int]
    MIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    parts: _containers.RepeatedCompositeFieldContainer[QueryPart]
    collection: str
    top_k: int
    max_moments_per_video: int
    filter: _common_pb2.MetadataFilter
    budget_ms: int
    skip_cache: bool
    min_score: float
    def __init__(self, parts: _Optional[_Iterable[_Union[QueryPart, _Mapping]]] = ..., collection: _Optional[str] = ..., top_k: _Optional[int] = ..., max_moments_per_video: _Optional[int] = ..., filter: _Optional[_Union[_common_pb2.MetadataFilter, _Mapping]] = ..., budget_ms: _Optional[int] = ..., skip_cache: bool = ..., min_score: _Optional[float] = ...) -> None: ...

class SearchVideosResponse(_message.Message):
    __slots__ = ("hits", "degraded", "timings", "cache_hit", "model_id", "warnings", "hits_below_min_score")
    HITS_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    HITS_BELOW_MIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[_common_pb2.VideoHit]
    degraded: bool
    timings: _containers.RepeatedCompositeFieldContainer[_common_pb2.StageTiming]
    cache_hit: bool
    model_id: str
    warnings: _containers.RepeatedScalarFieldContainer[str]
    hits_below_min_score: int
    def __init__(self, hits: _Optional[_Iterable[_Union[_common_pb2.VideoHit, _Mapping]]] = ..., degraded: bool = ..., timings: _Optional[_Iterable[_Union[_common_pb2.StageTiming, _Mapping]]] = ..., cache_hit: bool = ..., model_id: _Optional[str] = ..., warnings: _Optional[_Iterable[str]] = ..., hits_below_min_score: _Optional[int] = ...) -> None: ...
