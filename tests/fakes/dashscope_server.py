"""A faithful local DashScope (Model Studio) video-synthesis server for tests and benchmarks.

It speaks the asynchronous task protocol on 127.0.0.1 — submit, poll, cancel — with the real
headers, bodies and error codes, and serves each finished task's video itself: a real H.264 MP4
made once per size with `make_video` (1 s by default, to stay cheap; cut into shots when the
task is multi-shot, with an AAC track when the model made a soundtrack), so clients probe real
media. The account behind it (tasks living in time, the account's limits recorded as
`Violation`s, the checks of a submission) is dashscope_tasks.py; this module is its HTTP side.

Scenarios, for every job (constructor) or one job (a marker in its prompt):

    [fail:CODE]    the task ends FAILED with CODE          fail_code="CODE"
    [reject:CODE]  the submission itself is refused         reject_code="CODE"
    [unknown]      the task later answers UNKNOWN          unknown_tasks=True
    [slow]         queue and render take slow_factor× longer
    throttle_first_n_submits, server_errors_first_n_polls, expire_files: see `DashScopeAccount`.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from clipmesh.demo.library import make_video
from tests.fakes.dashscope_tasks import MODELS, DashScopeAccount, Refusal

_SUBMIT_PATH = "/api/v1/services/aigc/video-generation/video-synthesis"


class FakeDashScope(DashScopeAccount):
    """DashScope's video-synthesis API on a free loopback port, in a background thread.

    Takes `DashScopeAccount`'s arguments and has its attributes, and `base_url`.
    """

    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeDashScope:
        """Starts serving on a free 127.0.0.1 port."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler, bind_and_activate=False)
        self._server.daemon_threads = True
        self._server.request_queue_size = 256  # a benchmark opens many connections at once
        self._server.server_bind()
        self._server.server_activate()
        self._server.fake = self
        self._server.handle_error = self._handle_error
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def _handle_error(self, request, client_address) -> None:
        # A client killed mid-request (a gateway replica SIGKILLed by a fault test) is what
        # such a test is about, not an error of the fake worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            ThreadingHTTPServer.handle_error(self._server, request, client_address)

    def close(self) -> None:
        """Stops serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    def __enter__(self) -> FakeDashScope:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def origin(self) -> str:
        """`http://127.0.0.1:PORT`."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def base_url(self) -> str:
        """The API root to configure a client with (`…/api/v1`)."""
        return self.origin + "/api/v1"

    # -- the result files, served as the object store serves them --------------------------

    def video(self, task_id: str) -> bytes:
        """The finished task's MP4; raises `Refusal` (403 expired / 404) otherwise."""
        with self._lock:
            task = self._tasks.get(task_id)
            done = task is not None and task.status(time.monotonic()) == "SUCCEEDED"
        if self.expire_files:
            raise Refusal("AccessDenied", "Request has expired.", status=403)
        if not done:
            raise Refusal("NoSuchKey", "The specified key does not exist.", status=404)
        width, height = self._video_size or map(int, task.size.split("*"))
        # A multi-shot task's video is cut (each shot at least 1 s); a single-shot one is not.
        shots = max(1, min(3, int(self._video_duration_s))) if task.shots == "multi" else 1
        fps = MODELS[task.model].fps
        return _rendered(
            width, height, fps, self._video_duration_s, shots=shots, soundtrack=task.audio
        )


_VIDEOS: dict[tuple, bytes] = {}
_VIDEOS_LOCK = threading.Lock()  # rendering is slow: kept off every server's state lock


def _rendered(
    width: int, height: int, fps: int, duration_s: float, *, shots: int, soundtrack: bool
) -> bytes:
    """An MP4 of this size, rate, length, cuts and sound, rendered once per process."""
    key = (width, height, fps, duration_s, shots, soundtrack)
    with _VIDEOS_LOCK:
        if key not in _VIDEOS:
            with tempfile.TemporaryDirectory() as scratch:
                path = Path(scratch) / "video.mp4"
                make_video(
                    path,
                    seed=1,
                    duration_s=duration_s,
                    fps=fps,
                    size=(width, height),
                    shots=shots,
                    soundtrack=soundtrack,
                )
                _VIDEOS[key] = path.read_bytes()
        return _VIDEOS[key]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real endpoint
    timeout = 60  # idle connections close long after httpx's 5 s keep-alive expiry

    def log_message(self, format: str, *args) -> None:
        """Silent: tests read the recorded state, not an access log."""

    @property
    def fake(self) -> FakeDashScope:
        return self.server.fake

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        cancel = re.fullmatch(r"/api/v1/tasks/([^/]+)/cancel", self.path)
        if self.path == _SUBMIT_PATH:
            self._answer(self._submit, body)
        elif cancel:
            self._answer(self._cancel, cancel[1])
        else:
            self._answer(_not_found)

    def do_GET(self) -> None:
        poll = re.fullmatch(r"/api/v1/tasks/([^/]+)", self.path)
        video = re.fullmatch(r"/files/([^/]+)\.mp4", self.path)
        if poll:
            self._answer(self._poll, poll[1])
        elif video:
            self._video(video[1])
        else:
            self._answer(_not_found)

    def _authorize(self) -> None:
        if self.headers.get("Authorization") != f"Bearer {self.fake.api_key}":
            raise Refusal("InvalidApiKey")

    def _poll(self, task_id: str) -> dict:
        self._authorize()
        return self.fake.poll(task_id)

    def _cancel(self, task_id: str) -> dict:
        self._authorize()
        return self.fake.cancel(task_id)

    def _submit(self, body: bytes) -> dict:
        self._authorize()
        if self.headers.get("X-DashScope-Async") != "enable":
            message = "current user api does not support synchronous calls"
            raise Refusal("AccessDenied", message, status=403)
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        return self.fake.submit(parsed)

    def _answer(self, handle: Callable[..., dict], *args) -> None:
        request_id = str(uuid.uuid4())
        try:
            status, payload = 200, {"request_id": request_id, **handle(*args)}
        except Refusal as refused:
            status = refused.status
            payload = {"request_id": request_id, "code": refused.code, "message": refused.message}
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _video(self, task_id: str) -> None:
        try:
            self._send(200, self.fake.video(task_id), "video/mp4")
        except Refusal as refused:  # the object store answers in XML, as OSS does
            xml = f"<Error><Code>{refused.code}</Code><Message>{refused.message}</Message></Error>"
            self._send(refused.status, xml.encode(), "application/xml")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _not_found() -> dict:
    raise Refusal("NotFound", "Not found.", status=404)
