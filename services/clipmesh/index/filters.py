"""Metadata filters: parsed once from the API, checked strictly, evaluated on video metadata.

A filter is an AND of clauses; each clause tests one field with equality, set membership or a
numeric range, optionally negated. Fields: `video_id`, `uri`, `title`, `source`,
`content_sha256` (strings); `duration_s`, `fps`, `width`, `height`, `size_bytes`,
`create_time` (numbers, `create_time` in Unix seconds); `labels.<key>` (strings that a range
reads as numbers; a value that is not a number does not match a range).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from clipmesh.index.records import SOURCES, VideoMeta
from clipmesh.runtime.errors import InvalidArgument
from clipmesh_api.common.v1 import common_pb2

STRING_FIELDS = ("video_id", "uri", "title", "source", "content_sha256")
NUMERIC_FIELDS = {
    "duration_s": "duration_s",
    "fps": "fps",
    "width": "width",
    "height": "height",
    "size_bytes": "size_bytes",
    "create_time": "create_time_s",
}
MAX_CLAUSES = 64
MAX_VALUES = 1024
MAX_VALUE_CHARS = 1024
# \Z, not $: `$` also matches before a trailing newline, which let "lang\n" through.
_LABEL_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,128}\Z")


@dataclass(frozen=True)
class Clause:
    """One validated test on one field."""

    field: str
    kind: Literal["equals", "any_of", "range"]
    values: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    high_inclusive: bool = True
    negate: bool = False

    @property
    def numeric(self) -> bool:
        return self.field in NUMERIC_FIELDS

    def matches(self, meta: VideoMeta) -> bool:
        return self._test(meta) != self.negate

    def _test(self, meta: VideoMeta) -> bool:
        value = field_value(meta, self.field)
        if self.kind == "range":
            number = _as_number(value)
            if number is None:
                return False
            if self.low is not None and (
                number < self.low or (number == self.low and not self.low_inclusive)
            ):
                return False
            return not (
                self.high is not None
                and (number > self.high or (number == self.high and not self.high_inclusive))
            )
        if self.numeric:
            return any(float(v) == value for v in self.values)
        return value in self.values


@dataclass(frozen=True)
class VideoFilter:
    """An AND of clauses over video metadata."""

    clauses: tuple[Clause, ...]

    def matches(self, meta: VideoMeta) -> bool:
        """True when every clause holds for `meta`."""
        return all(clause.matches(meta) for clause in self.clauses)


def field_value(meta: VideoMeta, field: str) -> str | float | None:
    """The value of a filterable field (None: a label the video does not have)."""
    if field.startswith("labels."):
        return meta.labels.get(field[len("labels.") :])
    if field in NUMERIC_FIELDS:
        return float(getattr(meta, NUMERIC_FIELDS[field]))
    return getattr(meta, field)


def _as_number(value: str | float | None) -> float | None:
    if value is None or isinstance(value, float):
        return value
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_filter(
    message: common_pb2.MetadataFilter, *, where: str = "filter"
) -> VideoFilter | None:
    """Validates an API filter; None when it has no clauses.

    Raises:
        InvalidArgument: naming the clause and what is wrong with it.
    """
    if len(message.clauses) > MAX_CLAUSES:
        raise InvalidArgument(
            f"{where} has {len(message.clauses)} clauses; the limit is {MAX_CLAUSES}",
            field=f"{where}.clauses",
            reason="FILTER_TOO_LARGE",
        )
    clauses = tuple(
        _parse_clause(c, f"{where}.clauses[{i}]") for i, c in enumerate(message.clauses)
    )
    return VideoFilter(clauses) if clauses else None


def _parse_clause(clause: common_pb2.FilterClause, where: str) -> Clause:
    def bad(message: str, reason: str = "BAD_FILTER") -> InvalidArgument:
        return InvalidArgument(f"{where}: {message}", field=where, reason=reason)

    name = clause.field
    is_label = name.startswith("labels.")
    if is_label and not _LABEL_KEY.match(name[len("labels.") :]):
        raise bad(f"label key {name[len('labels.') :]!r} must be 1-128 of A-Z a-z 0-9 _ . : -")
    if not is_label and name not in STRING_FIELDS and name not in NUMERIC_FIELDS:
        known = ", ".join([*STRING_FIELDS, *NUMERIC_FIELDS, "labels.<key>"])
        raise bad(f"unknown field {name!r}; filterable fields: {known}")
    test = clause.WhichOneof("test")
    if test is None:
        raise bad("set one of equals, any_of or range")
    if test == "range":
        return _parse_range(clause, name, is_label, bad)
    values = (clause.equals,) if test == "equals" else tuple(clause.any_of.values)
    if not values:
        raise bad("any_of needs at least one value")
    if len(values) > MAX_VALUES:
        raise bad(f"any_of has {len(values)} values; the limit is {MAX_VALUES}", "FILTER_TOO_LARGE")
    for value in values:
        if len(value) > MAX_VALUE_CHARS:
            raise bad(f"a value is longer than {MAX_VALUE_CHARS} characters", "FILTER_TOO_LARGE")
        if name in NUMERIC_FIELDS and _as_number(value) is None:
            raise bad(f"{name} is numeric; {value!r} is not a number")
        if name == "source" and value not in SOURCES:
            raise bad(f"source must be one of {list(SOURCES)}, not {value!r}")
    return Clause(name, test, values=values, negate=clause.negate)


def _parse_range(clause: common_pb2.FilterClause, name: str, is_label: bool, bad) -> Clause:
    if name not in NUMERIC_FIELDS and not is_label:
        raise bad(f"{name} is a string field; a range needs a numeric field or a label")
    bounds = clause.range
    low = bounds.min if bounds.HasField("min") else None
    high = bounds.max if bounds.HasField("max") else None
    if low is None and high is None:
        raise bad("range needs min, max or both")
    for bound in (low, high):
        if bound is not None and not math.isfinite(bound):
            raise bad("range bounds must be finite numbers")
    if low is not None and high is not None and low > high:
        raise bad(f"range min {low} is above max {high}")
    return Clause(
        name,
        "range",
        low=low,
        high=high,
        low_inclusive=not bounds.min_exclusive,
        high_inclusive=not bounds.max_exclusive,
        negate=clause.negate,
    )
