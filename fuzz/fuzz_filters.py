"""Fuzzes the index's metadata filters: parsing, the Milvus expression, and evaluation.

Each input is a serialized `clipmesh.common.v1.MetadataFilter` (bytes protobuf cannot parse
are dropped: gRPC refuses them before any clipmesh code runs). `parse_filter` must return or
raise `InvalidArgument`; what it accepts must keep its documented limits (known fields, label
keys of 1-128 of `A-Za-z0-9_.:-`, at most `MAX_CLAUSES` clauses and `MAX_VALUES` values,
finite ranges with min <= max), must compile to a Milvus expression, and must evaluate on
any video's metadata without raising.
"""

from __future__ import annotations

import math
import re

import atheris
from google.protobuf.message import DecodeError

from fuzz.common import INSTRUMENTED, expect, fuzz

with atheris.instrument_imports(include=INSTRUMENTED):
    from clipmesh.index.filters import (
        MAX_CLAUSES,
        MAX_VALUES,
        NUMERIC_FIELDS,
        STRING_FIELDS,
        parse_filter,
    )
    from clipmesh.index.milvus_schema import compile_filter
    from clipmesh.index.records import VideoMeta
    from clipmesh.runtime.errors import InvalidArgument
    from clipmesh_api.common.v1 import common_pb2

LABEL_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
VIDEOS = (
    VideoMeta(video_id="plain"),
    VideoMeta(
        video_id="v1",
        uri="/media/a.mp4",
        title="雨中咖啡馆",
        duration_s=12.5,
        fps=29.97,
        width=1920,
        height=1080,
        size_bytes=1 << 31,
        source="ingested",
        create_time_s=1.7e9,
        content_sha256="ab" * 32,
        labels={"lang": "zh", "year": "2024", "score": "1e308", "nan": "nan", "inf": "-inf"},
    ),
)


def check(data: bytes) -> None:
    """Parses `data` as a filter and, if valid, compiles and evaluates it."""
    message = common_pb2.MetadataFilter()
    try:
        message.ParseFromString(data)
    except DecodeError:
        return
    video_filter = parse_filter(message)
    if video_filter is None:
        expect(not message.clauses, "clauses were dropped")
        return
    expect(len(video_filter.clauses) <= MAX_CLAUSES, "too many clauses accepted")
    for clause in video_filter.clauses:
        label = clause.field.removeprefix("labels.")
        expect(
            clause.field in STRING_FIELDS
            or clause.field in NUMERIC_FIELDS
            or (label != clause.field and LABEL_KEY.fullmatch(label) is not None),
            f"field {clause.field!r} accepted",
        )
        expect(len(clause.values) <= MAX_VALUES, "too many values accepted")
        if clause.kind == "range":
            bounds = [b for b in (clause.low, clause.high) if b is not None]
            expect(
                bool(bounds) and bounds == sorted(bounds) and all(map(math.isfinite, bounds)),
                f"range {bounds} accepted",
            )
    expect(isinstance(compile_filter(video_filter), str), "no expression")
    for video in VIDEOS:
        expect(isinstance(video_filter.matches(video), bool), "matches() is not a bool")


if __name__ == "__main__":
    fuzz(check, domain_errors=(InvalidArgument,))
