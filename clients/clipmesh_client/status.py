"""How an error travels: the rich status of a failed call, written and read in one place.

A failed call carries a `google.rpc.Status` in `grpc-status-details-bin` with an `ErrorInfo` (a
stable reason, the service's domain, metadata such as the offending `field`), a `RetryInfo`
where the service knows when to come back, and a `QuotaFailure` when a quota refused it.
`encode_status` writes those trailers on the server side, `decode_status` reads them on the
client side; the services' domain errors and the SDK's typed exceptions are built on these two
functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from clipmesh_client.wire import RETRY_PUSHBACK_HEADER, STATUS_DETAILS_HEADER


@dataclass(frozen=True)
class QuotaViolation:
    """One quota a refused call would have exceeded (a `google.rpc.QuotaFailure` violation).

    Attributes:
        subject: Whose quota: "caller:<name>".
        quota: The quota's name ("provider_video_seconds_per_day", "concurrent_jobs",
            "ingest_bytes_per_day"), the violation's `quota_id`.
        description: What was exceeded, for people.
        limit: The limit, the violation's `quota_value`.
    """

    subject: str
    quota: str
    description: str
    limit: int = 0


@dataclass(frozen=True)
class ErrorDetails:
    """What a failed call said about itself.

    Attributes:
        code: The gRPC status code.
        message: The service's explanation, for people.
        reason: The stable `ErrorInfo.reason` ("INVALID_ARGUMENT", "QUEUE_FULL", …), or "".
        domain: The `ErrorInfo.domain` ("encoder.clipmesh", …), or "".
        metadata: The `ErrorInfo.metadata` (for example the offending `field`).
        retry_after_s: The `RetryInfo` delay, when the service gave one.
        quota_violations: The `QuotaFailure` violations, when a quota refused the call.
    """

    code: grpc.StatusCode
    message: str
    reason: str = ""
    domain: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    retry_after_s: float | None = None
    quota_violations: tuple[QuotaViolation, ...] = ()


def encode_status(details: ErrorDetails) -> tuple[tuple[str, bytes | str], ...]:
    """The trailing metadata of a failed call: the rich status and, with a retry delay, the
    pushback hint gRPC's own retries read."""
    info = any_pb2.Any()
    info.Pack(
        error_details_pb2.ErrorInfo(
            reason=details.reason, domain=details.domain, metadata=details.metadata
        )
    )
    status = status_pb2.Status(code=details.code.value[0], message=details.message, details=[info])
    entries: list[tuple[str, bytes | str]] = []
    if details.retry_after_s is not None:
        retry = any_pb2.Any()
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(int(details.retry_after_s * 1000))
        retry.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        status.details.append(retry)
        entries.append((RETRY_PUSHBACK_HEADER, str(int(details.retry_after_s * 1000))))
    if details.quota_violations:
        failure = any_pb2.Any()
        failure.Pack(
            error_details_pb2.QuotaFailure(
                violations=[
                    error_details_pb2.QuotaFailure.Violation(
                        subject=v.subject,
                        description=v.description,
                        quota_id=v.quota,
                        quota_value=v.limit,
                    )
                    for v in details.quota_violations
                ]
            )
        )
        status.details.append(failure)
    return ((STATUS_DETAILS_HEADER, status.SerializeToString()), *entries)


def decode_status(error: grpc.RpcError) -> ErrorDetails:
    """The details of a failed call, from its code, message and rich status trailer."""
    code = error.code()  # type: ignore[attr-defined]
    message = error.details() or code.name  # type: ignore[attr-defined]
    try:
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
    except ValueError:
        # The trailer's status disagrees with the call's own code or message (a proxy
        # rewrote one of them): keep the call's code and message, drop the details.
        status = None
    reason, domain, metadata, retry_after_s = "", "", {}, None
    violations: list[QuotaViolation] = []
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, domain, metadata = info.reason, info.domain, dict(info.metadata)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            retry_after_s = retry.retry_delay.ToMilliseconds() / 1000
        elif detail.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
            failure = error_details_pb2.QuotaFailure()
            detail.Unpack(failure)
            violations += [
                QuotaViolation(v.subject, v.quota_id, v.description, v.quota_value)
                for v in failure.violations
            ]
    return ErrorDetails(code, message, reason, domain, metadata, retry_after_s, tuple(violations))
