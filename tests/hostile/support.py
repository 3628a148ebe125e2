"""The harness of the hostile-input catalogue: the running mesh, what a case expects, and the
request builders, wire-level byte helpers and constants the cases are written with."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from clipmesh_api.common.v1 import common_pb2
from clipmesh_api.encoder.v1 import encoder_pb2_grpc
from clipmesh_api.generator.v1 import generator_pb2, generator_pb2_grpc
from clipmesh_api.index.v1 import index_pb2, index_pb2_grpc
from clipmesh_api.orchestrator.v1 import (
    ingest_pb2,
    ingest_pb2_grpc,
    previs_pb2,
    previs_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
)
from clipmesh_client import errors as client_errors

Code = grpc.StatusCode
Stage = ingest_pb2.IngestStage
TEN_MB = 10 * 1024 * 1024


# The mesh


@dataclass
class Mesh:
    """The running services, a stub for each public API, and the hostile files."""

    channels: dict[str, grpc.aio.Channel]
    files: dict[str, Path]
    root: Path
    dimension: int
    video_id: str
    rss_before_mb: float

    def stub(self, service: str, stub_class):
        return stub_class(self.channels[service])


# What a case expects, and how it asks


@dataclass(frozen=True)
class Answer:
    """How the mesh answered: a status with its `ErrorInfo`, or, for ingest, how the one item
    of the batch ended (`code` None: the stream succeeded and the item failed alone)."""

    code: grpc.StatusCode | None
    reason: str
    message: str
    field: str = ""


Ask = Callable[[Mesh], Awaitable[Answer]]


def refused(code: grpc.StatusCode, reason: str, says: str, field: str = "") -> Answer:
    """The RPC fails with `code`, `reason`, a message containing `says`, naming `field`."""
    return Answer(code, reason, says, field)


def fails_alone(reason: str, says: str) -> Answer:
    """The ingest stream succeeds; its one item fails with `reason` and a message with `says`."""
    return Answer(None, reason, says)


async def _answer(call) -> Answer:
    try:
        if hasattr(call, "__aiter__"):
            async for _ in call:
                pass
        else:
            await call
    except grpc.aio.AioRpcError as error:
        details = client_errors.from_rpc_error(error)
        return Answer(error.code(), details.reason, details.message, details.metadata.get("field"))
    return Answer(Code.OK, "", "")


def call(service: str, stub_class, method: str, request) -> Ask:
    """Sends `request` (or what `request()` makes, for large ones) to `service`."""

    async def ask(mesh: Mesh) -> Answer:
        message = request() if callable(request) else request
        return await _answer(getattr(mesh.stub(service, stub_class), method)(message))

    return ask


def search(*parts: search_pb2.QueryPart, **fields) -> Ask:
    return call(
        "orchestrator",
        search_pb2_grpc.SearchServiceStub,
        "SearchVideos",
        lambda: search_pb2.SearchVideosRequest(parts=parts, skip_cache=True, **fields),
    )


def image(data: bytes) -> search_pb2.QueryPart:
    return search_pb2.QueryPart(image=data)


TEXT = search_pb2.QueryPart(text="a harbour at dawn")


def library(method: str, request) -> Ask:
    return call("orchestrator", ingest_pb2_grpc.IngestServiceStub, method, request)


def ingest(uri: str | Callable[[Mesh], str]) -> Ask:
    """Ingests one item; answers how that item ended."""

    async def ask(mesh: Mesh) -> Answer:
        item = ingest_pb2.IngestItem(uri=uri(mesh) if callable(uri) else uri)
        stub = mesh.stub("orchestrator", ingest_pb2_grpc.IngestServiceStub)
        request = ingest_pb2.IngestVideosRequest(items=[item])
        events = [event async for event in stub.IngestVideos(request)]
        (last,) = [e.progress for e in events if e.progress.stage >= Stage.INGEST_STAGE_DONE]
        assert events[-1].summary.failed == (last.stage == Stage.INGEST_STAGE_FAILED)
        if last.stage != Stage.INGEST_STAGE_FAILED:
            return Answer(Code.OK, Stage.Name(last.stage), "")
        return Answer(None, last.error.reason, last.error.message)

    return ask


def ingest_file(name: str) -> Ask:
    return ingest(lambda mesh: str(mesh.files[name]))


def previs(method: str, request) -> Ask:
    return call("previs", previs_pb2_grpc.PrevisServiceStub, method, request)


def project(**fields) -> Ask:
    fields.setdefault("script", "A lighthouse keeper climbs the stairs at dusk.")
    return previs("CreateProject", lambda: previs_pb2.CreateProjectRequest(**fields))


def reference(data: bytes) -> Ask:
    return project(references=[previs_pb2.ShotReference(shot_order=0, image=data)])


def encoder(method: str, request) -> Ask:
    return call("encoder", encoder_pb2_grpc.EncoderServiceStub, method, request)


def index(method: str, request) -> Ask:
    return call("index", index_pb2_grpc.IndexServiceStub, method, request)


def index_search(vector: Callable[[int], list[float]], **fields) -> Ask:
    """An index Search whose one query vector is `vector(dimension of the collection)`."""

    async def ask(mesh: Mesh) -> Answer:
        query = index_pb2.WeightedVector(vector=vector(mesh.dimension), weight=1.0)
        request = index_pb2.SearchRequest(queries=[query], **{"top_k": 5, **fields})
        return await _answer(mesh.stub("index", index_pb2_grpc.IndexServiceStub).Search(request))

    return ask


def upsert(video: dict | None = None, segment: dict | None = None) -> Ask:
    """An index upsert of one video of one segment, with these fields changed."""

    async def ask(mesh: Mesh) -> Answer:
        fields = {"start_s": 0.0, "end_s": 1.0, "keyframe_s": 0.5, "vector": [1.0] * mesh.dimension}
        request = index_pb2.UpsertSegmentsRequest(
            videos=[
                index_pb2.VideoSegments(
                    video=common_pb2.Video(**{"video_id": "hostile", **(video or {})}),
                    segments=[index_pb2.Segment(**{**fields, **(segment or {})})],
                )
            ]
        )
        stub = mesh.stub("index", index_pb2_grpc.IndexServiceStub)
        return await _answer(stub.UpsertSegments(request))

    return ask


def generate(**fields) -> Ask:
    spec = {"prompt": "a slow push in on a lighthouse", "width": 256, "height": 144, **fields}
    return generator(
        "Generate", lambda: generator_pb2.GenerateRequest(spec=generator_pb2.GenerationSpec(**spec))
    )


def generator(method: str, request) -> Ask:
    return call("generator", generator_pb2_grpc.GeneratorServiceStub, method, request)


def raw(service: str, method: str, payload: bytes, *, streaming: bool = False) -> Ask:
    """Sends bytes the generated classes would never serialize, straight onto the wire."""

    async def ask(mesh: Mesh) -> Answer:
        channel = mesh.channels[service]
        if streaming:
            return await _answer(channel.unary_stream(method)(payload))
        return await _answer(channel.unary_unary(method)(payload))

    return ask


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def with_raw_string(message_class, path: tuple[str, ...], value: bytes) -> bytes:
    """A serialized `message_class` whose string field at `path` (through nested messages)
    holds `value`, e.g. invalid UTF-8, which protobuf refuses to serialize itself."""
    descriptor, numbers = message_class.DESCRIPTOR, []
    for name in path:
        field = descriptor.fields_by_name[name]
        numbers.append(field.number)
        descriptor = field.message_type
    payload = value
    for number in reversed(numbers):
        payload = _varint(number << 3 | 2) + _varint(len(payload)) + payload
    return payload


def nested_groups(depth: int) -> bytes:
    """An unknown field nested `depth` groups deep: protobuf parsers stop at 100."""
    return _varint(15 << 3 | 3) * depth + _varint(15 << 3 | 4) * depth


INVALID_UTF8 = b"caf\xc3 \xff\xfe au lait"
SEARCH = "/clipmesh.orchestrator.v1.SearchService/SearchVideos"
INGEST = "/clipmesh.orchestrator.v1.IngestService/IngestVideos"
CREATE = "/clipmesh.orchestrator.v1.PrevisService/CreateProject"
EMBED_TEXTS = "/clipmesh.encoder.v1.EncoderService/EmbedTexts"
GENERATE = "/clipmesh.generator.v1.GeneratorService/Generate"
INDEX_SEARCH = "/clipmesh.index.v1.IndexService/Search"
NAN, INF = math.nan, math.inf
INVALID, NOT_FOUND, EXHAUSTED = Code.INVALID_ARGUMENT, Code.NOT_FOUND, Code.RESOURCE_EXHAUSTED


def clip(video_id: str, start_s: float, end_s: float) -> search_pb2.QueryPart:
    span = common_pb2.TimeRange(start_s=start_s, end_s=end_s)
    return search_pb2.QueryPart(clip=search_pb2.ClipReference(video_id=video_id, span=span))


def metadata_filter(*clauses: common_pb2.FilterClause) -> common_pb2.MetadataFilter:
    return common_pb2.MetadataFilter(clauses=clauses)


def huge_image() -> bytes:
    return b"\xff\xd8\xff\xe0" + bytes(17 * 1024 * 1024)  # a JPEG's start, 17 MiB long
