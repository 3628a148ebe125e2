"""Generation records in their API form and back, field by field (`runtime.messages`).

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
    JobEvent,
    JobState,
)
from clipmesh.runtime.messages import field_names, from_message, to_message
from clipmesh_api.generator.v1 import generator_pb2

STATE_CODES = {state: generator_pb2.JobState.Value(f"JOB_STATE_{state.name}") for state in JobState}
STATES_BY_CODE = {code: state for state, code in STATE_CODES.items()}
# An event's time is its own field name in the API.
_EVENT = field_names({JobEvent: {"time_s": "event_time_s"}})


def spec_to_proto(spec: GenerationSpec) -> generator_pb2.GenerationSpec:
    return to_message(spec, generator_pb2.GenerationSpec)


def spec_from_proto(message: generator_pb2.GenerationSpec) -> GenerationSpec:
    """A spec from its API form (checked later, by its backend)."""
    return from_message(message, GenerationSpec)


def result_to_proto(result: GenerationResult) -> generator_pb2.GenerationResult:
    return to_message(result, generator_pb2.GenerationResult)


def result_from_proto(message: generator_pb2.GenerationResult) -> GenerationResult:
    return from_message(message, GenerationResult)


def job_to_proto(job: Job) -> generator_pb2.Job:
    return to_message(job, generator_pb2.Job)


def job_from_proto(message: generator_pb2.Job) -> Job:
    return from_message(message, Job)


def event_to_proto(event: JobEvent) -> generator_pb2.JobEvent:
    return to_message(event, generator_pb2.JobEvent, renames=_EVENT)


def event_from_proto(message: generator_pb2.JobEvent) -> JobEvent:
    return from_message(message, JobEvent, renames=_EVENT)


def outcome_to_proto(outcome: CancelOutcome) -> int:
    """The `CancelOutcome` enum value of an outcome."""
    return generator_pb2.CancelOutcome.Value(f"CANCEL_OUTCOME_{outcome.name}")
