"""Bearer-token authentication of the public API, in one server interceptor.

With `auth_tokens_file` set, every RPC but health checks and reflection must carry
`authorization: Bearer <token>` metadata naming a token of that file; anything else is refused
UNAUTHENTICATED before the servicer runs. The file holds one caller a line:

    # caller:sha256:<hex digest of the token>   (recommended: no token sits on disk)
    search-ui:sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    # caller:<token>                            (accepted, for development)
    alice:correct-horse-battery-staple

Make the digest with `printf %s "$TOKEN" | sha256sum`. Presented tokens are hashed and compared
with `hmac.compare_digest` against every entry. The file is re-read when it changes (checked
at most once a second), so tokens are added and revoked without a restart; a changed file that
does not parse is logged and the previous tokens stay in force.

An authenticated call runs with its caller as the current identity (`runtime.identity`): log
lines of the call carry `caller`, one `rpc handled` line per call is the audit trail, its span
gets `enduser.id`, and it is counted in `clipmesh_caller_requests_total`, whose `caller` label
only ever holds names from the file.
The interceptor sits inside the metrics interceptor and outside the error interceptor, so a
refusal is counted like any other UNAUTHENTICATED answer and the per-caller count sees the
status code clients get.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import grpc
from opentelemetry import trace
from prometheus_client import Counter

from clipmesh.runtime.config import ConfigError, ServiceConfig
from clipmesh.runtime.errors import Unauthenticated, trailing_metadata_for
from clipmesh.runtime.handlers import Behavior, call_unary, iterate_stream, rewrap, split_method
from clipmesh.runtime.identity import CALLER_NAME, SPAN_ATTRIBUTE, acting_for
from clipmesh.runtime.metrics import code_of
from clipmesh.runtime.reflection import HEALTH_AND_REFLECTION
from clipmesh.runtime.watched import WatchedFile
from clipmesh_client.wire import AUTHORIZATION_HEADER

log = logging.getLogger(__name__)

DIGEST_PREFIX = "sha256:"
# Services anyone may call: probes and load balancers carry no token, and reflection only
# lists service names.
EXEMPT_SERVICES = HEALTH_AND_REFLECTION
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
_BEARER = re.compile(r"bearer\s+(\S+)", re.IGNORECASE)

CALLER_REQUESTS = Counter(
    "clipmesh_caller_requests_total",
    "RPCs of authenticated callers by final status code (callers come from the tokens file).",
    ("caller", "grpc_service", "grpc_method", "grpc_code"),
)


def token_digest(token: str) -> str:
    """The `sha256:<hex>` form of `token` for the tokens file."""
    return DIGEST_PREFIX + hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenEntry:
    """One line of the tokens file: a caller and the SHA-256 digest of its token."""

    caller: str
    digest: bytes


def parse_tokens(text: str, source: str) -> tuple[TokenEntry, ...]:
    """Parses a tokens file; errors name the line, never the token.

    Raises:
        ConfigError: A line is malformed, a token is listed twice, or there is no token.
    """
    entries: dict[bytes, TokenEntry] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        caller, _, secret = line.partition(":")
        where = f"{source}:{number}"
        if not CALLER_NAME.fullmatch(caller) or not secret:
            raise ConfigError(
                f"{where}: expected `caller:sha256:<hex>` or `caller:<token>`, where caller is "
                "1-64 letters, digits or ._@/+-"
            )
        entry = TokenEntry(caller, _digest_of(secret, where))
        if entry.digest in entries:
            raise ConfigError(f"{where}: the same token is listed twice")
        entries[entry.digest] = entry
    if not entries:
        raise ConfigError(f"{source}: no tokens (every call would be refused)")
    return tuple(entries.values())


def _digest_of(secret: str, where: str) -> bytes:
    if not secret.startswith(DIGEST_PREFIX):
        return hashlib.sha256(secret.encode()).digest()
    hex_digest = secret.removeprefix(DIGEST_PREFIX)
    if not _HEX_DIGEST.fullmatch(hex_digest):
        raise ConfigError(f"{where}: a sha256 digest is 64 hexadecimal characters")
    return bytes.fromhex(hex_digest)


class TokenFile:
    """The accepted tokens, re-read from their file when it changes.

    Args:
        path: The tokens file.
        setting: The setting that named it, for error messages.
        check_interval_s: Least time between two looks at the file's modification time.
    """

    def __init__(self, path: Path, setting: str, *, check_interval_s: float = 1.0) -> None:
        self._file = WatchedFile(
            path, setting, parse_tokens, what="tokens file", check_interval_s=check_interval_s
        )

    @property
    def callers(self) -> tuple[str, ...]:
        """The caller names currently accepted."""
        return tuple(sorted({entry.caller for entry in self._file.current()}))

    def identify(self, token: str) -> str | None:
        """The caller whose token `token` is, or None."""
        digest = hashlib.sha256(token.encode()).digest()
        caller = None
        for entry in self._file.current():  # every entry, so the time taken says nothing
            if hmac.compare_digest(entry.digest, digest):
                caller = entry.caller
        return caller


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls without a valid bearer token; runs the others as their caller.

    Args:
        tokens: The accepted tokens.
        domain: The `ErrorInfo.domain` of refusals (e.g. "orchestrator.clipmesh").
    """

    def __init__(self, tokens: TokenFile, domain: str) -> None:
        self._tokens = tokens
        self._domain = domain

    async def intercept_service(self, continuation, handler_call_details):  # type: ignore[override]
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        service, method = split_method(handler_call_details.method)
        if service in EXEMPT_SERVICES:
            return handler
        outcome = self._authenticate(handler_call_details.invocation_metadata or ())
        rpc = handler_call_details.method

        def wrap_unary(behavior: Behavior):
            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                caller = await self._caller_or_refuse(outcome, context, rpc)
                started_at = time.perf_counter()
                with acting_for(caller):
                    trace.get_current_span().set_attribute(SPAN_ATTRIBUTE, caller)
                    try:
                        response = await call_unary(behavior, request, context)
                    except BaseException as exc:
                        _account(caller, service, method, code_of(exc, context), started_at)
                        raise
                    _account(caller, service, method, _ok(context), started_at)
                return response

            return unary

        def wrap_stream(behavior: Behavior):
            async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                caller = await self._caller_or_refuse(outcome, context, rpc)
                started_at = time.perf_counter()
                with acting_for(caller):
                    trace.get_current_span().set_attribute(SPAN_ATTRIBUTE, caller)
                    try:
                        async for response in iterate_stream(behavior, request, context):
                            yield response
                    except BaseException as exc:
                        _account(caller, service, method, code_of(exc, context), started_at)
                        raise
                    _account(caller, service, method, _ok(context), started_at)

            return stream

        return rewrap(handler, wrap_unary, wrap_stream)

    def _authenticate(self, metadata: Sequence[tuple[str, Any]]) -> str | Unauthenticated:
        """The caller the metadata proves, or the refusal to answer with."""
        values = [v for k, v in metadata if k == AUTHORIZATION_HEADER]
        if not values:
            return Unauthenticated(
                f"this API needs `{AUTHORIZATION_HEADER}: Bearer <token>` metadata",
                reason="MISSING_TOKEN",
                metadata={"header": AUTHORIZATION_HEADER},
            )
        match = _BEARER.fullmatch(str(values[0]).strip()) if len(values) == 1 else None
        if match is None:
            return Unauthenticated(
                f"the `{AUTHORIZATION_HEADER}` metadata must be one `Bearer <token>`",
                reason="MALFORMED_TOKEN",
                metadata={"header": AUTHORIZATION_HEADER},
            )
        caller = self._tokens.identify(match.group(1))
        if caller is None:
            return Unauthenticated(
                f"the bearer token in `{AUTHORIZATION_HEADER}` is not valid",
                reason="INVALID_TOKEN",
                metadata={"header": AUTHORIZATION_HEADER},
            )
        return caller

    async def _caller_or_refuse(
        self, outcome: str | Unauthenticated, context: grpc.aio.ServicerContext, rpc: str
    ) -> str:
        if isinstance(outcome, str):
            return outcome
        await self._refuse(outcome, context, rpc)

    async def _refuse(
        self, error: Unauthenticated, context: grpc.aio.ServicerContext, rpc: str
    ) -> NoReturn:
        log.info(
            "rpc refused",
            extra={
                "rpc": rpc,
                "code": error.code.name,
                "reason": error.reason,
                "peer": context.peer(),
            },
        )
        await context.abort(
            error.code,
            error.message,
            trailing_metadata=trailing_metadata_for(error, domain=self._domain),
        )
        raise AssertionError("unreachable: context.abort raises")  # pragma: no cover


def _ok(context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    return context.code() or grpc.StatusCode.OK


def _account(
    caller: str, service: str, method: str, code: grpc.StatusCode, started_at: float
) -> None:
    """Counts the call for its caller and writes its audit line."""
    CALLER_REQUESTS.labels(caller, service, method, code.name).inc()
    log.info(
        "rpc handled",
        extra={
            "rpc": f"/{service}/{method}",
            "code": code.name,
            "duration_ms": round((time.perf_counter() - started_at) * 1000, 1),
        },
    )


def auth_interceptors(config: ServiceConfig, domain: str) -> list[grpc.aio.ServerInterceptor]:
    """The auth interceptor when `auth_tokens_file` is set, else none; says which at start.

    Raises:
        ConfigError: The tokens file cannot be read or parsed (the message names it).
    """
    if not config.auth_tokens_file:
        if not config.tls_client_auth:
            log.warning(
                "auth off: any caller that reaches this port is served; set %s to require "
                "bearer tokens",
                config.env_name("auth_tokens_file"),
            )
        return []
    tokens = TokenFile(Path(config.auth_tokens_file), config.env_name("auth_tokens_file"))
    log.info("token auth on", extra={"callers": len(tokens.callers)})
    return [AuthInterceptor(tokens, domain)]
