"""Domain records ↔ API messages, field by field by name: one way for every service.

A record (a dataclass) and its message share field names, with three conventions:

- a record's `<name>_time_s` (Unix seconds, 0: not set) is the message's Timestamp
  `<name>_time`;
- a member of a record's `enum.Enum` is the message enum's value `<PREFIX>_<MEMBER>`, the
  prefix being the enum type's name in UPPER_SNAKE_CASE (`ShotState.READY` ↔
  `SHOT_STATE_READY`); a value the record's enum lacks (`*_UNSPECIFIED`) reads as the field's
  default;
- None is an unset field: a message field, or a proto3 `optional` scalar.

Nested records and lists of them convert recursively; maps are dicts. `renames` (made once with
`field_names`) maps a record type's field names to its message's where they differ, and
keyword arguments fill message or record fields the other side lacks (a video's collection,
say). Fields only one side has are otherwise left out.

Search answers go through here on every call, so each (record, message) pair is planned once
from the type hints and the descriptors, and a conversion only runs the plan.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from google.protobuf import message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from clipmesh.runtime.timestamps import seconds_of, timestamp

RecordT = TypeVar("RecordT")
Renames = Mapping[type, Mapping[str, str]]
_TIME_SUFFIX = "_time_s"
_Key = frozenset  # renames, hashable: {(record type, ((field, message field), …)), …}


def to_message(
    record: Any, message_type: type[Message], *, renames: _Key | None = None, **extra: Any
) -> Message:
    """The message of `message_type` for `record`; `extra` sets fields the record lacks."""
    values = _writer(type(record), message_type, _key(renames))(record)
    values.update(extra)
    return message_type(**values)


def _to(record: Any, message_type: type[Message], key: _Key) -> Message:
    return message_type(**_writer(type(record), message_type, key)(record))


def from_message(
    message: Message, record_type: type[RecordT], *, renames: _Key | None = None, **extra: Any
) -> RecordT:
    """The record of `record_type` for `message`; `extra` sets fields the message lacks."""
    values = _reader(record_type, type(message), _key(renames), frozenset(extra))(message)
    values.update(extra)
    return record_type(**values)


def _from(message: Message, record_type: type[RecordT], key: _Key) -> RecordT:
    return record_type(**_reader(record_type, type(message), key, frozenset())(message))


def field_names(renames: Renames) -> _Key:
    """`renames` in the form conversions take: make it once, at import, and pass it on."""
    return frozenset((kind, tuple(sorted(names.items()))) for kind, names in renames.items())


def _key(renames: _Key | None) -> _Key:
    return renames or _NO_RENAMES


_NO_RENAMES: _Key = frozenset()


def _names(record_type: type, key: _Key) -> dict[str, str]:
    return next((dict(names) for kind, names in key if kind is record_type), {})


@functools.cache
def _writer(record_type: type, message_type: type[Message], key: _Key) -> Callable:
    """A function from a record to the message constructor's keyword arguments."""
    steps: list[tuple[str, str, Callable | None]] = []
    for field, proto_field, hint in _pairs(record_type, message_type, key):
        name = field.name
        if _names(record_type, key).get(name, name).endswith(_TIME_SUFFIX):
            steps.append((name, proto_field.name, timestamp))
        else:
            steps.append((name, proto_field.name, _encoder(hint, proto_field, key)))

    def write(record: Any) -> dict[str, Any]:
        values = {}
        for attribute, target, encode in steps:
            value = getattr(record, attribute)
            if value is not None and encode is not None:
                value = encode(value)
            if value is not None:
                values[target] = value
        return values

    return write


def _encoder(hint: Any, field: FieldDescriptor, key: _Key) -> Callable | None:
    hint, _ = _unwrap_optional(hint)
    item = _item_type(hint)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        prefix = _prefix(field)
        numbers = {m: field.enum_type.values_by_name[f"{prefix}_{m.name}"].number for m in hint}
        return numbers.__getitem__
    if dataclasses.is_dataclass(hint):
        message_type = _message_class(field)
        return lambda value: _to(value, message_type, key)
    if item is not None and dataclasses.is_dataclass(item):
        message_type = _message_class(field)
        return lambda values: [_to(value, message_type, key) for value in values]
    if item is not None:
        return list
    return None


@functools.cache
def _reader(
    record_type: type, message_type: type[Message], key: _Key, skip: frozenset[str]
) -> Callable:
    """A function from a message to the record constructor's keyword arguments."""
    steps: list[tuple[str, Callable]] = []
    for field, proto_field, hint in _pairs(record_type, message_type, key):
        if field.name in skip:
            continue
        if _names(record_type, key).get(field.name, field.name).endswith(_TIME_SUFFIX):
            steps.append((field.name, functools.partial(_time, proto_field.name)))
        else:
            steps.append((field.name, _decoder(hint, proto_field, field, key)))

    def read(message: Message) -> dict[str, Any]:
        return {name: decode(message) for name, decode in steps}

    return read


def _time(name: str, message: Message) -> float:
    return seconds_of(message, name)


def _decoder(
    hint: Any, field: FieldDescriptor, record_field: dataclasses.Field, key: _Key
) -> Callable:
    name = field.name
    hint, optional = _unwrap_optional(hint)
    item = _item_type(hint)
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        convert: Callable = dict
    elif item is not None:
        collection = tuple if typing.get_origin(hint) is tuple else list
        if dataclasses.is_dataclass(item):
            convert = lambda values: collection(_from(v, item, key) for v in values)  # noqa: E731
        else:
            convert = collection
    elif isinstance(hint, type) and issubclass(hint, enum.Enum):
        prefix = f"{_prefix(field)}_"
        members = {
            value.number: hint.__members__.get(
                value.name.removeprefix(prefix), record_field.default
            )
            for value in field.enum_type.values
        }
        convert = lambda number: members.get(number, record_field.default)  # noqa: E731
    elif dataclasses.is_dataclass(hint):
        convert = lambda message: _from(message, hint, key)  # noqa: E731
    else:
        convert = None
    if optional and field.has_presence:

        def decode(message: Message) -> Any:
            if not message.HasField(name):
                return None
            value = getattr(message, name)
            return convert(value) if convert else value

        return decode
    if convert is None:
        return lambda message: getattr(message, name)
    return lambda message: convert(getattr(message, name))


def _pairs(record_type: type, message_type: type[Message], key: _Key):
    """(record field, message field, record field's type) for every field both sides have."""
    names = _names(record_type, key)
    by_name = message_type.DESCRIPTOR.fields_by_name
    hints = typing.get_type_hints(record_type)
    for field in dataclasses.fields(record_type):
        name = names.get(field.name, field.name)
        proto_field = by_name.get(name.removesuffix("_s") if name.endswith(_TIME_SUFFIX) else name)
        if proto_field is not None:
            yield field, proto_field, hints[field.name]


def _item_type(hint: Any) -> Any:
    """X for list[X] and tuple[X, ...]; None for anything else."""
    if typing.get_origin(hint) in (list, tuple):
        return (typing.get_args(hint) or (Any,))[0]
    return None


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
