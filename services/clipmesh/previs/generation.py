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

from clipmesh.generator.client import GatewayClient
from clipmesh.generator.jobs import GenerationSpec, Job, JobState
from clipmesh.runtime.errors import (
    FailedPrecondition,
    InvalidArgument,
    ResourceExhausted,
    ServiceError,
    Unavailable,
)

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
    """Makes clips on the gateway for one previs service.

    Args:
        gateway: The generator gateway's client.
        gate: Bounds the clips in flight from this service across all projects.
        job_timeout_s: Longest one clip may take, queueing included.
    """

    def __init__(
        self, gateway: GatewayClient, gate: asyncio.Semaphore, job_timeout_s: float
    ) -> None:
        self._gateway, self._gate, self._timeout_s = gateway, gate, job_timeout_s

    async def make(
        self,
        spec: GenerationSpec,
        *,
        key: str,
        caller: str,
        destination: Path,
        on_event: Callable[[Job], Awaitable[None]] | None = None,
    ) -> MadeClip:
        """Generates `spec` and writes the clip to `destination`.

        Raises:
            ClipFailed: The job failed or was refused; `retryable` is False when the same spec
                would be refused again (an invalid spec, an unavailable backend).
        """
        async with self._gate:
            job = await self._follow(spec, key, caller, on_event)
            await self._download(job, caller, destination)
        assert job.result is not None  # a succeeded job has its result
        return MadeClip(
            destination,
            job.job_id,
            job.actual_prompt,
            job.result.duration_s,
            job.result.cache_hit,
        )

    async def _follow(self, spec, key, caller, on_event) -> Job:
        stream_failures = queue_waits = 0
        while True:
            job = None
            try:
                async for event in self._gateway.generate(
                    spec, idempotency_key=key, caller=caller, timeout_s=self._timeout_s
                ):
                    job = event.job
                    if on_event is not None:
                        await on_event(job)
            except ResourceExhausted as error:
                if error.reason == "QUOTA_EXCEEDED":  # a daily quota: waiting cannot help
                    raise ClipFailed(error.reason, error.message, retryable=False) from error
                if queue_waits >= MAX_QUEUE_WAITS:
                    raise ClipFailed(error.reason, error.message, retryable=True) from error
                queue_waits += 1
                await asyncio.sleep(min(30.0, error.retry_after_s or 1.0))
                continue
            except Unavailable as error:
                if stream_failures >= STREAM_RETRIES:
                    raise ClipFailed(error.reason, error.message, retryable=True) from error
                stream_failures += 1  # the same key re-attaches to the same job
                await asyncio.sleep(0.5 * 2**stream_failures)
                continue
            except ServiceError as error:
                retryable = not isinstance(error, InvalidArgument | FailedPrecondition)
                raise ClipFailed(error.reason, error.message, retryable=retryable) from error
            if _succeeded(job):
                return job
            # The stream ended before the job did (a gateway restart): follow it again.
            stream_failures += 1
            if stream_failures > STREAM_RETRIES:
                raise ClipFailed("GENERATOR_FAILED", "the job's stream kept ending", retryable=True)

    async def _download(self, job: Job, caller: str, destination: Path) -> None:
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(destination.name + ".part")
        digest = hashlib.sha256()
        expected = job.result.sha256 if job.result else ""
        try:
            with partial.open("wb") as out:
                async for chunk in self._gateway.download_output(
                    job.job_id, caller=caller, timeout_s=self._timeout_s
                ):
                    digest.update(chunk)
                    await asyncio.to_thread(out.write, chunk)
            if expected and digest.hexdigest() != expected:
                raise ClipFailed(
                    "DOWNLOAD_CORRUPT",
                    f"job {job.job_id}: downloaded bytes do not match the gateway's SHA-256",
                    retryable=True,
                )
            os.replace(partial, destination)
        except ServiceError as error:
            raise ClipFailed(
                error.reason or "DOWNLOAD_FAILED", error.message, retryable=True
            ) from error
        finally:
            partial.unlink(missing_ok=True)


def _succeeded(job: Job | None) -> bool:
    """True for a succeeded job, False for one still going; ClipFailed for one that failed."""
    if job is None:
        raise ClipFailed("GENERATOR_FAILED", "the gateway sent no events", retryable=True)
    if job.state in (JobState.FAILED, JobState.CANCELLED):
        reason = job.error.reason if job.error else f"JOB_STATE_{job.state.name}"
        message = job.error.message if job.error else "the job ended"
        raise ClipFailed(reason, message or "the job ended", retryable=True)
    return job.state == JobState.SUCCEEDED
