"""`PrevisClient`: a film script to a reviewed previs cut, on the previs service.

    from clipmesh_client.previs import PrevisClient

    with PrevisClient("127.0.0.1:50054") as previs:
        for progress in previs.create_project(open("scene.fountain").read(), variants=3):
            print(progress.stage, progress.shots_done, "/", progress.shots_total, progress.eta_s)
        project = progress.project
        for report in previs.review_shot(project.project_id, "s002", note="slower, push in"):
            print(report.message)
        print(previs.export_cut(project.project_id).mp4_uri)
        print(previs.export_cut(project.project_id, format="edl").export_uri)  # cut.edl

A project outlives its stream: leave the loop (or lose the connection) and the run goes on;
`get_project` shows how it stands. Projects are rich nested records (shots, revisions, clips,
scores), so they are returned as the API's own messages (`clipmesh_api.orchestrator.v1.
previs_pb2`), documented field by field in `protos/clipmesh/orchestrator/v1/previs.proto`.

`AsyncPrevisClient` (async_previs.py) is the asyncio form, with the same arguments, methods and
errors; both build their requests and read the answers with the functions here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from clipmesh_api.orchestrator.v1 import previs_pb2, previs_pb2_grpc
from clipmesh_client.blocking import BlockingServiceClient, ServiceClientBase
from clipmesh_client.errors import typed_errors

DEFAULT_TARGET = "127.0.0.1:50054"
FORMATS = {
    "auto": previs_pb2.SCRIPT_FORMAT_UNSPECIFIED,
    "plain": previs_pb2.SCRIPT_FORMAT_PLAIN,
    "fountain": previs_pb2.SCRIPT_FORMAT_FOUNTAIN,
}
EXPORT_FORMATS = {
    "otio": previs_pb2.EXPORT_FORMAT_OTIO,
    "xml": previs_pb2.EXPORT_FORMAT_FCP7_XML,
    "fcpxml": previs_pb2.EXPORT_FORMAT_FCPXML,
    "edl": previs_pb2.EXPORT_FORMAT_CMX3600_EDL,
}
"""A cut's timeline formats by the extension of their file: OpenTimelineIO, Final Cut Pro 7
XML, FCPXML and a CMX 3600 EDL."""


@dataclass(frozen=True)
class CutExport:
    """A project's cut and its timeline exported in one format.

    Attributes:
        cut: The cut (`previs_pb2.Cut`: `mp4_uri`, `otio_uri`, `duration_s`, `update_time`).
        format: The export's format, a key of `EXPORT_FORMATS`.
        export_uri: Where the exported timeline is (`file://`, beside the cut).
    """

    cut: previs_pb2.Cut
    format: str
    export_uri: str

    # The cut's own fields, as `export_cut` answered with the cut alone before it had formats.
    @property
    def mp4_uri(self) -> str:
        return self.cut.mp4_uri

    @property
    def otio_uri(self) -> str:
        return self.cut.otio_uri

    @property
    def duration_s(self) -> float:
        return self.cut.duration_s

    @property
    def update_time(self) -> Timestamp:
        return self.cut.update_time


def create_project_request(
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
) -> previs_pb2.CreateProjectRequest:
    """The CreateProjectRequest of `PrevisClient.create_project`'s arguments.

    Raises:
        ValueError: `format` is not a key of `FORMATS`.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}, not {format!r}")
    return previs_pb2.CreateProjectRequest(
        title=title,
        script=script,
        format=FORMATS[format],
        variants=variants,
        backend=backend,
        style=style,
        references=[
            previs_pb2.ShotReference(shot_order=order, image=image)
            for order, image in sorted((references or {}).items())
        ],
        collection=collection,
        width=size[0],
        height=size[1],
        fps=fps,
        model=model,
        multi_shot=multi_shot,
    )


def review_request(
    project_id: str,
    shot_id: str,
    *,
    note: str = "",
    restore_revision: int = 0,
    select_clip: int | None = None,
) -> previs_pb2.ReviewShotRequest:
    """The ReviewShotRequest of `PrevisClient.review_shot`'s arguments."""
    request = previs_pb2.ReviewShotRequest(
        project_id=project_id, shot_id=shot_id, note=note, restore_revision=restore_revision
    )
    if select_clip is not None:
        request.select_clip = select_clip
    return request


def export_request(project_id: str, format: str) -> previs_pb2.ExportCutRequest:
    """The ExportCutRequest of `PrevisClient.export_cut`'s arguments.

    Raises:
        ValueError: `format` is not a key of `EXPORT_FORMATS`.
    """
    if format not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {sorted(EXPORT_FORMATS)}, not {format!r}")
    return previs_pb2.ExportCutRequest(project_id=project_id, format=EXPORT_FORMATS[format])


def progress_from_proto(response) -> previs_pb2.ProjectProgress:
    """The progress report of one CreateProject or ReviewShot response."""
    return response.progress


def cut_export_from_proto(response: previs_pb2.ExportCutResponse, format: str) -> CutExport:
    """The `CutExport` of an ExportCut answer to a request for `format`."""
    return CutExport(cut=response.cut, format=format, export_uri=response.export_uri)


class PrevisServiceBase(ServiceClientBase):
    """The default address, settings and stub that `PrevisClient` and `AsyncPrevisClient`
    share (see `PrevisClient` for the arguments)."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        timeout_s: float = 10.0,
        stream_timeout_s: float = 6 * 3600.0,
        max_attempts: int = 3,
        credentials: grpc.ChannelCredentials | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        token: str | None = None,
    ) -> None:
        super().__init__(
            target,
            timeout_s=timeout_s,
            stream_timeout_s=stream_timeout_s,
            max_attempts=max_attempts,
            credentials=credentials,
            metadata=metadata,
            token=token,
        )
        self._stub = previs_pb2_grpc.PrevisServiceStub(self._channel)


class PrevisClient(PrevisServiceBase, BlockingServiceClient):
    """A blocking client of PrevisService.

    Args:
        target: `host:port` of the previs service.
        timeout_s: Deadline of each unary call that sets none of its own.
        stream_timeout_s: Deadline of a project's or review's progress stream.
        max_attempts: Attempts of a call that fails UNAVAILABLE (1 = no retry).
        credentials: TLS credentials, or None for plaintext.
        metadata: Further headers sent with every call.
        token: Bearer token, when previs has token auth on (over TLS only).
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
    ) -> Iterator[previs_pb2.ProjectProgress]:
        """Starts a project; yields its progress, the last report carrying the project.

        Args:
            script: Plain Chinese/English prose or a Fountain screenplay.
            title: The project's title.
            format: "auto", "plain" or "fountain".
            variants: Style variants per shot (0 or 1: one clip per shot).
            backend: Generator backend ("animatic", "dashscope"); "" for the gateway's default.
            style: Style template ("cinematic", "anime", "ink_wash", …).
            references: Reference images by shot order (0-based).
            collection: Library collection searched for references and fed with the clips.
            size: (width, height) of the clips; (0, 0) for the backend's default.
            fps: Frame rate of the clips; 0 for the backend's default.
            model: The backend's model ("" for its default), e.g. "wan2.6-t2v".
            multi_shot: Ask for multi-shot clips (coverage within each shot) where the model
                offers it; where it does not, single shots are made and a notice says so.
        """
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
        call = self._stub.CreateProject(request, **self._options(timeout_s, stream=True))
        return self._stream(call, progress_from_proto)

    def review_shot(
        self,
        project_id: str,
        shot_id: str,
        *,
        note: str = "",
        restore_revision: int = 0,
        select_clip: int | None = None,
        timeout_s: float | None = None,
    ) -> Iterator[previs_pb2.ProjectProgress]:
        """Applies a note to one shot, or restores a revision, or selects a clip; yields
        progress, the last report carrying the project. Set exactly one of the three."""
        request = review_request(
            project_id,
            shot_id,
            note=note,
            restore_revision=restore_revision,
            select_clip=select_clip,
        )
        call = self._stub.ReviewShot(request, **self._options(timeout_s, stream=True))
        return self._stream(call, progress_from_proto)

    def get_project(self, project_id: str, *, timeout_s: float | None = None):
        """The project with every shot, revision and clip."""
        with typed_errors():
            return self._stub.GetProject(
                previs_pb2.GetProjectRequest(project_id=project_id), **self._options(timeout_s)
            ).project

    def export_cut(
        self, project_id: str, *, format: str = "otio", timeout_s: float | None = None
    ) -> CutExport:
        """Where the project's cut (MP4) and timeline are, the timeline written in `format`:
        "otio" (OpenTimelineIO, the timeline itself), "xml" (Final Cut Pro 7 XML), "fcpxml"
        or "edl" (CMX 3600), as a file beside the cut.

        Raises:
            ValueError: An unknown `format` (raised before any call).
            NotFoundError: No such project (or another caller's).
            FailedPreconditionError: The project has no cut yet (reason `NO_CUT`).
        """
        request = export_request(project_id, format)
        with typed_errors():
            response = self._stub.ExportCut(request, **self._options(timeout_s))
        return cut_export_from_proto(response, format)
