from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Permission(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PERMISSION_UNSPECIFIED: _ClassVar[Permission]
    PERMISSION_AUTHENTICATED: _ClassVar[Permission]
    PERMISSION_SEARCH: _ClassVar[Permission]
    PERMISSION_INGEST: _ClassVar[Permission]
    PERMISSION_DELETE: _ClassVar[Permission]
    PERMISSION_GENERATE: _ClassVar[Permission]
    PERMISSION_PREVIS: _ClassVar[Permission]
    PERMISSION_ADMIN: _ClassVar[Permission]
PERMISSION_UNSPECIFIED: Permission
PERMISSION_AUTHENTICATED: Permission
PERMISSION_SEARCH: Permission
PERMISSION_INGEST: Permission
PERMISSION_DELETE: Permission
PERMISSION_GENERATE: Permission
PERMISSION_PREVIS: Permission
PERMISSION_ADMIN: Permission
ACCESS_FIELD_NUMBER: _ClassVar[int]
access: _descriptor.FieldDescriptor

class AccessRule(_message.Message):
    __slots__ = ("permission", "collection_field", "owned")
    PERMISSION_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_FIELD_NUMBER: _ClassVar[int]
    OWNED_FIELD_NUMBER: _ClassVar[int]
    permission: Permission
    collection_field: str
    owned: bool
    def __init__(self, permission: _Optional[_Union[Permission, str]] = ..., collection_field: _Optional[str] = ..., owned: bool = ...) -> None: ...

class QuotaUsage(_message.Message):
    __slots__ = ("quota", "limit", "used", "unit", "reset_time")
    QUOTA_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    USED_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    RESET_TIME_FIELD_NUMBER: _ClassVar[int]
    quota: str
    limit: float
    used: float
    unit: str
    reset_time: _timestamp_pb2.Timestamp
    def __init__(self, quota: _Optional[str] = ..., limit: _Optional[float] = ..., used: _Optional[float] = ..., unit: _Optional[str] = ..., reset_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
