"""A faithful local DashScope (Model Studio) video-synthesis server for tests and benchmarks.

It speaks the asynchronous task protocol on 127.0.0.1 — submit, poll, cancel — with the real
headers, bodies and error codes, and serves each finished task's video itself: a real H.264 MP4
made once per size with `make_video` (1 s by default, to stay cheap), so clients probe real
media. Tasks live in time: PENDING for `queue_s`, RUNNING for `task_duration_s`, then their end.

Like the real account it enforces `max_submits_per_s` (any one-second window) and
`max_concurrent_tasks` (PENDING + RUNNING), answering 429 `Throttling.RateQuota` /
`Throttling.AllocationQuota` — and records each such refusal as a `Violation`, since a client
that keeps to the limits never earns one.

Scenarios, for every job (constructor) or one job (a marker in its prompt):

    [fail:CODE]    the task ends FAILED with CODE          fail_code="CODE"
    [reject:CODE]  the submission itself is refused         reject_code="CODE"
    [unknown]      the task later answers UNKNOWN          unknown_tasks=True
    [slow]         queue and render take slow_factor× longer
    throttle_first_n_submits, server_errors_first_n_polls, expire_files: see `FakeDashScope`.

The model table is written here from the provider's documentation on purpose, apart from the
backend's, so a mistake in either shows up as a refused request.
"""

from __future__ import annotations

import json
import random
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from clipmesh.demo.library import make_video

_480P = ("832*480", "480*832", "624*624")
_720P = ("1280*720", "720*1280", "960*960", "1088*832", "832*1088")
_1080P = ("1920*1080", "1080*1920", "1440*1440", "1632*1248", "1248*1632")
# model: (sizes, default size, durations in s, fps)
_MODELS = {
    "wan2.2-t2v-plus": (_480P + _1080P, "1920*1080", (5,), 30),
    "wan2.5-t2v-preview": (_480P + _720P + _1080P, "1920*1080", (5, 10), 24),
    "wanx2.1-t2v-turbo": (_480P + _720P, "1280*720", (5,), 16),
    "wanx2.1-t2v-plus": (_720P, "1280*720", (5,), 16),
}
_ACTIVE = ("PENDING", "RUNNING")
_MAX_PROMPT_CHARS = 800
_MAX_NEGATIVE_CHARS = 500
_SUBMIT_PATH = "/api/v1/services/aigc/video-generation/video-synthesis"
_MARKER = re.compile(r"\[(fail|reject):([\w.]+)\]|\[(unknown|slow)\]")
_EXTENSION = " Soft natural light, a slow cinematic camera move, rich detail."
_MESSAGES = {
    "InvalidApiKey": (401, "Invalid API-key provided."),
    "Arrearage": (400, "Access denied, please make sure your account is in good standing."),
    "DataInspectionFailed": (400, "Input data may contain inappropriate content."),
    "Throttling.RateQuota": (429, "Requests rate limit exceeded, please try again later."),
    "Throttling.AllocationQuota": (429, "Allocated quota exceeded, please increase your quota."),
    "InternalError": (500, "An internal error has occured, please try again later."),
    "UnsupportedOperation": (400, "Failed to cancel the task, it is not in PENDING status."),
}


@dataclass(frozen=True)
class Violation:
    """A submission over the account's limits, which a well-behaved client never makes.

    Attributes:
        kind: "rate" (over `max_submits_per_s`) or "concurrency" (over `max_concurrent_tasks`).
        at_s: When, on `time.monotonic()`.
        detail: What was exceeded, for assertion messages.
    """

    kind: str
    at_s: float
    detail: str


@dataclass
class _Task:
    task_id: str
    model: str
    size: str
    duration: int
    orig_prompt: str
    actual_prompt: str
    submit_time: str
    run_at_s: float
    end_at_s: float
    outcome: str  # SUCCEEDED, FAILED or UNKNOWN once end_at_s has passed
    fail_code: str = ""
    canceled_at_s: float | None = None

    def status(self, now_s: float) -> str:
        if self.canceled_at_s is not None:
            return "CANCELED"
        if now_s < self.run_at_s:
            return "PENDING"
        return "RUNNING" if now_s < self.end_at_s else self.outcome


class Refusal(Exception):
    """An error answer: HTTP `status` with DashScope's `code` and `message`."""

    def __init__(self, code: str, message: str = "", status: int = 0) -> None:
        default_status, default_message = _MESSAGES.get(code, (400, code))
        super().__init__(message or default_message)
        self.code, self.status = code, status or default_status
        self.message = message or default_message


def _wall(monotonic_s: float) -> str:
    """A monotonic instant in DashScope's time format (`2025-01-08 16:43:47.123`)."""
    moment = datetime.now().timestamp() - (time.monotonic() - monotonic_s)
    return datetime.fromtimestamp(moment).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


class FakeDashScope:
    """DashScope's video-synthesis API on a free loopback port, in a background thread.

    Args:
        api_key: The only key accepted (`Authorization: Bearer <key>`).
        task_duration_s: Time RUNNING, fixed or a (min, max) range drawn with `seed`.
        queue_s: Time PENDING before that, fixed or a range.
        slow_factor: How much longer a `[slow]` task queues and renders.
        max_concurrent_tasks: The account's PENDING + RUNNING limit.
        max_submits_per_s: The account's submissions in any one-second window.
        throttle_first_n_submits: The first N submissions answer 429 `Throttling.RateQuota`.
        server_errors_first_n_polls: The first N polls answer 500/503 `InternalError`.
        expire_files: Video URLs answer 403, as after their 24 h.
        fail_code, reject_code, unknown_tasks: The prompt markers, for every job.
        video_size: (width, height) of every served video; None serves the requested size.
        video_duration_s: Length of the served videos.
        seed: Seeds task durations.

    Attributes (safe to read from any thread while it serves):
        base_url, tasks_created, submit_times, max_concurrent_observed,
        max_submits_in_any_1s_window, violations, cancel_calls, poll_count.
    """

    def __init__(
        self,
        *,
        api_key: str = "sk-test",
        task_duration_s: float | tuple[float, float] = (0.2, 0.5),
        queue_s: float | tuple[float, float] = (0.05, 0.15),
        slow_factor: float = 20.0,
        max_concurrent_tasks: int = 2,
        max_submits_per_s: int = 2,
        throttle_first_n_submits: int = 0,
        server_errors_first_n_polls: int = 0,
        expire_files: bool = False,
        fail_code: str = "",
        reject_code: str = "",
        unknown_tasks: bool = False,
        video_size: tuple[int, int] | None = None,
        video_duration_s: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.api_key = api_key
        self._task_duration_s, self._queue_s = task_duration_s, queue_s
        self._slow_factor = slow_factor
        self.max_concurrent_tasks, self.max_submits_per_s = max_concurrent_tasks, max_submits_per_s
        self._throttle_first_n = throttle_first_n_submits
        self._errors_first_n = server_errors_first_n_polls
        self.expire_files = expire_files
        self._default_markers = (
            (f"[fail:{fail_code}]" if fail_code else "")
            + (f"[reject:{reject_code}]" if reject_code else "")
            + ("[unknown]" if unknown_tasks else "")
        )
        self._video_size, self._video_duration_s = video_size, video_duration_s
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._tasks: dict[str, _Task] = {}
        self._submit_times: list[float] = []
        self._submits_seen = 0
        self._violations: list[Violation] = []
        self._cancel_calls: list[tuple[str, bool]] = []
        self.poll_count = 0
        self.max_concurrent_observed = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeDashScope:
        """Starts serving on a free 127.0.0.1 port."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler, bind_and_activate=False)
        self._server.daemon_threads = True
        self._server.request_queue_size = 256  # a benchmark opens many connections at once
        self._server.server_bind()
        self._server.server_activate()
        self._server.fake = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

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

    # -- what tests assert -----------------------------------------------------------------

    @property
    def tasks_created(self) -> int:
        """Tasks accepted so far."""
        with self._lock:
            return len(self._tasks)

    @property
    def submit_times(self) -> list[float]:
        """`time.monotonic()` of every authenticated submission, refused ones included."""
        with self._lock:
            return list(self._submit_times)

    @property
    def max_submits_in_any_1s_window(self) -> int:
        """The most submissions (refused ones included) less than one second apart."""
        times = sorted(self.submit_times)
        most, first = 0, 0
        for last, at_s in enumerate(times):
            while at_s - times[first] >= 1.0:
                first += 1
            most = max(most, last - first + 1)
        return most

    @property
    def violations(self) -> list[Violation]:
        """Submissions refused for going over the account's limits."""
        with self._lock:
            return list(self._violations)

    @property
    def cancel_calls(self) -> list[tuple[str, bool]]:
        """(task_id, accepted) for every cancel request."""
        with self._lock:
            return list(self._cancel_calls)

    def status_of(self, task_id: str) -> str:
        """A task's status now, as a poll would answer it."""
        with self._lock:
            task = self._tasks.get(task_id)
            return task.status(time.monotonic()) if task else "UNKNOWN"

    # -- the protocol ----------------------------------------------------------------------

    def _draw(self, spec: float | tuple[float, float], factor: float) -> float:
        value = self._rng.uniform(*spec) if isinstance(spec, tuple) else spec
        return value * factor

    def submit(self, body: object) -> dict:
        """Handles one authenticated submission; raises `Refusal` for an error answer."""
        with self._lock:
            now_s = time.monotonic()
            self._submit_times.append(now_s)
            self._submits_seen += 1
            recent = 0
            for at_s in reversed(self._submit_times):
                if now_s - at_s >= 1.0:
                    break
                recent += 1
            if recent > self.max_submits_per_s:
                self._violations.append(
                    Violation("rate", now_s, f"{recent} submissions within 1 s")
                )
                raise Refusal("Throttling.RateQuota")
            if self._submits_seen <= self._throttle_first_n:
                raise Refusal("Throttling.RateQuota")
            model, prompt, size, duration, extend = check_submission(body)
            markers = _MARKER.findall(prompt + self._default_markers)
            codes = {kind: code for kind, code, _ in markers if kind}
            flags = {flag for _, _, flag in markers if flag}
            if "reject" in codes:
                raise Refusal(codes["reject"])
            active = sum(1 for t in self._tasks.values() if t.status(now_s) in _ACTIVE)
            if active >= self.max_concurrent_tasks:
                self._violations.append(
                    Violation("concurrency", now_s, f"{active} tasks already active")
                )
                raise Refusal("Throttling.AllocationQuota")
            factor = self._slow_factor if "slow" in flags else 1.0
            run_at_s = now_s + self._draw(self._queue_s, factor)
            clean = _MARKER.sub("", prompt).strip()
            outcome = "UNKNOWN" if "unknown" in flags else "SUCCEEDED"
            task = _Task(
                task_id=str(uuid.uuid4()),
                model=model,
                size=size,
                duration=duration,
                orig_prompt=prompt,
                actual_prompt=clean + _EXTENSION if extend else clean,
                submit_time=_wall(now_s),
                run_at_s=run_at_s,
                end_at_s=run_at_s + self._draw(self._task_duration_s, factor),
                outcome="FAILED" if "fail" in codes else outcome,
                fail_code=codes.get("fail", ""),
            )
            self._tasks[task.task_id] = task
            self.max_concurrent_observed = max(self.max_concurrent_observed, active + 1)
            return {"output": {"task_id": task.task_id, "task_status": "PENDING"}}

    def poll(self, task_id: str) -> dict:
        """Handles one authenticated poll; raises `Refusal` for a scripted server error."""
        with self._lock:
            self.poll_count += 1
            if self.poll_count <= self._errors_first_n:
                raise Refusal("InternalError", status=500 if self.poll_count % 2 else 503)
            now_s = time.monotonic()
            task = self._tasks.get(task_id)
            status = task.status(now_s) if task else "UNKNOWN"
            output: dict = {"task_id": task_id, "task_status": status}
            if status == "UNKNOWN":
                return {"output": output}
            output["submit_time"] = task.submit_time
            if now_s >= task.run_at_s:
                output["scheduled_time"] = _wall(task.run_at_s)
            if status in ("SUCCEEDED", "FAILED", "CANCELED"):
                output["end_time"] = _wall(task.canceled_at_s or task.end_at_s)
            if status == "FAILED":
                output["code"] = task.fail_code
                output["message"] = _MESSAGES.get(task.fail_code, (0, task.fail_code))[1]
            if status != "SUCCEEDED":
                return {"output": output}
            output |= {
                "video_url": f"{self.origin}/files/{task_id}.mp4",
                "orig_prompt": task.orig_prompt,
                "actual_prompt": task.actual_prompt,
            }
            usage = {"video_duration": task.duration, "video_ratio": task.size, "video_count": 1}
            return {"output": output, "usage": usage}

    def cancel(self, task_id: str) -> dict:
        """Cancels a PENDING task; raises `Refusal` (UnsupportedOperation) for any other."""
        with self._lock:
            task = self._tasks.get(task_id)
            now_s = time.monotonic()
            accepted = task is not None and task.status(now_s) == "PENDING"
            self._cancel_calls.append((task_id, accepted))
            if not accepted:
                raise Refusal("UnsupportedOperation")
            task.canceled_at_s = now_s
            return {}

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
        return _rendered(width, height, _MODELS[task.model][3], self._video_duration_s)


_VIDEOS: dict[tuple[int, int, int, float], bytes] = {}
_VIDEOS_LOCK = threading.Lock()  # rendering is slow: kept off every server's state lock


def _rendered(width: int, height: int, fps: int, duration_s: float) -> bytes:
    """An MP4 of this size, rate and length, rendered once per process."""
    key = (width, height, fps, duration_s)
    with _VIDEOS_LOCK:
        if key not in _VIDEOS:
            with tempfile.TemporaryDirectory() as scratch:
                path = Path(scratch) / "video.mp4"
                shots = max(1, min(3, int(duration_s)))  # each shot lasts at least 1 s
                make_video(
                    path, seed=1, duration_s=duration_s, fps=fps, size=(width, height), shots=shots
                )
                _VIDEOS[key] = path.read_bytes()
        return _VIDEOS[key]


def check_submission(body: object) -> tuple[str, str, str, int, bool]:
    """(model, prompt, size, duration, prompt_extend) of a valid body; `Refusal` otherwise."""
    if not isinstance(body, dict):
        raise Refusal("InvalidParameter", "The request body is not a JSON object.")
    model = body.get("model")
    if not model:
        raise Refusal("InvalidParameter", "Model not specified.")
    if model not in _MODELS:
        raise Refusal("InvalidParameter", "Model not exist.")
    sizes, default_size, durations, _ = _MODELS[model]
    prompts = body.get("input") if isinstance(body.get("input"), dict) else {}
    parameters = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
    prompt, negative = prompts.get("prompt"), prompts.get("negative_prompt", "")
    if not isinstance(prompt, str) or not prompt:
        raise Refusal("InvalidParameter", "Field required: input.prompt")
    if len(prompt) > _MAX_PROMPT_CHARS:
        raise Refusal("InvalidParameter", "Range of input length should be [1, 800]")
    if not isinstance(negative, str) or len(negative) > _MAX_NEGATIVE_CHARS:
        raise Refusal("InvalidParameter", "Range of negative_prompt length should be [0, 500]")
    size = parameters.get("size", default_size)
    if size not in sizes:
        allowed = ", ".join(f"'{s}'" for s in sizes)
        raise Refusal("InvalidParameter", f"The size is not match the allowed size [{allowed}]")
    duration = parameters.get("duration", durations[0])
    if duration not in durations or isinstance(duration, bool):
        raise Refusal("InvalidParameter", f"The duration must be one of {list(durations)}")
    seed = parameters.get("seed", 0)
    if not isinstance(seed, int) or not 0 <= seed <= 2**31 - 1:
        raise Refusal("InvalidParameter", "The seed must be in [0, 2147483647]")
    extend = parameters.get("prompt_extend", True)
    for name in ("prompt_extend", "watermark"):
        if not isinstance(parameters.get(name, False), bool):
            raise Refusal("InvalidParameter", f"parameters.{name} must be a boolean")
    return model, prompt, size, int(duration), extend


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
