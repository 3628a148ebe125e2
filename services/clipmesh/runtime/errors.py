"""The services' domain errors and their one mapping to gRPC status.

Service code raises `ServiceError` subclasses; `ErrorInterceptor` turns each into its canonical
status code with a `google.rpc.Status` that carries an `ErrorInfo` (reason, domain, metadata),
a `RetryInfo` where a retry delay is known and a `QuotaFailure` where a quota refused the call
(`clipmesh_client.status.encode_status`). Anything else is logged with its traceback and
answered INTERNAL with a generic message. Callers read the details back with
`clipmesh_client.status.decode_status`: the SDK as its typed exceptions
(`clipmesh_client.errors.ClipmeshError`), the services' typed clients as these errors again
(`runtime/dependencies.py`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, ClassVar, NoReturn

import grpc
from google.protobuf.message import DecodeError
from opentelemetry import trace

from clipmesh.runtime.enums import first_unknown_enum
from clipmesh.runtime.handlers import Behavior, call_unary, iterate_stream, rewrap, split_method
from clipmesh_client.status import ErrorDetails, QuotaViolation, encode_status

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 512
MAX_METADATA_VALUE_CHARS = 256
"""Errors travel in the trailers, the message twice (`grpc-message`, percent-encoded, and the
status details), and gRPC drops trailers past 8–16 KiB: a message that echoes a 10 MB input
would reach the caller as a broken stream instead of its status."""


# Characters a message must not carry raw: C0 and C1 controls and DEL (a newline forges a log
# line, an escape sequence recolours or rewrites a terminal), the line and paragraph
# separators, and the bidirectional embeddings, overrides and isolates (which make a refusal
# display text other than what it says: "Trojan Source").
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def escape_controls(text: str) -> str:
    """`text` with every control and bidi-control character written as an escape (`\\x1b`,
    `\\u202e`): what a message quotes from the caller stays visible and harmless."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _shortened(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[: limit - 40]}… [{len(text):,} characters in all]"


class ServiceError(Exception):
    """Base of the errors a service raises; each subclass maps to one canonical status code.

    Args:
        message: What went wrong and where, for the caller (never secrets or user media).
        reason: A stable UPPER_SNAKE_CASE reason for `ErrorInfo`; defaults per class.
        metadata: Extra string facts for `ErrorInfo.metadata` (the bad field, a limit…).
    """

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL
    default_reason: ClassVar[str] = "INTERNAL"

    def __init__(
        self, message: str, *, reason: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> None:
        # Messages and metadata often quote the caller's input (a path, a field's value).
        message = _shortened(escape_controls(message), MAX_MESSAGE_CHARS)
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata = {
            k: _shortened(escape_controls(str(v)), MAX_METADATA_VALUE_CHARS)
            for k, v in (metadata or {}).items()
        }


class InvalidArgument(ServiceError):
    """The request is malformed; `field` names the offending field (e.g. `images[3]`)."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    default_reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        message: str,
        *,
        field: str = "",
        reason: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        merged = {**({"field": field} if field else {}), **(metadata or {})}
        super().__init__(message, reason=reason, metadata=merged)
        self.field = field


class NotFound(ServiceError):
    """A named resource does not exist."""

    code = grpc.StatusCode.NOT_FOUND
    default_reason = "NOT_FOUND"


class AlreadyExists(ServiceError):
    """A resource to create exists already."""

    code = grpc.StatusCode.ALREADY_EXISTS
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(ServiceError):
    """The system is not in a state the request needs (e.g. an idempotency key reused)."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = "FAILED_PRECONDITION"


class PermissionDenied(ServiceError):
    """The caller may not do this (e.g. a path outside the allowed roots)."""

    code = grpc.StatusCode.PERMISSION_DENIED
    default_reason = "PERMISSION_DENIED"


class Unauthenticated(ServiceError):
    """The caller's credentials are missing or invalid."""

    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = "UNAUTHENTICATED"


class ResourceExhausted(ServiceError):
    """A queue or quota is full; `retry_after_s` tells the caller when to come back, and
    `quota_violations` which of its quotas refused it (a `google.rpc.QuotaFailure`)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = "RESOURCE_EXHAUSTED"

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float | None = None,
        reason: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        quota_violations: tuple[QuotaViolation, ...] = (),
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.retry_after_s = retry_after_s
        self.quota_violations = quota_violations


class Unavailable(ServiceError):
    """A dependency cannot be reached right now; retrying later may work."""

    code = grpc.StatusCode.UNAVAILABLE
    default_reason = "UNAVAILABLE"


class DeadlineExceeded(ServiceError):
    """The work could not finish within the caller's deadline or budget."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED
    default_reason = "DEADLINE_EXCEEDED"


class Aborted(ServiceError):
    """A concurrency conflict; the caller may retry the whole operation."""

    code = grpc.StatusCode.ABORTED
    default_reason = "ABORTED"


class Unimplemented(ServiceError):
    """The RPC or option is not available in this deployment."""

    code = grpc.StatusCode.UNIMPLEMENTED
    default_reason = "UNIMPLEMENTED"


class RelayedError(ServiceError):
    """Another service's refusal, passed on unchanged: its code, message, reason, domain, retry
    hint and quota violations (a front door relaying a call, as the public GeneratorService)."""

    def __init__(self, details: ErrorDetails) -> None:
        super().__init__(details.message, reason=details.reason, metadata=details.metadata)
        self.code = details.code  # type: ignore[misc] - this error's own, not its class's
        self.domain = details.domain
        self.retry_after_s = details.retry_after_s
        self.quota_violations = details.quota_violations


def error_details(error: ServiceError, *, domain: str) -> ErrorDetails:
    """What the caller is told of `error`, in the wire's terms."""
    return ErrorDetails(
        code=error.code,
        message=error.message,
        reason=error.reason,
        domain=getattr(error, "domain", "") or domain,
        metadata=error.metadata,
        retry_after_s=getattr(error, "retry_after_s", None),
        quota_violations=getattr(error, "quota_violations", ()),
    )


def trailing_metadata_for(error: ServiceError, *, domain: str) -> tuple[tuple[str, Any], ...]:
    """Trailing metadata carrying the rich status (and a retry pushback hint when known)."""
    return encode_status(error_details(error, domain=domain))


class _Malformed:
    """Stands in for a request whose bytes do not parse, so the RPC refuses it like any other bad
    input; left to gRPC, it would be answered UNKNOWN, naming the parser's exception."""

    def __init__(self, error: InvalidArgument) -> None:
        self.error = error


def _parse_or_mark(deserializer: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """`deserializer`, returning a `_Malformed` where it would raise `DecodeError` or the
    request holds an undefined enum number."""
    message_class = getattr(deserializer, "__self__", None)  # FromString's class
    name = getattr(getattr(message_class, "DESCRIPTOR", None), "full_name", "request message")

    def parse(data: bytes) -> Any:
        try:
            request = deserializer(data)
        except DecodeError:
            return _Malformed(
                InvalidArgument(
                    f"the request is not a valid {name}: its bytes do not parse (a string "
                    "that is not UTF-8, nesting deeper than 100, or a field cut short)",
                    reason="MALFORMED_REQUEST",
                )
            )
        unknown = first_unknown_enum(request)
        if unknown is not None:
            return _Malformed(
                InvalidArgument(unknown.message(), field=unknown.field, reason="UNKNOWN_ENUM_VALUE")
            )
        return request

    return parse


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Maps exceptions escaping a servicer to status codes, once, for every RPC.

    A request that does not parse is refused as INVALID_ARGUMENT (`MALFORMED_REQUEST`), and so
    is one carrying an enum number its type does not define (`UNKNOWN_ENUM_VALUE`, naming the
    field: runtime/enums.py).

    Args:
        domain: The `ErrorInfo.domain` of this service (e.g. "encoder.clipmesh").
    """

    def __init__(self, domain: str) -> None:
        self._domain = domain

    async def intercept_service(self, continuation, handler_call_details):  # type: ignore[override]
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method

        def wrap_unary(behavior: Behavior):
            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                try:
                    if isinstance(request, _Malformed):
                        raise request.error
                    return await call_unary(behavior, request, context)
                except Exception as exc:
                    await self._abort(exc, context, method)

            return unary

        def wrap_stream(behavior: Behavior):
            async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                try:
                    if isinstance(request, _Malformed):
                        raise request.error
                    async for response in iterate_stream(behavior, request, context):
                        yield response
                except Exception as exc:
                    await self._abort(exc, context, method)

            return stream

        deserializer = handler.request_deserializer
        if handler.request_streaming or deserializer is None:
            return rewrap(handler, wrap_unary, wrap_stream)
        return rewrap(
            handler, wrap_unary, wrap_stream, request_deserializer=_parse_or_mark(deserializer)
        )

    async def _abort(
        self, exc: Exception, context: grpc.aio.ServicerContext, method: str
    ) -> NoReturn:
        if isinstance(exc, grpc.aio.AbortError | asyncio.CancelledError):
            raise exc
        if isinstance(exc, ServiceError):
            error = exc
        elif isinstance(exc, NotImplementedError):
            service, name = split_method(method)
            error = Unimplemented(f"{service}.{name} is not implemented in this release")
        else:
            trace_id = format(trace.get_current_span().get_span_context().trace_id, "032x")
            log.exception("unhandled error in %s", method, extra={"rpc": method})
            error = ServiceError(
                f"internal error (trace {trace_id}); details are in the service log"
            )
        if error.code != grpc.StatusCode.INTERNAL:
            log.info(
                "rpc refused",
                extra={
                    "rpc": method,
                    "code": error.code.name,
                    "reason": error.reason,
                    "error_message": error.message,
                },
            )
        await context.abort(
            error.code,
            error.message,
            trailing_metadata=trailing_metadata_for(error, domain=self._domain),
        )
        raise AssertionError("unreachable: context.abort raises")  # pragma: no cover
