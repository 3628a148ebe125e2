"""Generation records in their API form and back.

Both directions live here because both sides of the gateway use them: its servicer, and the
typed client other services call it with (`client.py`); the store reads jobs written by
earlier releases, which kept the API form, with `job_from_proto`.
"""

from __future__ import annotations

from clipmesh.generator.jobs import (
    CancelOutcome,
    GenerationResult,
    GenerationSpec,
    Job,
    JobError,
    JobEvent,
    JobState,
)
from clipmesh.runtime.timestamps import seconds_of, timestamp
from clipmesh_api.generator.v1 import generator_pb2

STATE_CODES = {state: generator_pb2.JobState.Value(f"JOB_STATE_{state.name}") for state in JobState}
STATES_BY_CODE = {code: state for state, code in STATE_CODES.items()}


def spec_to_proto(spec: GenerationSpec) -> generator_pb2.GenerationSpec:
    """The API form of a spec."""
    return generator_pb2.GenerationSpec(
        prompt=spec.prompt,
        negative_prompt=spec.negative_prompt,
        backend=spec.backend,
        model=spec.model,
        width=spec.width,
        height=spec.height,
        duration_s=spec.duration_s,
        fps=spec.fps,
        seed=spec.seed,
        prompt_extend=spec.prompt_extend,
        watermark=spec.watermark,
        labels=spec.labels,
    )


def spec_from_proto(spec: generator_pb2.GenerationSpec) -> GenerationSpec:
    """A spec from its API form (checked later, by its backend)."""
    return GenerationSpec(
        prompt=spec.prompt,
        negative_prompt=spec.negative_prompt,
        backend=spec.backend,
        model=spec.model,
        width=spec.width,
        height=spec.height,
        duration_s=spec.duration_s,
        fps=spec.fps,
        seed=spec.seed if spec.HasField("seed") else None,
        prompt_extend=spec.prompt_extend if spec.HasField("prompt_extend") else None,
        watermark=spec.watermark,
        labels=dict(spec.labels),
    )


def result_to_proto(result: GenerationResult) -> generator_pb2.GenerationResult:
    return generator_pb2.GenerationResult(
        uri=result.uri,
        duration_s=result.duration_s,
        fps=result.fps,
        width=result.width,
        height=result.height,
        size_bytes=result.size_bytes,
        sha256=result.sha256,
        cache_hit=result.cache_hit,
    )


def result_from_proto(result: generator_pb2.GenerationResult) -> GenerationResult:
    return GenerationResult(
        uri=result.uri,
        duration_s=result.duration_s,
        fps=result.fps,
        width=result.width,
        height=result.height,
        size_bytes=result.size_bytes,
        sha256=result.sha256,
        cache_hit=result.cache_hit,
    )


def job_to_proto(job: Job) -> generator_pb2.Job:
    """The API form of a job."""
    error = job.error
    return generator_pb2.Job(
        job_id=job.job_id,
        idempotency_key=job.idempotency_key,
        backend=job.backend,
        spec=spec_to_proto(job.spec),
        state=STATE_CODES[job.state],
        progress=job.progress,
        queue_position=job.queue_position,
        eta_s=job.eta_s,
        result=None if job.result is None else result_to_proto(job.result),
        error=None
        if error is None
        else generator_pb2.JobError(
            reason=error.reason, message=error.message, provider_code=error.provider_code
        ),
        orig_prompt=job.orig_prompt,
        actual_prompt=job.actual_prompt,
        provider_task_id=job.provider_task_id,
        create_time=timestamp(job.create_time_s),
        start_time=timestamp(job.start_time_s),
        end_time=timestamp(job.end_time_s),
        output_deleted=job.output_deleted,
        caller=job.caller,
    )


def job_from_proto(job: generator_pb2.Job) -> Job:
    """A job from its API form."""
    return Job(
        job_id=job.job_id,
        spec=spec_from_proto(job.spec),
        idempotency_key=job.idempotency_key,
        backend=job.backend,
        state=STATES_BY_CODE.get(job.state, JobState.QUEUED),
        progress=job.progress,
        queue_position=job.queue_position,
        eta_s=job.eta_s,
        result=result_from_proto(job.result) if job.HasField("result") else None,
        error=JobError(job.error.reason, job.error.message, job.error.provider_code)
        if job.HasField("error")
        else None,
        orig_prompt=job.orig_prompt,
        actual_prompt=job.actual_prompt,
        provider_task_id=job.provider_task_id,
        create_time_s=seconds_of(job, "create_time"),
        start_time_s=seconds_of(job, "start_time"),
        end_time_s=seconds_of(job, "end_time"),
        output_deleted=job.output_deleted,
        caller=job.caller,
    )


def event_to_proto(event: JobEvent) -> generator_pb2.JobEvent:
    """The API form of an event."""
    return generator_pb2.JobEvent(
        job=job_to_proto(event.job), message=event.message, event_time=timestamp(event.time_s)
    )


def event_from_proto(event: generator_pb2.JobEvent) -> JobEvent:
    """An event from its API form."""
    return JobEvent(job_from_proto(event.job), event.message, seconds_of(event, "event_time"))


def outcome_to_proto(outcome: CancelOutcome) -> int:
    """The `CancelOutcome` enum value of an outcome."""
    return generator_pb2.CancelOutcome.Value(f"CANCEL_OUTCOME_{outcome.name}")
