"""Enum values a request may not carry: numbers its enum type does not define.

proto3 keeps an unknown enum number as it came (an "open" enum), so a request with priority 99
parses and would be served as whatever the code does with an unexpected number. Every request
is checked once, as it is parsed (runtime/errors.py), and refused naming the field.

Only the message types that can hold an enum are walked (decided once per type), so a request
of thousands of segment vectors costs nothing here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message


@dataclass(frozen=True)
class UnknownEnum:
    """Where a request carries an enum number its type does not define.

    Attributes:
        field: The field's path in the request, e.g. `priority` or `shots[2].state`.
        value: The number it carries.
        enum: The enum type's name.
        known: The names the enum type defines.
    """

    field: str
    value: int
    enum: str
    known: tuple[str, ...]

    def message(self) -> str:
        return (
            f"{self.field} is {self.value}, which is not a {self.enum} value; "
            f"use one of {', '.join(self.known)}"
        )


def first_unknown_enum(message: Message) -> UnknownEnum | None:
    """The first enum field of `message` (nested messages included) holding an undefined
    number, or None when every one is defined."""
    return _walk(message, "")


def _walk(message: Message, prefix: str) -> UnknownEnum | None:
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        repeated = field.label == FieldDescriptor.LABEL_REPEATED
        if field.type == FieldDescriptor.TYPE_ENUM:
            numbers = value if repeated else [value]
            for index, number in enumerate(numbers):
                if number not in field.enum_type.values_by_number:
                    where = f"{path}[{index}]" if repeated else path
                    return _unknown(where, number, field)
        elif field.type == FieldDescriptor.TYPE_MESSAGE and _may_hold_enums(field.message_type):
            found = _walk_message_field(field, value, path, repeated)
            if found:
                return found
    return None


def _walk_message_field(
    field: FieldDescriptor, value, path: str, repeated: bool
) -> UnknownEnum | None:
    if field.message_type.GetOptions().map_entry:
        value_field = field.message_type.fields_by_name["value"]
        for key, item in value.items():
            where = f"{path}[{key!r}]"
            if value_field.type == FieldDescriptor.TYPE_ENUM:
                if item not in value_field.enum_type.values_by_number:
                    return _unknown(where, item, value_field)
            elif found := _walk(item, f"{where}."):
                return found
        return None
    items = value if repeated else [value]
    for index, item in enumerate(items):
        where = f"{path}[{index}]" if repeated else path
        if found := _walk(item, f"{where}."):
            return found
    return None


def _unknown(where: str, number: int, field: FieldDescriptor) -> UnknownEnum:
    known = tuple(value.name for value in field.enum_type.values)
    return UnknownEnum(where, number, field.enum_type.name, known)


@functools.cache
def _may_hold_enums(descriptor: Descriptor) -> bool:
    """Whether a message of this type can hold an enum, at any depth."""
    return _holds_enums(descriptor, frozenset())


def _holds_enums(descriptor: Descriptor, visiting: frozenset[str]) -> bool:
    if descriptor.full_name in visiting:  # a recursive type: its enums are found elsewhere
        return False
    visiting = visiting | {descriptor.full_name}
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_ENUM:
            return True
        if field.type == FieldDescriptor.TYPE_MESSAGE and _holds_enums(
            field.message_type, visiting
        ):
            return True
    return False
