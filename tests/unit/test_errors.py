"""Domain errors become a google.rpc.Status with ErrorInfo that the SDK reads back."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from clipmesh.runtime.errors import (
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    escape_controls,
    trailing_metadata_for,
)
from clipmesh_client import errors as client_errors
from clipmesh_client.wire import STATUS_DETAILS_HEADER


class FakeRpcError(grpc.RpcError):
    """The shape of a failed call as the client sees it."""

    def __init__(self, code: grpc.StatusCode, details: str, trailing: tuple) -> None:
        self._code, self._details, self._trailing = code, details, trailing

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple:
        return self._trailing


def test_invalid_argument_carries_reason_domain_and_field() -> None:
    error = InvalidArgument(
        "images[2]: not a JPEG, PNG or WebP", field="images[2]", reason="BAD_IMAGE"
    )
    status = status_pb2.Status.FromString(
        dict(trailing_metadata_for(error, domain="encoder.clipmesh"))[STATUS_DETAILS_HEADER]
    )
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert (info.reason, info.domain, info.metadata["field"]) == (
        "BAD_IMAGE",
        "encoder.clipmesh",
        "images[2]",
    )


@pytest.mark.parametrize(
    ("error", "client_type"),
    [
        (InvalidArgument("bad top_k", field="top_k"), client_errors.InvalidArgumentError),
        (NotFound("no video v1"), client_errors.NotFoundError),
        (ResourceExhausted("queue full", retry_after_s=0.25), client_errors.ResourceExhaustedError),
    ],
)
def test_the_client_maps_status_to_typed_errors(error, client_type) -> None:
    trailing = trailing_metadata_for(error, domain="index.clipmesh")
    rpc_error = FakeRpcError(error.code, error.message, trailing)
    typed = client_errors.from_rpc_error(rpc_error)
    assert isinstance(typed, client_type)
    assert typed.code == error.code
    assert typed.reason == error.reason
    assert typed.domain == "index.clipmesh"
    assert typed.metadata == error.metadata


def test_retry_delay_reaches_the_client_and_the_pushback_header() -> None:
    error = ResourceExhausted("encoder queue full", retry_after_s=0.25, reason="QUEUE_FULL")
    trailing = trailing_metadata_for(error, domain="encoder.clipmesh")
    assert ("grpc-retry-pushback-ms", "250") in trailing
    typed = client_errors.from_rpc_error(FakeRpcError(error.code, error.message, trailing))
    assert typed.retry_after_s == pytest.approx(0.25)
    assert typed.reason == "QUEUE_FULL"


def test_a_plain_grpc_error_without_details_still_maps() -> None:
    typed = client_errors.from_rpc_error(FakeRpcError(grpc.StatusCode.UNAVAILABLE, "down", ()))
    assert isinstance(typed, client_errors.UnavailableError)
    assert typed.reason == ""


def test_status_details_key_is_the_grpc_standard() -> None:
    status = status_pb2.Status()
    status.ParseFromString(
        dict(trailing_metadata_for(NotFound("x"), domain="d"))[STATUS_DETAILS_HEADER]
    )
    assert status.message == "x"


def test_a_trailer_that_disagrees_with_the_call_keeps_the_calls_code_and_message() -> None:
    # A proxy that rewrites the status but forwards the trailer: grpc_status would raise
    # ValueError; the SDK keeps the call's own code and message instead.
    trailing = trailing_metadata_for(NotFound("no video v1"), domain="index.clipmesh")
    typed = client_errors.from_rpc_error(
        FakeRpcError(grpc.StatusCode.UNAVAILABLE, "upstream reset", trailing)
    )
    assert isinstance(typed, client_errors.UnavailableError)
    assert (typed.message, typed.reason) == ("upstream reset", "")


@pytest.mark.parametrize(
    ("quoted", "shown"),
    [
        ("clip\x1b[31m.mp4", "clip\\x1b[31m.mp4"),  # a terminal escape sequence
        ("a\nforged log line\r", "a\\nforged log line\\r"),
        ("nul\x00 del\x7f c1\x85", "nul\\x00 del\\x7f c1\\x85"),
        ("\u202egnp.exe \u2066x\u2069", "\\u202egnp.exe \\u2066x\\u2069"),  # bidi controls
        ("line\u2028sep", "line\\u2028sep"),
        ("海边 café 👨\u200d👩", "海边 café 👨\u200d👩"),  # letters, emoji joiners: as they are
    ],
)
def test_messages_and_metadata_carry_control_characters_escaped(quoted, shown) -> None:
    error = InvalidArgument(f"{quoted}: truncated", field="uri", metadata={"name": quoted})
    assert error.message == f"{shown}: truncated"
    assert error.metadata["name"] == shown
    assert escape_controls(quoted) == shown


def test_escaping_happens_before_the_length_bound() -> None:
    error = InvalidArgument("\x1b" * 5000)
    assert len(error.message) <= 512 and error.message.startswith("\\x1b\\x1b")
