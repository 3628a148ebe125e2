"""`AsyncPrevisClient`: the asyncio form of `PrevisClient`, with the same arguments, methods
and errors.

    from clipmesh_client import AsyncPrevisClient

    async with AsyncPrevisClient("127.0.0.1:50054") as previs:
        async for progress in previs.create_project(script, variants=3):
            print(progress.stage, progress.shots_done, "/", progress.shots_total)
        exported = await previs.export_cut(progress.project.project_id, format="fcpxml")

Requests are built and answers read by the functions of `clipmesh_client.previs`, shared with
the blocking client; each method here only makes the call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from clipmesh_api.orchestrator.v1 import previs_pb2
from clipmesh_client.async_service import AsyncServiceClient
from clipmesh_client.errors import typed_errors
from clipmesh_client.previs import (
    CutExport,
    PrevisServiceBase,
    create_project_request,
    cut_export_from_proto,
    export_request,
    progress_from_proto,
    review_request,
)


class AsyncPrevisClient(PrevisServiceBase, AsyncServiceClient):
    """The asyncio form of `PrevisClient`: the same arguments, methods and errors.

    Create it inside a running event loop; use `async with AsyncPrevisClient(...) as previs:`.
    `create_project` and `review_shot` are iterated with `async for` (the call starts when
    iteration does); `get_project` and `export_cut` are awaited.
    """

    def create_project(
        self,
        script: str,
        *,
        title: str = "",
        format: str = "auto",
        variants: int = 0,
        backend: str = "",
        style: str = "",
        references: Mapping[int, bytes] | None = None,
        collection: str = "",
        size: tuple[int, int] = (0, 0),
        fps: float = 0.0,
        model: str = "",
        multi_shot: bool = False,
        timeout_s: float | None = None,
    ) -> AsyncIterator[previs_pb2.ProjectProgress]:
        """Starts a project; yields its progress, the last report carrying the project. See
        `PrevisClient.create_project`."""
        request = create_project_request(
            script,
            title=title,
            format=format,
            variants=variants,
            backend=backend,
            style=style,
            references=references,
            collection=collection,
            size=size,
            fps=fps,
            model=model,
            multi_shot=multi_shot,
        )
        options = self._options(timeout_s, stream=True)
        return self._stream(
            lambda: self._stub.CreateProject(request, **options), progress_from_proto
        )

    def review_shot(
        self,
        project_id: str,
        shot_id: str,
        *,
        note: str = "",
        restore_revision: int = 0,
        select_clip: int | None = None,
        timeout_s: float | None = None,
    ) -> AsyncIterator[previs_pb2.ProjectProgress]:
        """Applies a note, restores a revision or selects a clip of one shot; yields progress.
        See `PrevisClient.review_shot`."""
        request = review_request(
            project_id,
            shot_id,
            note=note,
            restore_revision=restore_revision,
            select_clip=select_clip,
        )
        options = self._options(timeout_s, stream=True)
        return self._stream(lambda: self._stub.ReviewShot(request, **options), progress_from_proto)

    async def get_project(
        self, project_id: str, *, timeout_s: float | None = None
    ) -> previs_pb2.Project:
        """The project with every shot, revision and clip."""
        with typed_errors():
            response = await self._stub.GetProject(
                previs_pb2.GetProjectRequest(project_id=project_id), **self._options(timeout_s)
            )
        return response.project

    async def export_cut(
        self, project_id: str, *, format: str = "otio", timeout_s: float | None = None
    ) -> CutExport:
        """The project's cut and its timeline written in `format`; see
        `PrevisClient.export_cut`."""
        request = export_request(project_id, format)
        with typed_errors():
            response = await self._stub.ExportCut(request, **self._options(timeout_s))
        return cut_export_from_proto(response, format)
