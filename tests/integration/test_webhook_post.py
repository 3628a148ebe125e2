"""One webhook delivery attempt against a real receiver on loopback: how each answer is
classified, what the receiver gets, and the guard that connects only to the addresses it checked
(DNS answers come from an injected resolver, the one boundary stood in for)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

import pytest

from clipmesh.cli.certs import DevCredentials
from clipmesh.generator.webhook_post import (
    USER_AGENT,
    DeliveryKind,
    DeliveryOutcome,
    post_event,
)
from clipmesh.generator.webhook_urls import check_webhook_url
from clipmesh.runtime.policy import WebhookRules, decode_webhook_secret
from clipmesh_client.webhooks import sign, verify
from tests.support import skip_unless_ci

pytestmark = pytest.mark.timeout(30)

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
BODY = b'{"type":"job.succeeded","job_id":"j7"}'
DEVELOPMENT = WebhookRules(allow_http_loopback=True)
METADATA_URL = "http://169.254.169.254/latest/meta-data/"

_ANSWERS = {
    "/ok": (b"200 OK", [], b"ok"),
    "/accepted": (b"202 Accepted", [], b""),
    "/fail": (b"500 Internal Server Error", [], b"database\n\tdown"),
    "/unavailable": (b"503 Service Unavailable", [b"Retry-After: 120"], b""),
    "/throttle": (b"429 Too Many Requests", [b"Retry-After: 7"], b"slow down"),
    "/redirect": (b"302 Found", [b"Location: " + METADATA_URL.encode()], b""),
    "/missing": (b"404 Not Found", [], b"no such hook"),
    "/huge": (b"400 Bad Request", [], b"x" * (1 << 20)),
}


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook receiver on a free loopback port: answers by path (`_ANSWERS`; `/slow` never
    answers), and remembers every connection and request that reached it."""

    connections: int = 0
    requests: list[Received] = field(default_factory=list)
    port: int = 0
    _release: asyncio.Event = field(default_factory=asyncio.Event)
    _handlers: set[asyncio.Task] = field(default_factory=set)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._handlers.add(asyncio.current_task())
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            request_line, *lines = head.rstrip("\r\n").split("\r\n")
            path = request_line.split(" ")[1]
            headers = {}
            for line in lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(Received(path, headers, body))
            if path == "/slow":
                await self._release.wait()
                return
            status, extra, content = _ANSWERS[path.partition("?")[0]]
            lines = [b"HTTP/1.1 " + status, *extra, b"Content-Length: %d" % len(content)]
            writer.write(b"\r\n".join([*lines, b"Connection: close", b"", content]))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass  # the client gave up first: what the test is about
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def receiving(ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[Receiver]:
    receiver = Receiver()
    server = await asyncio.start_server(receiver._serve, "127.0.0.1", 0, ssl=ssl_context)
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        receiver._release.set()
        server.close()
        await server.wait_closed()
        await asyncio.gather(*receiver._handlers, return_exceptions=True)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as receiver:
        yield receiver


def resolving(answers: dict[str, Sequence[str]], asked: list[str] | None = None) -> Callable:
    """A resolver that answers from `answers` (and records each name asked)."""

    async def resolve(host: str, port: int) -> Sequence[str]:
        if asked is not None:
            asked.append(host)
        if host not in answers:
            raise OSError(f"no such host: {host}")
        return answers[host]

    return resolve


async def deliver(
    url: str, rules: WebhookRules = DEVELOPMENT, timeout_s: float = 5.0, **options
) -> DeliveryOutcome:
    keys = [decode_webhook_secret(SECRET, "test")]
    headers = sign(keys, "msg_1", 1_767_225_600, BODY)
    target = check_webhook_url(url, rules)
    return await post_event(target, BODY, headers, rules=rules, timeout_s=timeout_s, **options)


async def test_a_2xx_is_delivered_signed_as_json(receiver: Receiver) -> None:
    outcome = await deliver(f"http://127.0.0.1:{receiver.port}/ok?job=j7")
    assert outcome == DeliveryOutcome(DeliveryKind.DELIVERED, status_code=200)
    (request,) = receiver.requests
    assert request.path == "/ok?job=j7"
    assert request.body == BODY
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == USER_AGENT
    assert request.headers["host"] == f"127.0.0.1:{receiver.port}"
    verify(SECRET, request.headers, request.body, now=1_767_225_600)


async def test_any_2xx_is_delivered(receiver: Receiver) -> None:
    outcome = await deliver(f"http://localhost:{receiver.port}/accepted")
    assert outcome.delivered and outcome.status_code == 202


async def test_a_5xx_is_retried_with_its_reason_and_an_excerpt(receiver: Receiver) -> None:
    outcome = await deliver(f"http://127.0.0.1:{receiver.port}/fail")
    assert outcome.kind is DeliveryKind.RETRYABLE
    assert outcome.status_code == 500
    assert outcome.error == "HTTP 500 Internal Server Error: database down"


@pytest.mark.parametrize(
    ("path", "status", "wait_s"), [("/throttle", 429, 7), ("/unavailable", 503, 120)]
)
async def test_throttling_is_retried_after_the_receivers_wait(
    receiver: Receiver, path: str, status: int, wait_s: int
) -> None:
    outcome = await deliver(f"http://127.0.0.1:{receiver.port}{path}")
    assert outcome.retryable and outcome.status_code == status
    assert outcome.retry_after_s == wait_s


async def test_a_redirect_is_not_followed(receiver: Receiver) -> None:
    outcome = await deliver(f"http://127.0.0.1:{receiver.port}/redirect")
    assert outcome.kind is DeliveryKind.RETRYABLE
    assert outcome.error == "HTTP 302 Found: redirects are not followed"
    assert len(receiver.requests) == 1


async def test_other_4xx_are_permanent(receiver: Receiver) -> None:
    outcome = await deliver(f"http://127.0.0.1:{receiver.port}/missing")
    assert outcome == DeliveryOutcome(
        DeliveryKind.PERMANENT, "HTTP 404 Not Found: no such hook", 404
    )


async def test_a_huge_answer_is_cut_short_and_never_quoted_whole(receiver: Receiver) -> None:
    outcome = await deliver(f"http://127.0.0.1:{receiver.port}/huge")
    assert outcome.kind is DeliveryKind.PERMANENT and outcome.status_code == 400
    assert outcome.error == "HTTP 400 Bad Request: " + "x" * 200


async def test_a_receiver_that_never_answers_times_out_retryable(receiver: Receiver) -> None:
    outcome = await deliver(f"http://127.0.0.1:{receiver.port}/slow", timeout_s=0.5)
    assert outcome == DeliveryOutcome(DeliveryKind.RETRYABLE, "no answer within 0.5 s")
    assert len(receiver.requests) == 1


async def test_a_closed_port_is_retryable(free_ports) -> None:
    outcome = await deliver(f"http://127.0.0.1:{free_ports()}/ok")
    assert outcome.kind is DeliveryKind.RETRYABLE
    assert outcome.error.startswith("connection failed")


async def test_a_name_resolving_to_loopback_is_refused_unless_loopback_is_allowed(
    receiver: Receiver,
) -> None:
    production = WebhookRules(allowed_hosts=("hooks.example",))
    url = f"https://hooks.example:{receiver.port}/ok"
    resolver = resolving({"hooks.example": ["127.0.0.1"]})
    outcome = await deliver(url, production, resolver=resolver)
    assert outcome.kind is DeliveryKind.PERMANENT
    assert "hooks.example resolves to 127.0.0.1, a loopback address" in outcome.error
    assert receiver.connections == 0


@pytest.mark.parametrize(
    "answers",
    [
        ["10.0.0.1"],
        ["127.0.0.1", "10.0.0.1"],  # one bad answer among good ones refuses the host
        ["::ffff:169.254.169.254"],
        [],
    ],
)
async def test_a_host_is_connected_to_only_when_every_answer_is_allowed(
    receiver: Receiver, answers: list[str]
) -> None:
    resolver = resolving({"localhost": answers})
    outcome = await deliver(f"http://localhost:{receiver.port}/ok", resolver=resolver)
    assert not outcome.delivered
    assert receiver.connections == 0


async def test_a_name_that_does_not_resolve_is_retryable(receiver: Receiver) -> None:
    outcome = await deliver(f"http://localhost:{receiver.port}/ok", resolver=resolving({}))
    assert outcome.kind is DeliveryKind.RETRYABLE
    assert "cannot resolve localhost" in outcome.error


@pytest.fixture
def tls(mesh_ca: DevCredentials) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) TLS contexts: the receiver presents the development certificate of
    `generator` (names: generator, localhost, 127.0.0.1, ::1); the client trusts its CA."""
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(mesh_ca.cert_file("generator"), mesh_ca.key_file("generator"))
    client = ssl.create_default_context(cafile=str(mesh_ca.ca_file))
    return server, client


async def test_dns_rebinding_is_refused_and_tls_verifies_the_name(tls) -> None:
    server_context, client_context = tls
    rules = WebhookRules(allowed_hosts=("generator",), allow_http_loopback=True)
    answers = {"generator": ["127.0.0.1"]}
    asked: list[str] = []
    async with receiving(server_context) as receiver:
        url = f"https://generator:{receiver.port}/ok"
        target = check_webhook_url(url, rules)  # passes at submission
        options = {"rules": rules, "timeout_s": 5.0, "ssl_context": client_context}
        resolver = resolving(answers, asked)
        first = await post_event(target, BODY, {}, resolver=resolver, **options)
        assert first.delivered  # the certificate names `generator`, reached at 127.0.0.1
        assert receiver.requests[0].headers["host"] == f"generator:{receiver.port}"

        answers["generator"] = ["10.0.0.1"]  # the name now points into the private network
        second = await post_event(target, BODY, {}, resolver=resolver, **options)
        assert second.kind is DeliveryKind.PERMANENT
        assert "generator resolves to 10.0.0.1, a private address" in second.error
        assert receiver.connections == 1
        assert asked == ["generator", "generator"]


async def test_tls_checks_the_certificate_against_the_name_not_the_address(tls) -> None:
    """127.0.0.1 is in the certificate, `imposter` is not: connecting to the checked address
    must not turn the certificate check into one of the address."""
    server_context, client_context = tls
    rules = WebhookRules(allowed_hosts=("imposter",), allow_http_loopback=True)
    async with receiving(server_context) as receiver:
        target = check_webhook_url(f"https://imposter:{receiver.port}/ok", rules)
        outcome = await post_event(
            target,
            BODY,
            {},
            rules=rules,
            timeout_s=5.0,
            resolver=resolving({"imposter": ["127.0.0.1"]}),
            ssl_context=client_context,
        )
    assert outcome.kind is DeliveryKind.RETRYABLE
    assert "CERTIFICATE_VERIFY_FAILED" in outcome.error
    assert receiver.requests == []


async def test_an_ipv6_receiver_gets_a_bracketed_host_header() -> None:
    receiver = Receiver()
    try:
        server = await asyncio.start_server(receiver._serve, "::1", 0)
    except OSError:
        skip_unless_ci("this machine has no IPv6 loopback")
    receiver.port = server.sockets[0].getsockname()[1]
    async with server:
        outcome = await deliver(f"http://[::1]:{receiver.port}/ok")
    assert outcome.delivered
    assert receiver.requests[0].headers["host"] == f"[::1]:{receiver.port}"
