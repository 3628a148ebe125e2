"""A webhook receiver on a loopback port, in a background thread, for the gateway's webhooks.

It records every request that reaches it (headers, body, when it arrived, what it answered) and
answers as a test tells it: 200 by default, the next statuses queued with `answer_next` (a 500,
say), or nothing until released (`hold_answers`: a receiver slow to answer). It can be down:
`stop()` closes the listening socket, so an attempt meets a refused connection, and `start()`
listens again on the same port, as a receiver that was restarted does. Synchronous and
thread-safe, so tests with and without an event loop share it.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.conftest import distinct_free_port


@dataclass(frozen=True)
class ReceivedWebhook:
    """One request that reached the receiver.

    Attributes:
        path: The request target.
        headers: Its headers, names in lower case.
        body: Its body, exactly as received.
        received_s: When it arrived (Unix seconds).
        status: The status the receiver answered.
    """

    path: str
    headers: dict[str, str]
    body: bytes
    received_s: float
    status: int

    @property
    def event_id(self) -> str:
        return self.headers.get("webhook-id", "")

    @property
    def delivered(self) -> bool:
        return 200 <= self.status < 300


class WebhookReceiver:
    """Receives webhooks on `http://127.0.0.1:<port>/hook`; a free port unless one is given.

    Use as a context manager (listening inside the block), or `start()`/`stop()` to bring it
    up and down; it starts down.
    """

    def __init__(self, port: int = 0) -> None:
        self.port = port or distinct_free_port()
        self.connections = 0
        self._requests: list[ReceivedWebhook] = []
        self._answers: deque[tuple[int, dict[str, str]]] = deque()
        self._changed = threading.Condition()
        self._release = threading.Event()
        self._release.set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> WebhookReceiver:
        """Listens on the receiver's port (again)."""
        assert self._server is None, "the receiver is already listening"
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.receiver = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops listening: attempts now meet a refused connection."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)
            self._server = self._thread = None

    def answer_next(self, *statuses: int, headers: dict[str, str] | None = None) -> None:
        """Answers the next requests with `statuses`, in order (then 200 again)."""
        with self._changed:
            self._answers.extend((status, dict(headers or {})) for status in statuses)

    def hold_answers(self) -> None:
        """Holds every answer from now on until `release_answers()` (the request is recorded
        when it arrives)."""
        self._release.clear()

    def release_answers(self) -> None:
        self._release.set()

    @property
    def requests(self) -> list[ReceivedWebhook]:
        """Every request received so far, in order of arrival."""
        with self._changed:
            return list(self._requests)

    def delivered(self) -> list[ReceivedWebhook]:
        """The requests answered 2xx."""
        return [request for request in self.requests if request.delivered]

    def wait_for_requests(self, count: int, timeout_s: float = 30) -> list[ReceivedWebhook]:
        """Waits until `count` requests arrived; returns every request."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while len(self._requests) < count:
                left_s = deadline - time.monotonic()
                assert left_s > 0, (
                    f"{count} webhook requests expected within {timeout_s} s; "
                    f"received: {[(r.event_id, r.status) for r in self._requests]}"
                )
                self._changed.wait(left_s)
            return list(self._requests)

    def _record(self, handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str]]:
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length)
        headers = {name.lower(): value for name, value in handler.headers.items()}
        with self._changed:
            status, extra = self._answers.popleft() if self._answers else (200, {})
            self._requests.append(ReceivedWebhook(handler.path, headers, body, time.time(), status))
            self._changed.notify_all()
        return status, extra

    def _connected(self) -> None:
        with self._changed:
            self.connections += 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # listen again on the same port at once after `stop()`
    receiver: WebhookReceiver

    def verify_request(self, request, client_address) -> bool:
        self.receiver._connected()
        return True

    def handle_error(self, request, client_address) -> None:
        # A held answer written to a sender that died is what such a test is about.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        receiver = self.server.receiver
        status, extra = receiver._record(self)
        receiver._release.wait(timeout=60)
        body = b"ok" if status < 300 else b"receiver failure (test)"
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # the test reads `requests`, not a log
