"""One clip from the generator gateway: submit, follow its events, download the output.

Every call carries an idempotency key made from the clip's place in the project (project,
shot, revision, variant, attempt), so a Generate stream cut off by a network error is simply
called again and re-attaches to the same job instead of paying for a second one. The gateway's
queue and per-caller limits set the pace; a full queue (RESOURCE_EXHAUSTED) is waited out for
the time the gateway asks. The output is copied into the project's folder, checked against the
gateway's SHA-256 and renamed into place, so a clip file on disk is always whole.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from clipmesh.orchestrator.dependencies import Dependencies, translate
from clipmesh_api.generator.v1 import generator_pb2
from clipmesh_client.blocking import CALLER_HEADER

log = logging.getLogger(__name__)

STREAM_RETRIES = 3
MAX_QUEUE_WAITS = 20


class ClipFailed(Exception):
    """The gateway could not make this clip; `reason` and `message` say why."""

    def __init__(self, reason: str, message: str, *, retryable: bool) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason, self.message, self.retryable = reason, message, retryable


@dataclass(frozen=True)
class MadeClip:
    """A generated clip, copied into the project."""

    path: Path
    job_id: str
    actual_prompt: str
    duration_s: float
    cache_hit: bool


class ClipMaker:
    """Makes clips on the gateway for one orchestrator.

    Args:
        deps: The orchestrator's dependencies; the gateway's stub is looked up per call, so
            channels renewed with a new client certificate are used at once.
        gate: Bounds the clips in flight from this orchestrator across all projects.
        job_timeout_s: Longest one clip may take, queueing included.
    """

    def __init__(
        self,
        deps: Dependencies,
        gate: asyncio.Semaphore,
        job_timeout_s: float,
    ) -> None:
        self._deps, self._gate, self._timeout_s = deps, gate, job_timeout_s

    async def make(
        self,
        spec: generator_pb2.GenerationSpec,
        *,
        key: str,
        caller: str,
        destination: Path,
        on_event: Callable[[generator_pb2.Job], Awaitable[None]] | None = None,
    ) -> MadeClip:
        """Generates `spec` and writes the clip to `destination`.

        Raises:
            ClipFailed: The job failed or was refused; `retryable` is False when the same spec
                would be refused again (an invalid spec, an unavailable backend).
        """
        async with self._gate:
            job = await self._follow(spec, key, caller, on_event)
            await self._download(job, destination)
        return MadeClip(
            destination,
            job.job_id,
            job.actual_prompt,
            job.result.duration_s,
            job.result.cache_hit,
        )

    async def _follow(self, spec, key, caller, on_event) -> generator_pb2.Job:
        metadata = ((CALLER_HEADER, caller),)
        request = generator_pb2.GenerateRequest(spec=spec, idempotency_key=key)
        stream_failures = queue_waits = 0
        while True:
            job = None
            try:
                call = self._deps.generator.Generate(
                    request, timeout=self._timeout_s, metadata=metadata
                )
                async for response in call:
                    job = response.event.job
                    if on_event is not None:
                        await on_event(job)
            except grpc.RpcError as error:
                code = error.code()
                if code == grpc.StatusCode.RESOURCE_EXHAUSTED and queue_waits < MAX_QUEUE_WAITS:
                    queue_waits += 1
                    typed = translate(error, "generator")
                    await asyncio.sleep(min(30.0, typed.retry_after_s or 1.0))
                    continue
                if code == grpc.StatusCode.UNAVAILABLE and stream_failures < STREAM_RETRIES:
                    stream_failures += 1  # the same key re-attaches to the same job
                    await asyncio.sleep(0.5 * 2**stream_failures)
                    continue
                typed = translate(error, "generator")
                retryable = code not in (
                    grpc.StatusCode.INVALID_ARGUMENT,
                    grpc.StatusCode.FAILED_PRECONDITION,
                )
                raise ClipFailed(
                    typed.reason or code.name, typed.message, retryable=retryable
                ) from error
            if job is None:
                raise ClipFailed("GENERATOR_FAILED", "the gateway sent no events", retryable=True)
            if job.state == generator_pb2.JOB_STATE_SUCCEEDED:
                return job
            if job.state in (generator_pb2.JOB_STATE_FAILED, generator_pb2.JOB_STATE_CANCELLED):
                reason = job.error.reason or generator_pb2.JobState.Name(job.state)
                raise ClipFailed(reason, job.error.message or "the job ended", retryable=True)
            # The stream ended before the job did (a gateway restart): follow it again.
            stream_failures += 1
            if stream_failures > STREAM_RETRIES:
                raise ClipFailed("GENERATOR_FAILED", "the job's stream kept ending", retryable=True)

    async def _download(self, job: generator_pb2.Job, destination: Path) -> None:
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(destination.name + ".part")
        digest = hashlib.sha256()
        try:
            with partial.open("wb") as out:
                call = self._deps.generator.DownloadJobOutput(
                    generator_pb2.DownloadJobOutputRequest(job_id=job.job_id),
                    timeout=self._timeout_s,
                )
                async for response in call:
                    digest.update(response.chunk)
                    await asyncio.to_thread(out.write, response.chunk)
            if job.result.sha256 and digest.hexdigest() != job.result.sha256:
                raise ClipFailed(
                    "DOWNLOAD_CORRUPT",
                    f"job {job.job_id}: downloaded bytes do not match the gateway's SHA-256",
                    retryable=True,
                )
            os.replace(partial, destination)
        except grpc.RpcError as error:
            typed = translate(error, "generator")
            raise ClipFailed(
                typed.reason or "DOWNLOAD_FAILED", typed.message, retryable=True
            ) from error
        finally:
            partial.unlink(missing_ok=True)
