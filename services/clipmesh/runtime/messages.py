"""Domain records ↔ API messages, field by field by name: one way for every service.

A record (a dataclass) and its message share field names, with three conventions:

- a record's `<name>_time_s` (Unix seconds, 0: not set) is the message's Timestamp
  `<name>_time`;
- a member of a record's `enum.Enum` is the message enum's value `<PREFIX>_<MEMBER>`, the
  prefix being the enum type's name in UPPER_SNAKE_CASE (`ShotState.READY` ↔
  `SHOT_STATE_READY`); a value the record's enum lacks (`*_UNSPECIFIED`) reads as the field's
  default;
- None is an unset field: a message field, or a proto3 `optional` scalar.

Nested records and lists of them convert recursively; maps are dicts. `renames` maps a record
type's field names to its message's where they differ, and keyword arguments fill message or
record fields the other side lacks (a video's collection, say). Fields only one side has are
otherwise left out.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from clipmesh.runtime.timestamps import seconds_of, timestamp

RecordT = TypeVar("RecordT")
Renames = Mapping[type, Mapping[str, str]]
_TIME_SUFFIX = "_time_s"


def to_message(
    record: Any, message_type: type[Message], *, renames: Renames | None = None, **extra: Any
) -> Message:
    """The message of `message_type` for `record`; `extra` sets fields the record lacks."""
    descriptor = message_type.DESCRIPTOR
    names = (renames or {}).get(type(record), {})
    values: dict[str, Any] = {}
    for field in dataclasses.fields(record):
        name = names.get(field.name, field.name)
        value = getattr(record, field.name)
        proto_field = _field(descriptor, name)
        if proto_field is None or value is None:
            continue
        if name.endswith(_TIME_SUFFIX):
            value = timestamp(value)
            if value is None:
                continue
        values[proto_field.name] = _to_value(value, proto_field, renames)
    values.update(extra)
    return message_type(**values)


def from_message(
    message: Message, record_type: type[RecordT], *, renames: Renames | None = None, **extra: Any
) -> RecordT:
    """The record of `record_type` for `message`; `extra` sets fields the message lacks."""
    descriptor = message.DESCRIPTOR
    names = (renames or {}).get(record_type, {})
    hints = typing.get_type_hints(record_type)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(record_type):
        name = names.get(field.name, field.name)
        proto_field = _field(descriptor, name)
        if field.name in extra or proto_field is None:
            continue
        if name.endswith(_TIME_SUFFIX):
            values[field.name] = seconds_of(message, proto_field.name)
        else:
            values[field.name] = _from_value(
                message, proto_field, hints[field.name], field, renames
            )
    values.update(extra)
    return record_type(**values)


def _field(descriptor: Descriptor, name: str) -> FieldDescriptor | None:
    if name.endswith(_TIME_SUFFIX):
        name = name.removesuffix("_s")
    return descriptor.fields_by_name.get(name)


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _to_value(value: Any, field: FieldDescriptor, renames: Renames | None) -> Any:
    if isinstance(value, enum.Enum):
        return field.enum_type.values_by_name[f"{_prefix(field)}_{value.name}"].number
    if dataclasses.is_dataclass(value):
        return to_message(value, _message_class(field), renames=renames)
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list | tuple):
        if value and dataclasses.is_dataclass(value[0]):
            return [to_message(item, _message_class(field), renames=renames) for item in value]
        return list(value)
    return value


def _from_value(
    message: Message,
    field: FieldDescriptor,
    hint: Any,
    record_field: dataclasses.Field,
    renames: Renames | None,
) -> Any:
    hint, optional = _unwrap_optional(hint)
    if optional and field.has_presence and not message.HasField(field.name):
        return None
    value = getattr(message, field.name)
    if _is_map(field):
        return dict(value)
    if field.label == FieldDescriptor.LABEL_REPEATED:
        (item_type, *_) = typing.get_args(hint) or (Any,)
        items = [
            from_message(item, item_type, renames=renames)
            if dataclasses.is_dataclass(item_type)
            else item
            for item in value
        ]
        return tuple(items) if typing.get_origin(hint) is tuple else items
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        member = field.enum_type.values_by_number[value].name.removeprefix(f"{_prefix(field)}_")
        return hint[member] if member in hint.__members__ else record_field.default
    if dataclasses.is_dataclass(hint):
        return from_message(value, hint, renames=renames)
    return value


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return (args[0] if len(args) == 1 else hint), True
    return hint, False


def _prefix(field: FieldDescriptor) -> str:
    """`ShotState` → `SHOT_STATE`: the prefix of the enum's value names (buf's convention)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", field.enum_type.name).upper()


def _message_class(field: FieldDescriptor) -> type[Message]:
    return message_factory.GetMessageClass(field.message_type)
