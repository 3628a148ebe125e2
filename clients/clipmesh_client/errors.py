"""The SDK's typed exceptions, raised to callers for failed calls (`clipmesh_client.wire`
decodes the status they are built from).

Match on the exception class (or `.reason`), never on message text: messages are for people
and may change; codes and reasons are the contract.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator
from typing import Any

import grpc

from clipmesh_client.status import QuotaViolation, decode_status


class ClipmeshError(Exception):
    """A clipmesh call failed.

    Attributes:
        code: The gRPC status code.
        message: The service's explanation (what was wrong and where).
        reason: The stable `ErrorInfo.reason` ("INVALID_ARGUMENT", "QUEUE_FULL", …), or "".
        domain: The `ErrorInfo.domain` ("encoder.clipmesh", …), or "".
        metadata: The `ErrorInfo.metadata` (for example the offending `field`).
        retry_after_s: The service's suggested wait before retrying, when it gave one.
    """

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        reason: str = "",
        domain: str = "",
        metadata: dict[str, str] | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.reason = reason
        self.domain = domain
        self.metadata = metadata or {}
        self.retry_after_s = retry_after_s

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


class InvalidArgumentError(ClipmeshError):
    """The request was malformed; `metadata["field"]` names the field when known."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFoundError(ClipmeshError):
    """A named resource does not exist."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(ClipmeshError):
    """A resource to create exists already."""

    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPreconditionError(ClipmeshError):
    """The system is not in a state the request needs."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class PermissionDeniedError(ClipmeshError):
    """The caller may not do this. When the policy refused it (reason `MISSING_PERMISSION`),
    `permission` names the role it lacks and `collection` where ("" for an unscoped role)."""

    code = grpc.StatusCode.PERMISSION_DENIED

    @property
    def permission(self) -> str:
        return self.metadata.get("permission", "")

    @property
    def collection(self) -> str:
        return self.metadata.get("collection", "")


class UnauthenticatedError(ClipmeshError):
    """Credentials are missing or invalid."""

    code = grpc.StatusCode.UNAUTHENTICATED


class ResourceExhaustedError(ClipmeshError):
    """A queue or quota is full; see `retry_after_s`."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class QuotaExceededError(ResourceExhaustedError):
    """One of the caller's quotas refused the call (the status carried a `QuotaFailure`).

    Attributes:
        quota_violations: The quotas exceeded (`clipmesh_client.status.QuotaViolation`).
    """

    def __init__(
        self, message: str, *, quota_violations: tuple[QuotaViolation, ...] = (), **fields: Any
    ) -> None:
        super().__init__(message, **fields)
        self.quota_violations = quota_violations

    @property
    def quota(self) -> str:
        """The quota exceeded: "provider_video_seconds_per_day", "concurrent_jobs" or
        "ingest_bytes_per_day"."""
        if "quota" in self.metadata:
            return self.metadata["quota"]
        return self.quota_violations[0].quota if self.quota_violations else ""

    @property
    def limit(self) -> float | None:
        return _number(self.metadata.get("limit"))

    @property
    def used(self) -> float | None:
        return _number(self.metadata.get("used"))

    @property
    def reset_time(self) -> datetime.datetime | None:
        """When a daily quota starts again from zero (UTC); None for one that does not reset
        (jobs at once: retry when one has ended)."""
        value = self.metadata.get("reset_time", "")
        if not value:
            return None
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class UnavailableError(ClipmeshError):
    """The service (or one it depends on) cannot be reached now."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceededError(ClipmeshError):
    """The call did not finish within its deadline."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class CancelledError(ClipmeshError):
    """The call was cancelled."""

    code = grpc.StatusCode.CANCELLED


class UnimplementedError(ClipmeshError):
    """The service does not offer this call."""

    code = grpc.StatusCode.UNIMPLEMENTED


class InternalError(ClipmeshError):
    """The service failed unexpectedly; its log has the details."""

    code = grpc.StatusCode.INTERNAL


_BY_CODE: dict[grpc.StatusCode, type[ClipmeshError]] = {
    cls.code: cls
    for cls in (
        InvalidArgumentError,
        NotFoundError,
        AlreadyExistsError,
        FailedPreconditionError,
        PermissionDeniedError,
        UnauthenticatedError,
        ResourceExhaustedError,
        UnavailableError,
        DeadlineExceededError,
        CancelledError,
        UnimplementedError,
        InternalError,
    )
}


def from_rpc_error(error: grpc.RpcError) -> ClipmeshError:
    """The typed error for a failed call, with its `ErrorInfo` and `RetryInfo` unpacked.

    Use as `raise from_rpc_error(exc) from exc` so the transport error stays chained.
    """
    details = decode_status(error)
    fields: dict[str, Any] = {
        "code": details.code,
        "reason": details.reason,
        "domain": details.domain,
        "metadata": details.metadata,
        "retry_after_s": details.retry_after_s,
    }
    if details.quota_violations:
        return QuotaExceededError(
            details.message, quota_violations=details.quota_violations, **fields
        )
    return _BY_CODE.get(details.code, ClipmeshError)(details.message, **fields)


LOCAL_DOMAIN = "client.clipmesh"
"""The `domain` of errors the SDK raises itself, before any call is made."""


def invalid_argument(message: str, *, field: str) -> InvalidArgumentError:
    """An `InvalidArgumentError` for a request the SDK refuses locally, naming its `field`."""
    return InvalidArgumentError(
        message, reason="INVALID_ARGUMENT", domain=LOCAL_DOMAIN, metadata={"field": field}
    )


@contextlib.contextmanager
def typed_errors() -> Iterator[None]:
    """Re-raises a `grpc.RpcError` raised inside the block as its typed error, chained."""
    try:
        yield
    except grpc.RpcError as exc:
        raise from_rpc_error(exc) from exc
