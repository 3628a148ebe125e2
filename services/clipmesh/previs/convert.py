"""Previs requests as domain requests.

Records and their messages share field names, so answers (a project, a report, a cut) and
stores of earlier releases (which kept the API form) convert with `runtime.messages`
directly; these two need more than names.
"""

from __future__ import annotations

from clipmesh.previs.records import ProjectRequest, ReviewRequest
from clipmesh.runtime.errors import InvalidArgument
from clipmesh.runtime.messages import from_message
from clipmesh_api.orchestrator.v1 import previs_pb2

FORMATS = {
    previs_pb2.SCRIPT_FORMAT_UNSPECIFIED: "auto",
    previs_pb2.SCRIPT_FORMAT_PLAIN: "plain",
    previs_pb2.SCRIPT_FORMAT_FOUNTAIN: "fountain",
}


def project_request_from_proto(request: previs_pb2.CreateProjectRequest) -> ProjectRequest:
    """A CreateProject request as a domain request (its content is checked by the engine)."""
    if request.format not in FORMATS:
        raise InvalidArgument(f"format {request.format} is not a ScriptFormat", field="format")
    return from_message(
        request,
        ProjectRequest,
        format=FORMATS[request.format],
        references=tuple((r.shot_order, r.image) for r in request.references),
    )


def review_from_proto(request: previs_pb2.ReviewShotRequest) -> ReviewRequest:
    """A ReviewShot request as a domain request (`select_clip` None when not set)."""
    return from_message(request, ReviewRequest)
