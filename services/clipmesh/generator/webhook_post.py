"""One webhook delivery attempt: a signed event POSTed to a checked URL, over a guarded connection.

The outbox and its retry loop decide when to try; this module makes one attempt and says how it
went: delivered, worth retrying, or not. A URL passed `webhook_urls.check_webhook_url` when the
job was submitted, but what its host resolves to can change by delivery time (DNS rebinding), so
every connection goes through `GuardedNetworkBackend`: it resolves the host itself, refuses the
host when any answer is not an allowed address, and connects to the address it checked. TLS
still verifies the certificate against the host name, because httpcore hands that name to
`start_tls` as `server_hostname`, apart from the address (httpcore/_async/connection.py).

Redirects are never followed, and no proxy is ever used (httpcore, unlike httpx, reads no
HTTPS_PROXY): either would send the event to an address nobody checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import enum
import http
import ipaddress
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import httpcore

from clipmesh.generator.webhook_urls import (
    DEFAULT_PORTS,
    IPAddress,
    WebhookTarget,
    address_refusal,
)
from clipmesh.runtime.policy import WebhookRules

USER_AGENT = "clipmesh-webhooks/1"
MAX_RESPONSE_BYTES = 64 * 1024
MAX_ERROR_BODY_CHARS = 200
RETRYABLE_STATUS_CODES = frozenset({408, 429})

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""`async (host, port) -> addresses`: every address `host` resolves to, as strings."""


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver (getaddrinfo) gives `host`, in its order."""
    answers = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [sockaddr[0] for *_, sockaddr in answers]


class AddressNotAllowed(httpcore.ConnectError):
    """A webhook host is, or resolves to, an address the rules refuse; nothing was connected
    to. (A ConnectError, so that httpx and httpcore callers meet a failed connection.)"""


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses the webhook rules allow.

    A host is refused when any of its addresses is refused: one private answer among public
    ones is still an attacker's answer. The allowed addresses are tried in turn, each with the
    whole connect `timeout` (the caller bounds the total).

    Args:
        rules: The webhook rules (`webhook_urls.address_refusal`).
        resolver: Resolves host names; `system_resolver` by default.
        backend: Opens the sockets; httpcore's `AnyIOBackend` by default.
    """

    def __init__(
        self,
        rules: WebhookRules,
        *,
        resolver: Resolver | None = None,
        backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._rules = rules
        self._resolver = resolver or system_resolver
        self._backend = backend or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 — httpcore's interface names it so
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        failure: Exception | None = None
        for address in await self._allowed_addresses(host, port, timeout_s=timeout):
            try:
                return await self._backend.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # _allowed_addresses returns at least one address
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 — httpcore's interface names it so
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressNotAllowed("webhooks are not delivered over unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)

    async def _allowed_addresses(
        self, host: str, port: int, *, timeout_s: float | None
    ) -> list[IPAddress]:
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            addresses = await self._resolve(host, port, timeout_s=timeout_s)
        if not addresses:
            raise httpcore.ConnectError(f"{host} resolves to no address")
        for address in addresses:
            refusal = address_refusal(address, self._rules)
            if refusal is not None:
                raise AddressNotAllowed(f"{host} resolves to {address}, {refusal}")
        return list(dict.fromkeys(addresses))

    async def _resolve(self, host: str, port: int, *, timeout_s: float | None) -> list[IPAddress]:
        try:
            async with asyncio.timeout(timeout_s):
                answers = await self._resolver(host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} took over {timeout_s:g} s") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        try:
            return [ipaddress.ip_address(answer) for answer in answers]
        except ValueError as exc:
            raise httpcore.ConnectError(f"resolving {host} gave {exc}") from exc


class DeliveryKind(enum.Enum):
    """How an attempt ended."""

    DELIVERED = "delivered"  # the receiver answered 2xx
    RETRYABLE = "retryable"  # a later attempt may succeed: timeout, connection, 3xx, 5xx, 408, 429
    PERMANENT = "permanent"  # the same request will fail again: address refused, other 4xx


@dataclass(frozen=True)
class DeliveryOutcome:
    """The result of one attempt.

    Attributes:
        kind: Delivered, worth retrying, or not.
        error: What went wrong, short ("HTTP 503 Service Unavailable: …"); "" when delivered.
        status_code: The receiver's HTTP status, when it answered.
        retry_after_s: The receiver's `Retry-After`, in seconds, when it sent one.
    """

    kind: DeliveryKind
    error: str = ""
    status_code: int | None = None
    retry_after_s: float | None = None

    @property
    def delivered(self) -> bool:
        return self.kind is DeliveryKind.DELIVERED

    @property
    def retryable(self) -> bool:
        return self.kind is DeliveryKind.RETRYABLE


async def post_event(
    target: WebhookTarget,
    body: bytes,
    headers: Mapping[str, str],
    *,
    rules: WebhookRules,
    timeout_s: float,
    resolver: Resolver | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> DeliveryOutcome:
    """POSTs one webhook event and says how it went; never raises for the receiver's faults.

    A pool is opened per attempt: the rules in force are the ones the pool's guard applies (a
    policy reload counts from the next attempt), no connection outlives its event, and the cost
    (a handshake per event, one event per finished job) is small.

    Args:
        target: Where to, as `check_webhook_url` returned it.
        body: The JSON event, exactly as signed.
        headers: The Standard Webhooks headers (`clipmesh_client.webhooks.sign`).
        rules: The webhook rules in force now.
        timeout_s: The whole attempt's limit: resolving, connecting, sending and reading.
        resolver: Resolves host names; the system resolver by default.
        ssl_context: Trust for the receiver's certificate; httpcore's default (certifi) if None.
    """
    guard = GuardedNetworkBackend(rules, resolver=resolver)
    url = httpcore.URL(
        scheme=target.scheme, host=target.host, port=target.port, target=target.target
    )
    phases = dict.fromkeys(("connect", "read", "write", "pool"), timeout_s)
    try:
        async with (
            asyncio.timeout(timeout_s),
            httpcore.AsyncConnectionPool(
                ssl_context=ssl_context, network_backend=guard, retries=0
            ) as pool,
            pool.stream(
                "POST",
                url,
                headers=_request_headers(target, headers),
                content=body,
                extensions={"timeout": phases},
            ) as response,
        ):
            answer = await _read_at_most(response, MAX_RESPONSE_BYTES)
    except AddressNotAllowed as exc:
        return DeliveryOutcome(DeliveryKind.PERMANENT, f"address not allowed: {exc}")
    except (TimeoutError, httpcore.TimeoutException):
        return DeliveryOutcome(DeliveryKind.RETRYABLE, f"no answer within {timeout_s:g} s")
    except (httpcore.NetworkError, httpcore.RemoteProtocolError) as exc:
        return DeliveryOutcome(DeliveryKind.RETRYABLE, f"connection failed: {_describe(exc)}")
    except (httpcore.LocalProtocolError, httpcore.UnsupportedProtocol) as exc:
        return DeliveryOutcome(DeliveryKind.PERMANENT, f"request not sent: {_describe(exc)}")
    return _outcome(response, answer)


def _request_headers(target: WebhookTarget, headers: Mapping[str, str]) -> list[tuple[str, str]]:
    merged = {"content-type": "application/json", "user-agent": USER_AGENT}
    merged.update((name.lower(), value) for name, value in headers.items())
    # httpcore writes an IPv6 host into `Host` without its brackets; an explicit one is right.
    host = f"[{target.host}]" if ":" in target.host else target.host
    default_port = DEFAULT_PORTS[target.scheme]
    merged["host"] = host if target.port == default_port else f"{host}:{target.port}"
    return list(merged.items())


async def _read_at_most(response: httpcore.Response, limit: int) -> bytes:
    """The first `limit` bytes of the body; the rest is never read (the connection closes)."""
    chunks: list[bytes] = []
    size = 0
    async with contextlib.aclosing(response.aiter_stream()) as stream:
        async for chunk in stream:
            chunks.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
    return b"".join(chunks)[:limit]


def _outcome(response: httpcore.Response, body: bytes) -> DeliveryOutcome:
    status = response.status
    if 200 <= status < 300:
        return DeliveryOutcome(DeliveryKind.DELIVERED, status_code=status)
    reason = response.extensions.get("reason_phrase", b"").decode("ascii", "replace")
    label = f"HTTP {status} {reason or _standard_phrase(status)}".rstrip()
    if 300 <= status < 400:
        return DeliveryOutcome(
            DeliveryKind.RETRYABLE, f"{label}: redirects are not followed", status
        )
    text = " ".join(body.decode("utf-8", "replace").split())
    excerpt = "".join(char for char in text if char.isprintable())[:MAX_ERROR_BODY_CHARS]
    error = f"{label}: {excerpt}" if excerpt else label
    retry_after_s = _retry_after_s(_header(response, b"retry-after"))
    if status >= 500 or status in RETRYABLE_STATUS_CODES:
        return DeliveryOutcome(DeliveryKind.RETRYABLE, error, status, retry_after_s)
    return DeliveryOutcome(DeliveryKind.PERMANENT, error, status)


def _header(response: httpcore.Response, name: bytes) -> bytes | None:
    return next((value for key, value in response.headers if key.lower() == name), None)


def _retry_after_s(value: bytes | None) -> float | None:
    """A `Retry-After` in seconds (it is seconds or an HTTP date); None if absent or unreadable."""
    text = (value or b"").decode("latin-1").strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - time.time())


def _standard_phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
