"""How a clipmesh collection lies in Milvus: schemas, rows, and filters as Milvus expressions.

Two Milvus collections per clipmesh collection (docs/milvus.md draws them):
- segments: one row per segment, auto-id, with its times, thumbnail and vector, and its video's
  metadata copied on so that a filter runs inside Milvus, before the vector search picks its
  candidates;
- videos: one row per video, keyed by video_id, naming the generation of segment rows that is
  current, with the metadata and segment count.

Filters compile to expressions that mean exactly what `VideoFilter.matches` means:
- Numeric metadata is stored as DOUBLE and compared with float literals, as `filters.py`
  compares every numeric field as a float (Milvus has had bugs comparing mixed int and float).
- Labels are strings in the JSON field `labels`; those that read as finite numbers are also in
  the JSON field `label_numbers`, because a Milvus expression cannot cast a string to a number.
- A label a video lacks is a missing JSON key, which Milvus treats as null, and `not null` is
  null: a negated label test would drop the video where the filter keeps it. Every label test
  is therefore guarded with `exists`, which is plainly false for a missing key.
"""

from __future__ import annotations

import json
import math

import numpy as np
from pymilvus import CollectionSchema, DataType, MilvusClient

from clipmesh.index.filters import NUMERIC_FIELDS, Clause, VideoFilter
from clipmesh.index.records import Segments, VideoMeta, VideoWrite
from clipmesh.runtime.errors import InvalidArgument

MAX_VARCHAR_BYTES = 65_535  # Milvus's limit for a VARCHAR (and for a JSON value)
_TEXT_FIELDS = ("uri", "title", "source", "content_sha256")
_NUMBER_FIELDS = ("duration_s", "fps", "width", "height", "size_bytes", "create_time_s")
VIDEO_FIELDS = ["video_id", "generation", "segment_count", *_TEXT_FIELDS, *_NUMBER_FIELDS, "labels"]
SEGMENT_FIELDS = ["video_id", "generation", "start_s", "end_s", "keyframe_s", "thumbnail", "vector"]
_LABEL = "labels."
_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})

# -- schemas ------------------------------------------------------------------------------


def segments_schema(dimension: int) -> CollectionSchema:
    """The segments collection: searched by `vector`, filtered on the copied metadata."""
    schema = MilvusClient.create_schema(auto_id=True, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("video_id", DataType.VARCHAR, max_length=MAX_VARCHAR_BYTES)
    for name in ("start_s", "end_s", "keyframe_s"):
        schema.add_field(name, DataType.DOUBLE)
    schema.add_field("thumbnail", DataType.VARCHAR, max_length=MAX_VARCHAR_BYTES)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
    return _add_metadata(schema)


def videos_schema(dimension: int) -> CollectionSchema:
    """The videos collection: one row per video, the current generation of its segments."""
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("video_id", DataType.VARCHAR, max_length=MAX_VARCHAR_BYTES, is_primary=True)
    schema.add_field("segment_count", DataType.INT64)
    # Milvus wants a vector field in every collection; the mean of the segments' vectors is
    # the one worth having (similar-video lookups).
    schema.add_field("centroid", DataType.FLOAT_VECTOR, dim=dimension)
    return _add_metadata(schema)


def _add_metadata(schema: CollectionSchema) -> CollectionSchema:
    schema.add_field("generation", DataType.INT64)
    for name in _TEXT_FIELDS:
        schema.add_field(name, DataType.VARCHAR, max_length=MAX_VARCHAR_BYTES)
    for name in _NUMBER_FIELDS:
        schema.add_field(name, DataType.DOUBLE)
    schema.add_field("labels", DataType.JSON)
    schema.add_field("label_numbers", DataType.JSON)
    return schema


# -- rows ---------------------------------------------------------------------------------


def check_sizes(write: VideoWrite, where: str) -> None:
    """Refuses values longer than Milvus stores, naming the field (`where` is `videos[i]`)."""
    meta = write.meta
    texts = {f"{where}.video.{name}": getattr(meta, name) for name in _TEXT_FIELDS}
    texts[f"{where}.video.labels"] = json.dumps(meta.labels, ensure_ascii=False)
    texts.update(
        (f"{where}.segments[{i}].thumbnail_uri", t) for i, t in enumerate(write.segments.thumbnails)
    )
    for field, text in texts.items():
        if len(text.encode()) > MAX_VARCHAR_BYTES:
            raise InvalidArgument(
                f"{field} is longer than Milvus stores ({MAX_VARCHAR_BYTES} bytes)",
                field=field,
                reason="VALUE_TOO_LONG",
            )


def segment_rows(write: VideoWrite, generation: int) -> list[dict]:
    """The segments collection's rows for one video."""
    meta = _meta_row(write.meta, generation)
    s = write.segments
    return [
        {
            **meta,
            "start_s": float(s.start_s[i]),
            "end_s": float(s.end_s[i]),
            "keyframe_s": float(s.keyframe_s[i]),
            "thumbnail": s.thumbnails[i],
            "vector": s.vectors[i].tolist(),
        }
        for i in range(len(s))
    ]


def video_row(write: VideoWrite, generation: int, dimension: int) -> dict:
    """The videos collection's row for one video."""
    vectors = write.segments.vectors
    centroid = vectors.mean(axis=0) if len(vectors) else np.zeros(dimension, np.float32)
    norm = float(np.linalg.norm(centroid))
    return {
        **_meta_row(write.meta, generation),
        "segment_count": len(write.segments),
        "centroid": (centroid / norm if norm else centroid).tolist(),
    }


def _meta_row(meta: VideoMeta, generation: int) -> dict:
    row = {"video_id": meta.video_id, "generation": generation}
    row.update({name: getattr(meta, name) for name in _TEXT_FIELDS})
    row.update({name: float(getattr(meta, name)) for name in _NUMBER_FIELDS})
    row.update(labels=dict(meta.labels), label_numbers=_label_numbers(meta.labels))
    return row


def meta_from(row: dict) -> VideoMeta:
    """A video's metadata from its row (of `VIDEO_FIELDS`)."""
    return VideoMeta(
        video_id=row["video_id"],
        **{name: row[name] for name in _TEXT_FIELDS},
        duration_s=row["duration_s"],
        fps=row["fps"],
        width=int(row["width"]),
        height=int(row["height"]),
        size_bytes=int(row["size_bytes"]),
        create_time_s=row["create_time_s"],
        labels=dict(row["labels"]),
    )


def segments_from(rows: list[dict]) -> Segments:
    """One video's segments from its rows (of `SEGMENT_FIELDS`), in any order."""

    def column(name: str) -> np.ndarray:
        return np.array([r[name] for r in rows], dtype=np.float64)

    return Segments(
        column("start_s"),
        column("end_s"),
        column("keyframe_s"),
        np.array([r["vector"] for r in rows], dtype=np.float32),
        tuple(r["thumbnail"] for r in rows),
    )


def _label_numbers(labels: dict[str, str]) -> dict[str, float]:
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


# -- filter expressions -------------------------------------------------------------------


def compile_filter(video_filter: VideoFilter | None) -> str:
    """The expression selecting rows whose video passes `video_filter` ("" for all)."""
    if video_filter is None:
        return ""
    return " and ".join(f"({_clause(clause)})" for clause in video_filter.clauses)


def member_of(field: str, values: list[str]) -> str:
    """`field in [...]` for string values."""
    return f"{field} in [{', '.join(_string(v) for v in values)}]"


def _clause(clause: Clause) -> str:
    test = _range(clause) if clause.kind == "range" else _membership(clause)
    return f"not ({test})" if clause.negate else test


def _membership(clause: Clause) -> str:
    if clause.field.startswith(_LABEL):
        label = f"labels[{_string(clause.field[len(_LABEL) :])}]"
        # milvus-lite has no `in` on a JSON path: spell the set out.
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
