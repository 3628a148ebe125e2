"""Metadata filters for `search` and `list_videos`, without touching protobufs.

Each function returns a `MetadataFilter`; `all_of` joins them (every clause must hold):

    all_of(equals("source", "generated"), between("duration_s", min=5, max=60),
           not_(any_of("labels.project", ["old", "test"])))

Fields: `video_id`, `uri`, `title`, `source` ("ingested" | "generated"), `duration_s`, `fps`,
`width`, `height`, `size_bytes`, `create_time` (Unix seconds, or pass datetimes), and
`labels.<key>` for free metadata.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from clipmesh_api.common.v1 import common_pb2
from clipmesh_client.errors import invalid_argument

Value = str | int | float | datetime
"""A value to compare with; numbers compare by value, datetimes as Unix seconds."""


def equals(field: str, value: Value) -> common_pb2.MetadataFilter:
    """Videos whose `field` equals `value`."""
    return _single(common_pb2.FilterClause(field=_field(field), equals=_text(field, value)))


def any_of(field: str, values: Iterable[Value]) -> common_pb2.MetadataFilter:
    """Videos whose `field` equals one of `values`."""
    if isinstance(values, str):
        raise invalid_argument(
            f"any_of({field!r}): pass a list of values, not a string", field=field
        )
    texts = [_text(field, v) for v in values]
    if not texts:
        raise invalid_argument(f"any_of({field!r}) needs at least one value", field=field)
    return _single(
        common_pb2.FilterClause(field=_field(field), any_of=common_pb2.StringList(values=texts))
    )


def between(
    field: str,
    min: float | datetime | None = None,
    max: float | datetime | None = None,
    *,
    min_exclusive: bool = False,
    max_exclusive: bool = False,
) -> common_pb2.MetadataFilter:
    """Videos whose `field`, read as a number, lies in [min, max]; a missing bound is open."""
    if min is None and max is None:
        raise invalid_argument(f"between({field!r}) needs min, max or both", field=field)
    numeric = common_pb2.NumericRange(min_exclusive=min_exclusive, max_exclusive=max_exclusive)
    if min is not None:
        numeric.min = _number(field, min)
    if max is not None:
        numeric.max = _number(field, max)
    return _single(common_pb2.FilterClause(field=_field(field), range=numeric))


def not_(condition: common_pb2.MetadataFilter) -> common_pb2.MetadataFilter:
    """The opposite of a one-clause filter (from `equals`, `any_of` or `between`)."""
    if len(condition.clauses) != 1:
        # not (A and B) is (not A) or (not B): the API has no OR across fields.
        raise invalid_argument("not_() takes a filter of exactly one clause", field="filter")
    negated = common_pb2.MetadataFilter()
    negated.CopyFrom(condition)
    negated.clauses[0].negate = not negated.clauses[0].negate
    return negated


def all_of(*conditions: common_pb2.MetadataFilter) -> common_pb2.MetadataFilter:
    """Videos passing every one of `conditions`."""
    joined = common_pb2.MetadataFilter()
    for condition in conditions:
        joined.clauses.extend(condition.clauses)
    return joined


def _single(clause: common_pb2.FilterClause) -> common_pb2.MetadataFilter:
    return common_pb2.MetadataFilter(clauses=[clause])


def _field(field: str) -> str:
    if not field.strip():
        raise invalid_argument("a filter needs a field name", field="filter")
    return field


def _number(field: str, value: float | datetime) -> float:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise invalid_argument(
                f"{field}: use a timezone-aware datetime (naive ones are ambiguous)", field=field
            )
        return value.timestamp()
    return float(value)


def _text(field: str, value: Value) -> str:
    if isinstance(value, datetime):
        return repr(_number(field, value))
    return str(value)
