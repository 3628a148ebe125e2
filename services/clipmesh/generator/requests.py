"""Checks of GeneratorService requests at the boundary, each naming the offending field.

A spec's content (model, size, duration, prompt length) is the backend's to check
(`Backend.validate`), because what is allowed differs per model.
"""

from __future__ import annotations

from dataclasses import dataclass

from clipmesh.generator.convert import STATES_BY_CODE
from clipmesh.generator.jobs import JobState
from clipmesh.runtime.errors import InvalidArgument
from clipmesh.runtime.paging import parse_page
from clipmesh_api.generator.v1 import generator_pb2

MAX_JOB_ID_CHARS = 64


@dataclass(frozen=True)
class JobListing:
    """A checked ListJobs: filters, and where the page starts."""

    states: tuple[JobState, ...]
    backend: str
    before_seq: int | None
    limit: int


def job_id(value: str) -> str:
    """A job id as this gateway issues them (ASCII letters and digits)."""
    if not value:
        raise InvalidArgument("job_id is empty", field="job_id", reason="EMPTY_JOB_ID")
    if len(value) > MAX_JOB_ID_CHARS or not value.isascii() or not value.isalnum():
        raise InvalidArgument(
            "job_id is not a job id issued by this gateway", field="job_id", reason="BAD_JOB_ID"
        )
    return value


def parse_listing(request: generator_pb2.ListJobsRequest) -> JobListing:
    """Checks a ListJobs request; unspecified states are ignored (a number that is no JobState
    was refused as the request was parsed: runtime/enums.py)."""
    cursor, limit = parse_page(request.page, default_size=50, max_size=500)
    return JobListing(
        states=tuple(STATES_BY_CODE[s] for s in request.states if s),
        backend=request.backend,
        before_seq=cursor or None,
        limit=limit,
    )
