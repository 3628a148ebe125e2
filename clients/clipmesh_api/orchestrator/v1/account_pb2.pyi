from clipmesh_api.common.v1 import access_pb2 as _access_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Grant(_message.Message):
    __slots__ = ("roles", "collections")
    ROLES_FIELD_NUMBER: _ClassVar[int]
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    roles: _containers.RepeatedScalarFieldContainer[str]
    collections: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, roles: _Optional[_Iterable[str]] = ..., collections: _Optional[_Iterable[str]] = ...) -> None: ...

class GetCallerRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetCallerResponse(_message.Message):
    __slots__ = ("caller", "admin", "authorization_enabled", "grants", "quotas", "warnings")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    ADMIN_FIELD_NUMBER: _ClassVar[int]
    AUTHORIZATION_ENABLED_FIELD_NUMBER: _ClassVar[int]
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    QUOTAS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    caller: str
    admin: bool
    authorization_enabled: bool
    grants: _containers.RepeatedCompositeFieldContainer[Grant]
    quotas: _containers.RepeatedCompositeFieldContainer[_access_pb2.QuotaUsage]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, caller: _Optional[str] = ..., admin: bool = ..., authorization_enabled: bool = ..., grants: _Optional[_Iterable[_Union[Grant, _Mapping]]] = ..., quotas: _Optional[_Iterable[_Union[_access_pb2.QuotaUsage, _Mapping]]] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...
