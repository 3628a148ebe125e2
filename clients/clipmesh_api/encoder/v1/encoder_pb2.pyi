from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Priority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRIORITY_UNSPECIFIED: _ClassVar[Priority]
    PRIORITY_INTERACTIVE: _ClassVar[Priority]
    PRIORITY_BATCH: _ClassVar[Priority]

class WeightsSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WEIGHTS_SOURCE_UNSPECIFIED: _ClassVar[WeightsSource]
    WEIGHTS_SOURCE_PRETRAINED_TAG: _ClassVar[WeightsSource]
    WEIGHTS_SOURCE_CHECKPOINT: _ClassVar[WeightsSource]
    WEIGHTS_SOURCE_RANDOM_INIT: _ClassVar[WeightsSource]
PRIORITY_UNSPECIFIED: Priority
PRIORITY_INTERACTIVE: Priority
PRIORITY_BATCH: Priority
WEIGHTS_SOURCE_UNSPECIFIED: WeightsSource
WEIGHTS_SOURCE_PRETRAINED_TAG: WeightsSource
WEIGHTS_SOURCE_CHECKPOINT: WeightsSource
WEIGHTS_SOURCE_RANDOM_INIT: WeightsSource

class Embedding(_message.Message):
    __slots__ = ("vector", "truncated")
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    vector: _containers.RepeatedScalarFieldContainer[float]
    truncated: bool
    def __init__(self, vector: _Optional[_Iterable[float]] = ..., truncated: bool = ...) -> None: ...

class EmbedImagesRequest(_message.Message):
    __slots__ = ("images", "priority")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedScalarFieldContainer[bytes]
    priority: Priority
    def __init__(self, images: _Optional[_Iterable[bytes]] = ..., priority: _Optional[_Union[Priority, str]] = ...) -> None: ...

class EmbedImagesResponse(_message.Message):
    __slots__ = ("model_id", "dimension", "embeddings")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    dimension: int
    embeddings: _containers.RepeatedCompositeFieldContainer[Embedding]
    def __init__(self, model_id: _Optional[str] = ..., dimension: _Optional[int] = ..., embeddings: _Optional[_Iterable[_Union[Embedding, _Mapping]]] = ...) -> None: ...

class EmbedTextsRequest(_message.Message):
    __slots__ = ("texts", "priority")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    priority: Priority
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., priority: _Optional[_Union[Priority, str]] = ...) -> None: ...

class EmbedTextsResponse(_message.Message):
    __slots__ = ("model_id", "dimension", "embeddings", "warnings")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    dimension: int
    embeddings: _containers.RepeatedCompositeFieldContainer[Embedding]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, model_id: _Optional[str] = ..., dimension: _Optional[int] = ..., embeddings: _Optional[_Iterable[_Union[Embedding, _Mapping]]] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetModelInfoResponse(_message.Message):
    __slots__ = ("model_id", "model_name", "weights_source", "weights_ref", "random_weights", "device", "precision", "dimension", "image_size", "context_length", "max_batch", "max_items_per_request", "max_image_bytes", "max_image_pixels", "text_languages", "tokenizer")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_SOURCE_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_REF_FIELD_NUMBER: _ClassVar[int]
    RANDOM_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_FIELD_NUMBER: _ClassVar[int]
    MAX_ITEMS_PER_REQUEST_FIELD_NUMBER: _ClassVar[int]
    MAX_IMAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_IMAGE_PIXELS_FIELD_NUMBER: _ClassVar[int]
    TEXT_LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    TOKENIZER_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    model_name: str
    weights_source: WeightsSource
    weights_ref: str
    random_weights: bool
    device: str
    precision: str
    dimension: int
    image_size: int
    context_length: int
    max_batch: int
    max_items_per_request: int
    max_image_bytes: int
    max_image_pixels: int
    text_languages: _containers.RepeatedScalarFieldContainer[str]
    tokenizer: str
    def __init__(self, model_id: _Optional[str] = ..., model_name: _Optional[str] = ..., weights_source: _Optional[_Union[WeightsSource, str]] = ..., weights_ref: _Optional[str] = ..., random_weights: bool = ..., device: _Optional[str] = ..., precision: _Optional[str] = ..., dimension: _Optional[int] = ..., image_size: _Optional[int] = ..., context_length: _Optional[int] = ..., max_batch: _Optional[int] = ..., max_items_per_request: _Optional[int] = ..., max_image_bytes: _Optional[int] = ..., max_image_pixels: _Optional[int] = ..., text_languages: _Optional[_Iterable[str]] = ..., tokenizer: _Optional[str] = ...) -> None: ...
