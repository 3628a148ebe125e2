"""The gateway's domain: what a generation asks for, the job that makes it, and its events.

The gateway edits a `Job` in place while it runs; the store keeps it as JSON (`store.py`),
backends read its `GenerationSpec`, and the servicer answers with its API form
(`convert.py`). Field by field they mean what `protos/clipmesh/generator/v1/generator.proto`
documents; times are Unix seconds (0: not yet).
"""

from __future__ import annotations

import copy
import enum
import hashlib
import time
from dataclasses import dataclass, field

import msgspec


class JobState(enum.Enum):
    """Where a job is; the last three are final."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ENDED_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


class ShotType(enum.Enum):
    """How a clip is cut: one continuous shot, or several the model cuts between."""

    SINGLE = "single"
    MULTI = "multi"


class CancelOutcome(enum.Enum):
    """What a cancel achieved."""

    CANCELLED = "cancelled"
    REQUESTED = "requested"  # the backend was asked; the job may still finish
    NOT_CANCELLABLE = "not_cancellable"


@dataclass(frozen=True)
class GenerationSpec:
    """What to generate; 0 and "" mean the backend's defaults until `Backend.validate` fills
    them in. `seed`, `prompt_extend`, `shot_type` and `generate_audio` are None when not given
    (the model's default, which the backend's request to the provider leaves to it)."""

    prompt: str
    negative_prompt: str = ""
    backend: str = ""
    model: str = ""
    width: int = 0
    height: int = 0
    duration_s: float = 0.0
    fps: float = 0.0
    seed: int | None = None
    prompt_extend: bool | None = None
    watermark: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    shot_type: ShotType | None = None
    generate_audio: bool | None = None


# Spec fields added after idempotency digests were first stored: left out of a digest while
# unset, so a request retried across an upgrade still matches its job.
_LATER_FIELDS = ("shot_type", "generate_audio")


@dataclass(frozen=True)
class GenerationResult:
    """A finished video in the gateway's output store, addressed by its content."""

    uri: str
    duration_s: float
    fps: float
    width: int
    height: int
    size_bytes: int
    sha256: str
    cache_hit: bool = False


@dataclass(frozen=True)
class JobError:
    """Why a job failed: a stable reason, a message, and the provider's own code."""

    reason: str
    message: str
    provider_code: str = ""


@dataclass
class Job:
    """One generation, from submission to its end."""

    job_id: str
    spec: GenerationSpec
    idempotency_key: str = ""
    backend: str = ""
    state: JobState = JobState.QUEUED
    progress: float = 0.0
    queue_position: int = 0
    eta_s: float = 0.0
    result: GenerationResult | None = None
    error: JobError | None = None
    orig_prompt: str = ""
    actual_prompt: str = ""
    provider_task_id: str = ""
    create_time_s: float = 0.0
    start_time_s: float = 0.0
    end_time_s: float = 0.0
    output_deleted: bool = False
    caller: str = ""
    webhook_url: str = ""

    def snapshot(self) -> Job:
        """A copy that later changes to this job leave alone."""
        return copy.copy(self)  # the nested records are frozen


@dataclass(frozen=True)
class JobEvent:
    """A job as it stood at `time_s`, and what had just happened."""

    job: Job
    message: str
    time_s: float


def job_event(job: Job, message: str) -> JobEvent:
    """An event carrying a copy of `job` as it stands now."""
    return JobEvent(job.snapshot(), message, time.time())


def state_name(state: JobState) -> str:
    """The state's lowercase name, as metrics and messages use it."""
    return state.value


def request_digest(spec: GenerationSpec, webhook_url: str = "") -> str:
    """The digest an idempotency key is held to: the same key must come with the same spec (and
    the same webhook; a request without one digests as it did before webhooks existed)."""
    fields = msgspec.to_builtins(spec, order="deterministic")
    for name in _LATER_FIELDS:
        if fields[name] is None:
            del fields[name]
    digest = hashlib.sha256(msgspec.json.encode(fields))
    if webhook_url:
        digest.update(b"\0webhook\0" + webhook_url.encode())
    return digest.hexdigest()
