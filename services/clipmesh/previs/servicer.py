"""gRPC servicer of PrevisService: translates proto ↔ domain, nothing else."""

from __future__ import annotations

from clipmesh.previs import convert
from clipmesh.previs.engine import PrevisEngine
from clipmesh.previs.records import ExportRequest, ProjectProgress
from clipmesh.runtime.access import current_principal
from clipmesh.runtime.errors import Unavailable
from clipmesh.runtime.messages import from_message, to_message
from clipmesh_api.orchestrator.v1 import previs_pb2, previs_pb2_grpc


class PrevisServicer(previs_pb2_grpc.PrevisServiceServicer):
    """Serves PrevisService from a `PrevisEngine`, set once the service has started."""

    def __init__(self) -> None:
        self.engine: PrevisEngine | None = None

    @property
    def _engine(self) -> PrevisEngine:
        if self.engine is None:
            raise Unavailable("previs is still starting")
        return self.engine

    async def CreateProject(self, request, context):
        project = convert.project_request_from_proto(request)
        async for progress in self._engine.create(project, current_principal()):
            yield previs_pb2.CreateProjectResponse(progress=_report(progress))

    async def ReviewShot(self, request, context):
        review = convert.review_from_proto(request)
        async for progress in self._engine.review(review, current_principal()):
            yield previs_pb2.ReviewShotResponse(progress=_report(progress))

    async def GetProject(self, request, context):
        project = await self._engine.get(request.project_id, current_principal())
        return previs_pb2.GetProjectResponse(project=to_message(project, previs_pb2.Project))

    async def ExportCut(self, request, context):
        export = from_message(request, ExportRequest)
        cut_export = await self._engine.export(export, current_principal())
        return to_message(cut_export, previs_pb2.ExportCutResponse)


def _report(progress: ProjectProgress) -> previs_pb2.ProjectProgress:
    return to_message(progress, previs_pb2.ProjectProgress)
