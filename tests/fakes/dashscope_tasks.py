"""The account behind FakeDashScope: its tasks, its limits, its checks of a submission.

Tasks live in time: PENDING for `queue_s`, RUNNING for `task_duration_s`, then their end. Like
the real account it enforces `max_submits_per_s` (any one-second window) and
`max_concurrent_tasks` (PENDING + RUNNING), answering 429 `Throttling.RateQuota` /
`Throttling.AllocationQuota` — and records each such refusal as a `Violation`, since a client
that keeps to the limits never earns one. The HTTP around it is dashscope_server.py.

The model table is written here from the provider's documentation on purpose, apart from the
backend's, so a mistake in either shows up as a refused request: Model Studio's text-to-video
API reference (wan2.1-2.6) and user guide,
https://www.alibabacloud.com/help/en/model-studio/legacy-wan-text-to-video-api-reference and
https://www.alibabacloud.com/help/en/model-studio/text-to-video-guide.
"""

from __future__ import annotations

import random
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

_480P = ("832*480", "480*832", "624*624")
_720P = ("1280*720", "720*1280", "960*960", "1088*832", "832*1088")
_1080P = ("1920*1080", "1080*1920", "1440*1440", "1632*1248", "1248*1632")


@dataclass(frozen=True)
class Model:
    """One text-to-video model as the provider documents it.

    Attributes:
        sizes: The `size` values it takes; `default_size` when none is given.
        durations: The `duration` values (whole seconds) it takes; `default_duration` when none
            is given.
        fps: Frame rate of its videos.
        max_prompt_chars: Longest prompt it takes.
        shot_types: The `shot_type` values it takes; empty: the parameter is not its own.
        audio: Whether it makes a soundtrack (by default; `audio: false` turns it off).
    """

    sizes: tuple[str, ...]
    default_size: str
    durations: tuple[int, ...]
    fps: int
    default_duration: int = 5
    max_prompt_chars: int = 800
    shot_types: tuple[str, ...] = ()
    audio: bool = False


MODELS = {
    "wan2.6-t2v": Model(
        _720P + _1080P,
        "1920*1080",
        tuple(range(2, 16)),
        30,
        max_prompt_chars=1500,
        shot_types=("single", "multi"),
        audio=True,
    ),
    "wan2.5-t2v-preview": Model(
        _480P + _720P + _1080P, "1920*1080", (5, 10), 24, max_prompt_chars=2000, audio=True
    ),
    "wan2.2-t2v-plus": Model(_480P + _1080P, "1920*1080", (5,), 30),
    "wanx2.1-t2v-turbo": Model(_480P + _720P, "1280*720", (5,), 16),
    "wanx2.1-t2v-plus": Model(_720P, "1280*720", (5,), 16),
}
_ACTIVE = ("PENDING", "RUNNING")
_MAX_NEGATIVE_CHARS = 500
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


@dataclass(frozen=True)
class Submission:
    """A valid submission, and what its task makes.

    Attributes:
        parameters: Its `parameters` object as sent.
        shots: "multi" when the video is cut into shots (asked for, with prompt rewriting
            on), else "single".
        audio: Whether the video has a soundtrack.
    """

    model: str
    prompt: str
    size: str
    duration: int
    prompt_extend: bool
    parameters: dict
    shots: str
    audio: bool


@dataclass
class _Task:
    task_id: str
    model: str
    size: str
    duration: int
    shots: str
    audio: bool
    parameters: dict
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


class DashScopeAccount:
    """One DashScope account's video-synthesis tasks and limits, without the HTTP around them.

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
        tasks_created, task_prompts, submit_times, max_concurrent_observed,
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

    @property
    def origin(self) -> str:
        """Where the finished tasks' videos are served: the HTTP server knows its own port."""
        raise NotImplementedError

    # -- what tests assert -----------------------------------------------------------------

    @property
    def tasks_created(self) -> int:
        """Tasks accepted so far."""
        with self._lock:
            return len(self._tasks)

    @property
    def task_prompts(self) -> list[str]:
        """The prompt of every task created, in order (a prompt twice: a task made twice)."""
        with self._lock:
            return [task.orig_prompt for task in self._tasks.values()]

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
    def task_parameters(self) -> list[dict]:
        """The `parameters` of every task created, in order, as they were sent."""
        with self._lock:
            return [dict(task.parameters) for task in self._tasks.values()]

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
            submission = check_submission(body)
            prompt = submission.prompt
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
                model=submission.model,
                size=submission.size,
                duration=submission.duration,
                shots=submission.shots,
                audio=submission.audio,
                parameters=submission.parameters,
                orig_prompt=prompt,
                actual_prompt=clean + _EXTENSION if submission.prompt_extend else clean,
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


def check_submission(body: object) -> Submission:
    """The submission a body makes, checked as the provider documents it; `Refusal` otherwise."""
    if not isinstance(body, dict):
        raise Refusal("InvalidParameter", "The request body is not a JSON object.")
    name = body.get("model")
    if not name:
        raise Refusal("InvalidParameter", "Model not specified.")
    if name not in MODELS:
        raise Refusal("InvalidParameter", "Model not exist.")
    model = MODELS[name]
    prompts = body.get("input") if isinstance(body.get("input"), dict) else {}
    parameters = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
    prompt = _checked_prompts(model, prompts)
    size = parameters.get("size", model.default_size)
    if size not in model.sizes:
        allowed = ", ".join(f"'{s}'" for s in model.sizes)
        raise Refusal("InvalidParameter", f"The size is not match the allowed size [{allowed}]")
    duration = parameters.get("duration", model.default_duration)
    if duration not in model.durations or isinstance(duration, bool):
        raise Refusal("InvalidParameter", f"The duration must be one of {list(model.durations)}")
    seed = parameters.get("seed", 0)
    if not isinstance(seed, int) or not 0 <= seed <= 2**31 - 1:
        raise Refusal("InvalidParameter", "The seed must be in [0, 2147483647]")
    for flag in ("prompt_extend", "watermark", "audio"):
        if not isinstance(parameters.get(flag, False), bool):
            raise Refusal("InvalidParameter", f"parameters.{flag} must be a boolean")
    # shot_type and audio are documented for some models only; what the service answers when
    # another model is sent them is not. Refused here, so a client that sends them anyway
    # shows up in a test instead of being silently ignored.
    shot_type = parameters.get("shot_type", "single")
    if "shot_type" in parameters and shot_type not in model.shot_types:
        allowed = model.shot_types or "none: the model takes no shot_type"
        raise Refusal("InvalidParameter", f"parameters.shot_type must be one of {allowed}")
    if "audio" in parameters and not model.audio:
        raise Refusal("InvalidParameter", f"Model {name} does not support parameters.audio")
    extend = parameters.get("prompt_extend", True)
    return Submission(
        model=name,
        prompt=prompt,
        size=size,
        duration=int(duration),
        prompt_extend=extend,
        parameters=parameters,
        # The reference: shot_type takes effect only with prompt rewriting on.
        shots="multi" if shot_type == "multi" and extend else "single",
        audio=model.audio and parameters.get("audio", True),
    )


def _checked_prompts(model: Model, prompts: dict) -> str:
    """The prompt of an `input` whose prompts the model takes; `Refusal` otherwise."""
    prompt, negative = prompts.get("prompt"), prompts.get("negative_prompt", "")
    if not isinstance(prompt, str) or not prompt:
        raise Refusal("InvalidParameter", "Field required: input.prompt")
    if len(prompt) > model.max_prompt_chars:
        raise Refusal(
            "InvalidParameter", f"Range of input length should be [1, {model.max_prompt_chars}]"
        )
    if not isinstance(negative, str) or len(negative) > _MAX_NEGATIVE_CHARS:
        raise Refusal("InvalidParameter", "Range of negative_prompt length should be [0, 500]")
    return prompt
