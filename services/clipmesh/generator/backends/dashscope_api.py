"""DashScope's task API for Wan text-to-video: requests, retries, error codes, the models.

The provider's protocol, apart from the backend that runs a job over it (`dashscope.py`).
DashScope renders video as asynchronous tasks:

    POST {base_url}/services/aigc/video-generation/video-synthesis  (X-DashScope-Async: enable)
        → output.task_id, task_status PENDING
    GET  {base_url}/tasks/{task_id}
        → PENDING | RUNNING | SUSPENDED | SUCCEEDED (video_url) | FAILED (code) | CANCELED | UNKNOWN
    POST {base_url}/tasks/{task_id}/cancel  (PENDING tasks only)

`base_url` is `https://dashscope.aliyuncs.com/api/v1` (Beijing) or
`https://dashscope-intl.aliyuncs.com/api/v1` (Singapore); a key works only in its own region.

Retries. Polls, cancels and the download are idempotent and retried after a 429, a 5xx or any
transport error. A submission is not: if the provider received it, retrying bills a second task
we could never find. So a submit is retried only where DashScope certainly created nothing — a
429, a 500 or 503 it answered itself, or a transport error before the request went out
(`ConnectError`, `ConnectTimeout`, `PoolTimeout`). A read timeout, a dropped connection or a
502/504 from a gateway in between fails the job (`PROVIDER_UNAVAILABLE`) rather than risk it.

The API key goes into the `Authorization` header of API calls and nowhere else: not into the
result download (a presigned URL on another host), logs, `repr` or error messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from clipmesh.generator import metrics
from clipmesh.generator.backends.base import GenerationFailed, ModelLimits
from clipmesh.generator.jobs import GenerationSpec
from clipmesh.generator.ratelimit import SubmissionRate

_SUBMIT_PATH = "services/aigc/video-generation/video-synthesis"
_RETRY_CAP_S = 20.0
_RETRY_AFTER_CAP_S = 60.0
MAX_SEED = 2**31 - 1  # seeds DashScope takes: 0 to this
# Transport errors raised before any byte of the request left: a retry cannot double a task.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Answers DashScope gives itself when it refused (or failed) before creating a task.
_SUBMIT_RETRY_STATUSES = frozenset({429, 500, 503})

# Model Studio's text-to-video models, as its documentation gives them (read 2026):
#   API reference (wan2.1-2.6, the protocol here):
#     https://www.alibabacloud.com/help/en/model-studio/legacy-wan-text-to-video-api-reference
#   user guide: https://www.alibabacloud.com/help/en/model-studio/text-to-video-guide
#     (its Chinese edition on platform.qianwenai.com/docs, "文生视频", spells out the defaults)
# - `size` is `W*H` from one tier's list: 480P 832*480 480*832 624*624; 720P 1280*720
#   720*1280 960*960 1088*832 832*1088; 1080P 1920*1080 1080*1920 1440*1440 1632*1248
#   1248*1632. wan2.6-t2v has no 480P tier. Default 1920*1080 (wanx2.1: 1280*720).
# - `duration`: wan2.6-t2v any whole number of seconds 2-15 (default 5; the guide's "integer
#   durations (2-15 seconds)"; pages written for its first release, and Virginia's
#   wan2.6-t2v-us, give 5, 10 or 15, which the range holds); wan2.5-t2v-preview 5 or 10;
#   wan2.2 and wanx2.1 5.
# - Sound: wan2.5 and wan2.6 generate a soundtrack by default ("默认生成带音频的视频", no
#   audio_url needed); wan2.2 and earlier are silent. `parameters.audio` (boolean) turns it off
#   or on: the pages read here do not show its row of the parameter table, so its name and
#   type are as ComfyUI's Wan node and Novita's DashScope-compatible API send it. A caller's
#   own audio (`input.audio_url`) is not offered.
# - Multi-shot: wan2.6 only, with `"shot_type": "multi"` and `"prompt_extend": true` (the
#   reference: it takes effect only with prompt rewriting on). Default single.
# - Prompt limits: wan2.6 1,500 characters, wan2.5 2,000, wan2.2 and wanx2.1 800; negative
#   prompts 500. The provider truncates longer ones; we refuse them instead. (The 1,500 and
#   2,000 are the parameter table as copies of it give it; the table itself was not readable.)
# - Frame rates are not a request parameter: 30 (wan2.2), 24 (wan2.5) and 16 (wanx2.1) as this
#   table had them before; wan2.6's 30 is not on the pages read: the live test checks it.
# - `seed` 0-2147483647; `watermark` and `prompt_extend` booleans (prompt_extend on by default).
_480P = ((832, 480), (480, 832), (624, 624))
_720P = ((1280, 720), (720, 1280), (960, 960), (1088, 832), (832, 1088))
_1080P = ((1920, 1080), (1080, 1920), (1440, 1440), (1632, 1248), (1248, 1632))
_2_TO_15_S = tuple(float(seconds) for seconds in range(2, 16))


def _wan(
    sizes,
    durations_s,
    fps,
    *,
    max_prompt_chars: int = 800,
    multi_shot: bool = False,
    audio: bool = False,
) -> ModelLimits:
    return ModelLimits(
        sizes=sizes,
        # The provider's default: 1920*1080 where the model has it, else 1280*720.
        default_size=(1920, 1080) if (1920, 1080) in sizes else (1280, 720),
        durations_s=durations_s,
        default_duration_s=5.0,  # every model's default
        fps=(fps,),
        max_prompt_chars=max_prompt_chars,
        max_negative_prompt_chars=500,
        multi_shot=multi_shot,
        audio=audio,
    )


MODELS: dict[str, ModelLimits] = {
    "wan2.6-t2v": _wan(
        _720P + _1080P, _2_TO_15_S, 30.0, max_prompt_chars=1500, multi_shot=True, audio=True
    ),
    "wan2.5-t2v-preview": _wan(
        _480P + _720P + _1080P, (5.0, 10.0), 24.0, max_prompt_chars=2000, audio=True
    ),
    "wan2.2-t2v-plus": _wan(_480P + _1080P, (5.0,), 30.0),
    "wanx2.1-t2v-turbo": _wan(_720P + _480P, (5.0,), 16.0),
    "wanx2.1-t2v-plus": _wan(_720P, (5.0,), 16.0),
}

_EXPLANATIONS = {
    "INVALID_REQUEST": "DashScope refused the request's parameters",
    "CONTENT_REJECTED": "the provider rejected the content",
    "PROVIDER_ARREARAGE": "the DashScope account is overdue; top it up to generate again",
    "PROVIDER_AUTH": "DashScope refused the API key",
    "PROVIDER_ACCESS_DENIED": "the DashScope account may not use this model or API",
    "PROVIDER_THROTTLED": "DashScope kept throttling after every retry",
    "PROVIDER_MODEL_NOT_FOUND": "DashScope does not offer this model here",
    "PROVIDER_UNAVAILABLE": "DashScope kept failing after every retry",
    "PROVIDER_ERROR": "DashScope refused the request",
    "GENERATION_FAILED": "DashScope could not generate the video",
}


def failure_reason(code: str, http_status: int | None) -> str:
    """The job's reason for a DashScope error code; `http_status` None means a FAILED task."""
    if code == "InvalidParameter" or code.startswith("InvalidParameter."):
        return "INVALID_REQUEST"
    if code in ("DataInspectionFailed", "data_inspection_failed"):
        return "CONTENT_REJECTED"
    if code == "Arrearage":
        return "PROVIDER_ARREARAGE"
    if code == "InvalidApiKey" or http_status == 401:
        return "PROVIDER_AUTH"
    if code.startswith("AccessDenied") or http_status == 403:
        return "PROVIDER_ACCESS_DENIED"
    if code.startswith("Throttling") or http_status == 429:
        return "PROVIDER_THROTTLED"
    if code == "ModelNotFound" or http_status == 404:
        return "PROVIDER_MODEL_NOT_FOUND"
    if http_status is None:
        return "GENERATION_FAILED"
    return "PROVIDER_UNAVAILABLE" if http_status >= 500 else "PROVIDER_ERROR"


def request_body(spec: GenerationSpec) -> dict[str, Any]:
    """The submission's JSON body for a validated spec."""
    prompts = {"prompt": spec.prompt}
    if spec.negative_prompt:
        prompts["negative_prompt"] = spec.negative_prompt
    parameters: dict[str, Any] = {
        "size": f"{spec.width}*{spec.height}",
        "duration": round(spec.duration_s),
        "prompt_extend": True if spec.prompt_extend is None else spec.prompt_extend,
        "watermark": spec.watermark,
    }
    if spec.seed is not None:
        parameters["seed"] = spec.seed
    limits = MODELS.get(spec.model)
    # Sent only to the models that take them; unset leaves the model's default.
    if spec.shot_type is not None and limits is not None and limits.multi_shot:
        parameters["shot_type"] = spec.shot_type.value
    if spec.generate_audio is not None and limits is not None and limits.audio:
        parameters["audio"] = spec.generate_audio
    return {"model": spec.model, "input": prompts, "parameters": parameters}


def _output(answer: dict) -> dict:
    """The `output` object of an answer; empty when it has none (so its status reads UNKNOWN)."""
    output = answer.get("output")
    return output if isinstance(output, dict) else {}


def _retry_after_s(value: str | None) -> float | None:
    """Seconds a `Retry-After` header asks for (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class DashScopeAPI:
    """One account's calls to DashScope: submit, poll and cancel tasks, download their videos.

    Args:
        base_url: The API root, e.g. `https://dashscope-intl.aliyuncs.com/api/v1`.
        api_key: The Model Studio API key (`sk-…`); sent only in `Authorization`.
        backend: The backend's name, the label of its metrics.
        submissions_per_s: The account's task submissions a second (shared by all its keys);
            each holds its slot until DashScope answers, so arrivals keep to it.
        max_retries: Retries of one call after a 429, a 5xx or a transport error.
        retry_base_s: Backoff base: retry n waits uniform(0, retry_base_s·2ⁿ), capped at 20 s.
        request_timeout_s: Timeout of each connect, read and write of an API call.
        download_max_bytes: Largest result video accepted.
        download_timeout_s: Longest one download attempt may take in all.
        transport: An httpx transport to use instead of the network (tests).
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        backend: str,
        submissions_per_s: float = 2,
        max_retries: int = 5,
        retry_base_s: float = 0.5,
        request_timeout_s: float = 30,
        download_max_bytes: int = 500 * 2**20,
        download_timeout_s: float = 600,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("api_key is empty")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._backend = backend
        self._max_retries = max_retries
        self._retry_base_s = retry_base_s
        self._download_max_bytes = download_max_bytes
        self._download_timeout_s = download_timeout_s
        # Each submission holds its slot until DashScope answers (see ratelimit.py), so
        # arrivals at the provider keep to the limit whatever the network's delays.
        self.submissions_per_s = submissions_per_s
        self._rate = SubmissionRate(submissions_per_s, backend=backend)
        # No default headers: the key is added per API call so the download never carries it.
        self._client = httpx.AsyncClient(
            base_url=self.base_url + "/",
            timeout=httpx.Timeout(request_timeout_s),
            transport=transport,
        )

    def use_submission_rate(self, rate) -> None:
        """Spaces submissions with `rate` (the gateway's, shared by its replicas)."""
        self._rate = rate

    def __repr__(self) -> str:
        return f"DashScopeAPI(base_url={self.base_url!r})"

    async def submit(
        self, spec: GenerationSpec, before_send: Callable[[], Awaitable[None]] | None = None
    ) -> dict:
        """Submits a task for a validated spec; the answer's `output` (with its `task_id`).
        `before_send` is awaited once the submission holds its rate slot, just before each
        attempt leaves: from then on the provider may have the task."""
        answer = await self._call(
            "POST", _SUBMIT_PATH, body=request_body(spec), submit=True, before_send=before_send
        )
        return _output(answer)

    async def poll(self, task_id: str) -> dict:
        """The task's `output` now: its `task_status`, and its `video_url` once it SUCCEEDED."""
        return _output(await self._call("GET", f"tasks/{quote(task_id, safe='')}"))

    async def cancel(self, task_id: str) -> None:
        """Asks DashScope to cancel a task; raises `GenerationFailed` when it refuses."""
        await self._call("POST", f"tasks/{quote(task_id, safe='')}/cancel")

    async def close(self) -> None:
        """Closes the HTTP connections."""
        await self._client.aclose()

    async def download(self, url: str, path: Path) -> None:
        """Fetches the result at once: DashScope's video_url expires after 24 h."""
        for attempt in range(self._max_retries + 1):
            try:
                async with asyncio.timeout(self._download_timeout_s):
                    status = await self._download_once(url, path)
            except (httpx.TransportError, TimeoutError) as exc:
                problem = type(exc).__name__
            else:
                if status < 400:
                    return
                if status in (403, 404, 410):
                    raise GenerationFailed(
                        "PROVIDER_RESULT_EXPIRED",
                        f"DashScope's video URL answered HTTP {status}: the result has expired "
                        "or is gone (video URLs live 24 h)",
                    )
                if status < 500:
                    raise GenerationFailed(
                        "PROVIDER_DOWNLOAD_FAILED", f"downloading the video failed: HTTP {status}"
                    )
                problem = f"HTTP {status}"
            metrics.PROVIDER_ERRORS.labels(self._backend, "DownloadFailed").inc()
            if attempt == self._max_retries:
                raise GenerationFailed(
                    "PROVIDER_DOWNLOAD_FAILED",
                    f"downloading the video failed {attempt + 1} times ({problem})",
                )
            await self._backoff(attempt, None)

    async def _download_once(self, url: str, path: Path) -> int:
        # Absolute URL and no Authorization: it is presigned, and the key must not leave for
        # the file host.
        async with self._client.stream("GET", url, follow_redirects=True) as response:
            if response.status_code >= 400:
                return response.status_code
            if int(response.headers.get("Content-Length") or 0) > self._download_max_bytes:
                raise self._too_large()
            size_bytes = 0
            file = await asyncio.to_thread(path.open, "wb")
            try:
                async for chunk in response.aiter_bytes(1 << 20):
                    size_bytes += len(chunk)
                    if size_bytes > self._download_max_bytes:
                        raise self._too_large()
                    await asyncio.to_thread(file.write, chunk)
            finally:
                await asyncio.to_thread(file.close)
            return response.status_code

    def _too_large(self) -> GenerationFailed:
        limit_mb = self._download_max_bytes / 2**20
        return GenerationFailed(
            "PROVIDER_RESULT_TOO_LARGE", f"DashScope's video is larger than {limit_mb:g} MiB"
        )

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: dict | None = None,
        submit: bool = False,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> dict:
        """One API call, retried as the module docstring says; the JSON of its 2xx answer."""
        headers = {"Authorization": f"Bearer {self._api_key}"}
        if submit:
            headers |= {"Content-Type": "application/json", "X-DashScope-Async": "enable"}
        for attempt in range(self._max_retries + 1):
            try:
                # Every submit attempt counts against the account's limit; polls do not.
                async with self._rate.slot() if submit else contextlib.nullcontext():
                    if before_send is not None:
                        await before_send()
                    response = await self._client.request(method, path, json=body, headers=headers)
            except httpx.TransportError as exc:
                problem = type(exc).__name__
                metrics.PROVIDER_ERRORS.labels(self._backend, problem).inc()
                if submit and not isinstance(exc, _NOT_SENT):
                    raise GenerationFailed(
                        "PROVIDER_UNAVAILABLE",
                        f"submitting to DashScope failed ({problem}) after the request may have "
                        "reached it; not retried, so as not to start a second billed task",
                    ) from exc
                if attempt == self._max_retries:
                    raise GenerationFailed(
                        "PROVIDER_UNAVAILABLE",
                        f"DashScope unreachable after {attempt + 1} attempts ({problem})",
                    ) from exc
                await self._backoff(attempt, None)
                continue
            if response.is_success:
                return self._json(response)
            code, message = self._error_of(response)
            metrics.PROVIDER_ERRORS.labels(self._backend, code).inc()
            status = response.status_code
            retryable = (
                status in _SUBMIT_RETRY_STATUSES if submit else status == 429 or status >= 500
            )
            if not retryable or attempt == self._max_retries:
                raise self.failure(code, message, status)
            await self._backoff(attempt, response.headers.get("Retry-After"))
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _backoff(self, attempt: int, retry_after: str | None) -> None:
        """Full-jitter exponential backoff, at least as long as a `Retry-After` asks."""
        metrics.PROVIDER_RETRIES.labels(self._backend).inc()
        delay_s = random.uniform(0, min(_RETRY_CAP_S, self._retry_base_s * 2**attempt))
        asked_s = _retry_after_s(retry_after)
        if asked_s is not None:
            delay_s = min(max(delay_s, asked_s), _RETRY_AFTER_CAP_S)
        await asyncio.sleep(delay_s)

    def _json(self, response: httpx.Response) -> dict:
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise GenerationFailed("PROVIDER_ERROR", "DashScope answered something other than JSON")
        return answer

    def _error_of(self, response: httpx.Response) -> tuple[str, str]:
        """(code, message) of an error answer; the code is `HTTP<status>` when it has none."""
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        code = str(answer.get("code") or f"HTTP{response.status_code}")
        return code, str(answer.get("message") or response.reason_phrase)

    def failure(self, code: str, message: str, http_status: int | None) -> GenerationFailed:
        """The job's failure for a DashScope error code; `http_status` None means a FAILED task."""
        reason = failure_reason(code, http_status)
        # The provider's message is shown as given, less anything that looks like our key.
        detail = message.replace(self._api_key, "***")[:300]
        text = f"{_EXPLANATIONS[reason]} ({code or 'no code'}: {detail or 'no message'})"
        return GenerationFailed(reason, text, provider_code=code)
