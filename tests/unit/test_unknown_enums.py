"""Requests carrying enum numbers their types do not define are found, with the field named:
top-level, repeated, nested in a message and in a repeated message; defined values, the
unset default and messages with no enum anywhere pass."""

from __future__ import annotations

from clipmesh.runtime.enums import first_unknown_enum
from clipmesh_api.encoder.v1 import encoder_pb2
from clipmesh_api.index.v1 import index_pb2


def test_a_top_level_enum_number_that_is_not_defined_is_named() -> None:
    request = encoder_pb2.EmbedImagesRequest(images=[b"x"], priority=99)
    found = first_unknown_enum(request)
    assert found is not None and found.field == "priority" and found.value == 99
    assert "PRIORITY_BATCH" in found.message() and found.enum in found.message()


def test_defined_values_and_the_default_pass() -> None:
    assert first_unknown_enum(encoder_pb2.EmbedImagesRequest(images=[b"x"])) is None
    batch = encoder_pb2.EmbedImagesRequest(images=[b"x"], priority=encoder_pb2.PRIORITY_BATCH)
    assert first_unknown_enum(batch) is None


def test_messages_without_enums_are_not_walked_and_pass() -> None:
    request = index_pb2.UpsertSegmentsRequest(collection="c")
    for number in range(100):
        request.videos.add().segments.add(start_s=number, vector=[0.0] * 4)
    assert first_unknown_enum(request) is None
