"""`GeneratorClient`: text-to-video jobs on the public API, with live progress.

    from clipmesh_client.generation import GeneratorClient

    with GeneratorClient("127.0.0.1:50050", token=TOKEN, credentials=CA) as generator:
        for event in generator.generate("a slow push in on a lighthouse at dusk", duration_s=5,
                                        idempotency_key="shot-12"):
            print(event.job.state, event.job.progress, event.message)
        generator.download_output(event.job.job_id, "shot-12.mp4")

The public API (the orchestrator, port 50050) checks the caller's `generate` role and relays
each call to the generator gateway; the gateway's own port (50053) is internal, behind mutual
TLS in production, though a client with a certificate of the mesh may still call it directly.
A job outlives its stream: leave the loop (or lose the connection) and `watch(job_id)` picks it
up again. The same `idempotency_key` with the same request returns the same job, so a retry
after a network failure never starts — or pays for — a second generation. With `webhook_url`
the job's end is also announced by a signed POST (`clipmesh_client.webhooks.verify` checks it).

`AsyncGeneratorClient` (async_generation.py) is the asyncio form, with the same arguments, methods
and errors; both build their requests and read the answers with the functions here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc

from clipmesh_api.common.v1 import common_pb2
from clipmesh_api.generator.v1 import generator_pb2, generator_pb2_grpc
from clipmesh_client.blocking import BlockingServiceClient, ServiceClientBase
from clipmesh_client.errors import ClipmeshError, typed_errors
from clipmesh_client.models import QuotaUsage, quota_usage_from_proto

DEFAULT_GATEWAY_TARGET = "127.0.0.1:50050"
"""The public API (the orchestrator), which relays generation to the gateway."""
_STATE_PREFIX = "JOB_STATE_"
_OUTCOME_PREFIX = "CANCEL_OUTCOME_"
FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True)
class GenerationJob:
    """A generation job as the gateway reports it.

    Attributes:
        job_id: The job's identifier.
        state: "queued", "running", "succeeded", "failed" or "cancelled".
        backend: The backend running it.
        model: The backend's model.
        prompt: The prompt as given.
        actual_prompt: The prompt the provider used after rewriting, or "".
        progress: Fraction done, 0 to 1 (0 while the backend reports none).
        queue_position: Jobs ahead of it while queued.
        eta_s: Estimated seconds until it ends, or None when unknown.
        uri: The result's `file://` URI in the gateway's store, once succeeded.
        sha256: The result's content hash, once succeeded.
        size: (width, height) of the result or the request.
        duration_s: Duration of the result or the request.
        fps: Frame rate of the result or the request.
        cache_hit: True when the result came from the gateway's content cache.
        error_reason: Why it failed ("CONTENT_REJECTED", …), or "".
        error_message: The explanation for people, or "".
        provider_code: The provider's own error code, or "".
        provider_task_id: The provider's task id, once submitted.
        created_at: When it was submitted (UTC).
        labels: The request's labels.
        caller: Who submitted and owns it (the identity its token proved).
        webhook_url: Where its end is announced by a signed POST, or "".
    """

    job_id: str
    state: str
    backend: str = ""
    model: str = ""
    prompt: str = ""
    actual_prompt: str = ""
    progress: float = 0.0
    queue_position: int = 0
    eta_s: float | None = None
    uri: str = ""
    sha256: str = ""
    size: tuple[int, int] = (0, 0)
    duration_s: float = 0.0
    fps: float = 0.0
    cache_hit: bool = False
    error_reason: str = ""
    error_message: str = ""
    provider_code: str = ""
    provider_task_id: str = ""
    created_at: datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)
    caller: str = ""
    webhook_url: str = ""

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES


@dataclass(frozen=True)
class JobEvent:
    """One step of a job: the job as it stands, and a note on what happened."""

    job: GenerationJob
    message: str
    at: datetime | None = None


def job_from_proto(job: generator_pb2.Job) -> GenerationJob:
    """The `GenerationJob` for its protobuf."""
    succeeded = job.state == generator_pb2.JOB_STATE_SUCCEEDED
    spec, result = job.spec, job.result
    return GenerationJob(
        job_id=job.job_id,
        state=generator_pb2.JobState.Name(job.state).removeprefix(_STATE_PREFIX).lower(),
        backend=job.backend,
        model=spec.model,
        prompt=job.orig_prompt or spec.prompt,
        actual_prompt=job.actual_prompt,
        progress=job.progress,
        queue_position=job.queue_position,
        eta_s=job.eta_s if job.eta_s >= 0 else None,
        uri=result.uri,
        sha256=result.sha256,
        size=(result.width, result.height) if succeeded else (spec.width, spec.height),
        duration_s=result.duration_s if succeeded else spec.duration_s,
        fps=result.fps if succeeded else spec.fps,
        cache_hit=result.cache_hit,
        error_reason=job.error.reason,
        error_message=job.error.message,
        provider_code=job.error.provider_code,
        provider_task_id=job.provider_task_id,
        created_at=job.create_time.ToDatetime(tzinfo=UTC) if job.HasField("create_time") else None,
        labels=dict(spec.labels),
        caller=job.caller,
        webhook_url=job.webhook_url,
    )


def event_from_proto(
    response: generator_pb2.GenerateResponse | generator_pb2.WatchJobResponse,
) -> JobEvent:
    """The `JobEvent` of one Generate or WatchJob response."""
    event = response.event
    at = event.event_time.ToDatetime(tzinfo=UTC) if event.HasField("event_time") else None
    return JobEvent(job_from_proto(event.job), event.message, at)


# `shot_type` names: "" leaves it to the model (one continuous shot).
SHOT_TYPES = {
    "": generator_pb2.SHOT_TYPE_UNSPECIFIED,
    "single": generator_pb2.SHOT_TYPE_SINGLE,
    "multi": generator_pb2.SHOT_TYPE_MULTI,
}


def generate_request(
    prompt: str,
    *,
    negative_prompt: str = "",
    backend: str = "",
    model: str = "",
    size: tuple[int, int] = (0, 0),
    duration_s: float = 0.0,
    fps: float = 0.0,
    seed: int | None = None,
    prompt_extend: bool | None = None,
    watermark: bool = False,
    labels: Mapping[str, str] | None = None,
    idempotency_key: str = "",
    webhook_url: str = "",
    shot_type: str = "",
    generate_audio: bool | None = None,
) -> generator_pb2.GenerateRequest:
    """The GenerateRequest of `GeneratorClient.generate`'s arguments.

    Raises:
        ValueError: `shot_type` is not "", "single" or "multi".
    """
    if shot_type not in SHOT_TYPES:
        raise ValueError(f"shot_type must be one of {sorted(SHOT_TYPES)}, not {shot_type!r}")
    spec = generator_pb2.GenerationSpec(
        prompt=prompt,
        negative_prompt=negative_prompt,
        backend=backend,
        model=model,
        width=size[0],
        height=size[1],
        duration_s=duration_s,
        fps=fps,
        watermark=watermark,
        labels=dict(labels or {}),
    )
    if seed is not None:
        spec.seed = seed
    if prompt_extend is not None:
        spec.prompt_extend = prompt_extend
    spec.shot_type = SHOT_TYPES[shot_type]
    if generate_audio is not None:
        spec.generate_audio = generate_audio
    return generator_pb2.GenerateRequest(
        spec=spec, idempotency_key=idempotency_key, webhook_url=webhook_url
    )


def list_jobs_request(
    states: Sequence[str], backend: str, page_size: int
) -> generator_pb2.ListJobsRequest:
    """The first page's request of `list_jobs`; `next_jobs_page` gives the next ones.

    Raises:
        ValueError: A state name that is not a job state.
    """
    try:
        values = [generator_pb2.JobState.Value(_STATE_PREFIX + s.upper()) for s in states]
    except ValueError as exc:
        raise ValueError(f"unknown job state in {list(states)}") from exc
    return generator_pb2.ListJobsRequest(
        states=values, backend=backend, page=common_pb2.PageRequest(page_size=page_size)
    )


def next_jobs_page(
    request: generator_pb2.ListJobsRequest, response: generator_pb2.ListJobsResponse
) -> generator_pb2.ListJobsRequest | None:
    """The request of the page after `response`, or None after the last page."""
    token = response.page.next_page_token
    if not token:
        return None
    following = generator_pb2.ListJobsRequest()
    following.CopyFrom(request)
    following.page.page_token = token
    return following


def cancel_result(response: generator_pb2.CancelJobResponse) -> tuple[GenerationJob, str]:
    """The job and the outcome ("cancelled", "requested", "not_cancellable") of CancelJob."""
    outcome = generator_pb2.CancelOutcome.Name(response.outcome)
    return job_from_proto(response.job), outcome.removeprefix(_OUTCOME_PREFIX).lower()


class OutputDownload:
    """A job's video arriving in chunks: written beside `destination`, checked against the
    SHA-256 the gateway sends, then renamed into place.

    Use as a context manager (the partial file is closed on leaving), `write` each response,
    then `finish`.
    """

    def __init__(self, job_id: str, destination: str | Path) -> None:
        self.job_id = job_id
        self.destination = Path(destination)
        self._partial = self.destination.with_name(self.destination.name + ".part")
        self._digest = hashlib.sha256()
        self._expected = ""
        self._handle = None

    def __enter__(self) -> OutputDownload:
        self._handle = self._partial.open("wb")
        return self

    def __exit__(self, *exc_info) -> None:
        self._handle.close()

    def write(self, response: generator_pb2.DownloadJobOutputResponse) -> None:
        self._handle.write(response.chunk)
        self._digest.update(response.chunk)
        self._expected = response.sha256

    def finish(self) -> Path:
        """Renames the checked file into place.

        Raises:
            ClipmeshError: The bytes do not match the gateway's SHA-256 (the partial file is
                removed).
        """
        if self._digest.hexdigest() != self._expected:
            self._partial.unlink(missing_ok=True)
            raise ClipmeshError(f"the download of job {self.job_id} does not match its SHA-256")
        self._partial.replace(self.destination)
        return self.destination


class GeneratorServiceBase(ServiceClientBase):
    """The default address, settings and stub that `GeneratorClient` and
    `AsyncGeneratorClient` share (see `GeneratorClient` for the arguments)."""

    def __init__(
        self,
        target: str = DEFAULT_GATEWAY_TARGET,
        *,
        timeout_s: float = 10.0,
        stream_timeout_s: float = 3600.0,
        caller: str = "",
        max_attempts: int = 3,
        credentials: grpc.ChannelCredentials | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        token: str | None = None,
    ) -> None:
        super().__init__(
            target,
            timeout_s=timeout_s,
            stream_timeout_s=stream_timeout_s,
            caller=caller,
            max_attempts=max_attempts,
            credentials=credentials,
            metadata=metadata,
            token=token,
        )
        self._stub = generator_pb2_grpc.GeneratorServiceStub(self._channel)


class GeneratorClient(GeneratorServiceBase, BlockingServiceClient):
    """A blocking client of generation jobs: the public API's GeneratorService.

    Args:
        target: `host:port` of the public API (default `127.0.0.1:50050`, the orchestrator),
            or of the generator gateway itself where the mesh lets you reach it (50053).
        timeout_s: Deadline of each unary call that sets none of its own.
        stream_timeout_s: Deadline of a generate/watch stream (generation takes minutes).
        caller: Sent as `x-clipmesh-caller` where authentication is off; jobs and quotas are
            kept per caller. With a token, the identity the token proves wins.
        max_attempts: Attempts of a call that fails UNAVAILABLE (1 = no retry).
        credentials: TLS credentials, or None for plaintext.
        metadata: Further headers sent with every call.
        token: Bearer token of a mesh with token auth on (over TLS only).
    """

    def generate(
        self,
        prompt: str,
        *,
        negative_prompt: str = "",
        backend: str = "",
        model: str = "",
        size: tuple[int, int] = (0, 0),
        duration_s: float = 0.0,
        fps: float = 0.0,
        seed: int | None = None,
        prompt_extend: bool | None = None,
        watermark: bool = False,
        labels: Mapping[str, str] | None = None,
        idempotency_key: str = "",
        webhook_url: str = "",
        shot_type: str = "",
        generate_audio: bool | None = None,
        timeout_s: float | None = None,
    ) -> Iterator[JobEvent]:
        """Submits a job and yields its events until it ends (0 / "" mean the defaults).

        `webhook_url` (https, a host the policy allows) receives a signed POST when the job
        ends; the policy must hold a webhook secret for the caller. `shot_type="multi"` asks
        for several shots the model cuts between (models that offer it, e.g. DashScope
        wan2.6-t2v); `generate_audio` turns a model's soundtrack on or off (None: its default).

        Raises:
            QuotaExceededError: A quota of the caller (jobs at once, provider seconds today)
                refused the job.
            PermissionDeniedError: The caller holds no `generate` role.
        """
        request = generate_request(
            prompt,
            negative_prompt=negative_prompt,
            backend=backend,
            model=model,
            size=size,
            duration_s=duration_s,
            fps=fps,
            seed=seed,
            prompt_extend=prompt_extend,
            watermark=watermark,
            labels=labels,
            idempotency_key=idempotency_key,
            webhook_url=webhook_url,
            shot_type=shot_type,
            generate_audio=generate_audio,
        )
        call = self._stub.Generate(request, **self._options(timeout_s, stream=True))
        # Leaving the loop early stops the stream; the job goes on.
        return self._stream(call, event_from_proto)

    def watch(self, job_id: str, *, timeout_s: float | None = None) -> Iterator[JobEvent]:
        """Re-attaches to a job and yields its events until it ends."""
        request = generator_pb2.WatchJobRequest(job_id=job_id)
        call = self._stub.WatchJob(request, **self._options(timeout_s, stream=True))
        return self._stream(call, event_from_proto)

    def get_job(self, job_id: str, *, timeout_s: float | None = None) -> GenerationJob:
        with typed_errors():
            response = self._stub.GetJob(
                generator_pb2.GetJobRequest(job_id=job_id), **self._options(timeout_s)
            )
        return job_from_proto(response.job)

    def cancel_job(
        self, job_id: str, *, timeout_s: float | None = None
    ) -> tuple[GenerationJob, str]:
        """Cancels a job; returns it and the outcome: "cancelled", "requested" (the backend
        was asked; the job may still finish) or "not_cancellable"."""
        with typed_errors():
            response = self._stub.CancelJob(
                generator_pb2.CancelJobRequest(job_id=job_id), **self._options(timeout_s)
            )
        return cancel_result(response)

    def list_jobs(
        self,
        *,
        states: Sequence[str] = (),
        backend: str = "",
        page_size: int = 50,
        timeout_s: float | None = None,
    ) -> Iterator[GenerationJob]:
        """Jobs newest first, filtered by state names ("running", …) and backend; pages are
        fetched as iteration needs them."""
        request = list_jobs_request(states, backend, page_size)
        return self._job_pages(request, timeout_s)

    def _job_pages(
        self, request: generator_pb2.ListJobsRequest | None, timeout_s: float | None
    ) -> Iterator[GenerationJob]:
        while request is not None:
            with typed_errors():
                response = self._stub.ListJobs(request, **self._options(timeout_s))
            yield from map(job_from_proto, response.jobs)
            request = next_jobs_page(request, response)

    def download_output(
        self, job_id: str, destination: str | Path, *, timeout_s: float | None = None
    ) -> Path:
        """Writes a succeeded job's video to `destination` and checks its SHA-256."""
        request = generator_pb2.DownloadJobOutputRequest(job_id=job_id)
        with typed_errors(), OutputDownload(job_id, destination) as download:
            for response in self._stub.DownloadJobOutput(
                request, **self._options(timeout_s, stream=True)
            ):
                download.write(response)
        return download.finish()

    def delete_output(self, job_id: str, *, timeout_s: float | None = None) -> bool:
        """Deletes a job's video; True when the file itself was removed."""
        with typed_errors():
            response = self._stub.DeleteJobOutput(
                generator_pb2.DeleteJobOutputRequest(job_id=job_id), **self._options(timeout_s)
            )
        return response.file_removed

    def usage(self, *, timeout_s: float | None = None) -> list[QuotaUsage]:
        """The caller's generation quotas: provider video-seconds today and jobs at once."""
        with typed_errors():
            response = self._stub.GetUsage(
                generator_pb2.GetUsageRequest(), **self._options(timeout_s)
            )
        return [quota_usage_from_proto(quota) for quota in response.quotas]
