"""Metadata filters compiled to Milvus boolean expressions, evaluated on segment rows.

Each segment row carries its video's metadata (see docs/milvus.md), so a filter runs inside
Milvus, before the vector search picks its candidates. The expression means exactly what
`VideoFilter.matches` means:
- Numeric metadata is stored as DOUBLE and compared with float literals, as `filters.py`
  compares every numeric field as a float (Milvus has had bugs comparing mixed int and float).
- Labels are strings in the JSON field `labels`; those that read as finite numbers are also in
  the JSON field `label_numbers`, because a Milvus expression cannot cast a string to a number.
- A label a video lacks is a missing JSON key, which Milvus treats as null, and `not null` is
  null: a negated label test would drop the video where the filter keeps it. Every label test
  is therefore guarded with `exists`, which is plainly false for a missing key.
"""

from __future__ import annotations

import math

from clipmesh.index.filters import NUMERIC_FIELDS, Clause, VideoFilter

_LABEL = "labels."
_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def compile_filter(video_filter: VideoFilter | None) -> str:
    """The Milvus expression selecting rows whose video passes `video_filter` ("" for all)."""
    if video_filter is None:
        return ""
    return " and ".join(f"({_clause(clause)})" for clause in video_filter.clauses)


def member_of(field: str, values: list[str]) -> str:
    """`field in [...]` for string values."""
    return f"{field} in [{', '.join(_string(v) for v in values)}]"


def label_numbers(labels: dict[str, str]) -> dict[str, float]:
    """The labels a range can test: those whose value reads as a finite number."""
    numbers = {}
    for key, value in labels.items():
        try:
            number = float(value)
        except ValueError:
            continue
        if math.isfinite(number):
            numbers[key] = number
    return numbers


def _clause(clause: Clause) -> str:
    test = _range(clause) if clause.kind == "range" else _membership(clause)
    return f"not ({test})" if clause.negate else test


def _membership(clause: Clause) -> str:
    if clause.field.startswith(_LABEL):
        label = f"labels[{_string(clause.field[len(_LABEL) :])}]"
        # Milvus has no `in` on a JSON path everywhere (milvus-lite refuses it): spell it out.
        options = " or ".join(f"{label} == {_string(v)}" for v in clause.values)
        return f"exists {label} and ({options})"
    if clause.numeric:
        literals = ", ".join(_number(float(v)) for v in clause.values)
        return f"{NUMERIC_FIELDS[clause.field]} in [{literals}]"
    return member_of(clause.field, list(clause.values))


def _range(clause: Clause) -> str:
    if clause.field.startswith(_LABEL):
        column = f"label_numbers[{_string(clause.field[len(_LABEL) :])}]"
        tests = [f"exists {column}"]
    else:
        column = NUMERIC_FIELDS[clause.field]
        tests = []
    if clause.low is not None:
        tests.append(f"{column} {'>=' if clause.low_inclusive else '>'} {_number(clause.low)}")
    if clause.high is not None:
        tests.append(f"{column} {'<=' if clause.high_inclusive else '<'} {_number(clause.high)}")
    return " and ".join(tests)


def _string(value: str) -> str:
    """A double-quoted literal with the escapes both Milvus and milvus-lite read."""
    return f'"{value.translate(_ESCAPES)}"'


def _number(value: float) -> str:
    # repr() is the shortest text that reads back as the same double (e.g. 1.5, 1e+20).
    return repr(value)
