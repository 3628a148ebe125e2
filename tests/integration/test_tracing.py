"""Traces across services: one call of a typed client, one SearchVideos and one
IngestVideos each yield a single trace whose spans nest from the caller down to the encoder
and the index.

All services here serve in this one process, so they share one tracer provider and one
resource `service.name`; each server span says which service answered in its
`clipmesh.service` attribute instead (see `clipmesh.runtime.tracing`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from clipmesh.demo.library import make_video
from clipmesh.encoder.client import EncoderClient
from clipmesh.encoder.config import EncoderConfig
from clipmesh.runtime.config import load_config
from clipmesh.runtime.dependencies import DependencyChannels
from clipmesh.runtime.server import Application, GrpcService
from clipmesh.runtime.tracing import SERVICE_ATTRIBUTE, tracer_provider
from clipmesh_api.encoder.v1 import encoder_pb2, encoder_pb2_grpc
from clipmesh_api.orchestrator.v1 import ingest_pb2, ingest_pb2_grpc, search_pb2, search_pb2_grpc
from clipmesh_client.wire import ChannelPolicy
from tests.media import encode, gradient_image
from tests.support import serve_in_process

SEARCH = "clipmesh.orchestrator.v1.SearchService/SearchVideos"
INGEST = "clipmesh.orchestrator.v1.IngestService/IngestVideos"
EMBED_IMAGES = "clipmesh.encoder.v1.EncoderService/EmbedImages"
INDEX_SEARCH = "clipmesh.index.v1.IndexService/Search"
INDEX_GET_VIDEO = "clipmesh.index.v1.IndexService/GetVideo"
INDEX_UPSERT = "clipmesh.index.v1.IndexService/UpsertSegments"


class TracedEncoder(encoder_pb2_grpc.EncoderServiceServicer):
    async def GetModelInfo(self, request, context):
        return encoder_pb2.GetModelInfoResponse(model_id="traced")


class TracedApp(Application):
    def grpc_services(self) -> list[GrpcService]:
        return [GrpcService.generated(encoder_pb2, encoder_pb2_grpc, TracedEncoder())]


def _server_span(spans: Sequence[ReadableSpan], rpc: str) -> ReadableSpan:
    """The one SERVER span of `rpc` ("package.Service/Method") among `spans`."""
    matches = [s for s in spans if s.kind == SpanKind.SERVER and s.name == f"/{rpc}"]
    assert len(matches) == 1, f"{len(matches)} server spans of {rpc}"
    return matches[0]


def _ancestors(span: ReadableSpan, spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
    """`span`'s parent, grandparent and so on up to its trace's root, all among `spans`."""
    by_id = {s.context.span_id: s for s in spans}
    chain = []
    while span.parent is not None:
        parent = by_id.get(span.parent.span_id)
        assert parent is not None, f"the parent of {span.name!r} was not recorded"
        chain.append(parent)
        span = parent
    return chain


def _descends_from(span: ReadableSpan, ancestor: ReadableSpan, spans) -> bool:
    return ancestor.context.span_id in {a.context.span_id for a in _ancestors(span, spans)}


def _assert_called_through_a_client(server: ReadableSpan, root: ReadableSpan, spans) -> None:
    """`server` (a downstream RPC) was called by a CLIENT span of the same RPC, inside `root`."""
    caller = _ancestors(server, spans)[0]
    assert (caller.kind, caller.name) == (SpanKind.CLIENT, server.name)
    assert _descends_from(caller, root, spans), f"{server.name} is outside {root.name}"


def _one_trace(spans: Sequence[ReadableSpan]) -> None:
    assert spans, "no spans were recorded"
    assert len({s.context.trace_id for s in spans}) == 1, sorted({s.name for s in spans})


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(mesh_factory, tmp_path_factory, span_exporter):
    """Encoder, index and orchestrator serving in this process, and stubs of the last."""
    root = tmp_path_factory.mktemp("videos")
    env = {"orchestrator": {"CLIPMESH_ORCHESTRATOR_ALLOWED_ROOTS": str(root)}}
    async with mesh_factory.in_process("encoder", "index", "orchestrator", env=env) as running:
        running.search = running.stub("orchestrator", search_pb2_grpc.SearchServiceStub)
        running.ingest = running.stub("orchestrator", ingest_pb2_grpc.IngestServiceStub)
        running.root = root
        yield running


def _tiny_video(mesh, name: str, seed: int) -> Path:
    return make_video(mesh.root / name, seed=seed, duration_s=2, shots=2, size=(160, 90)).path


async def _ingest(mesh, path: Path) -> ingest_pb2.IngestSummary:
    request = ingest_pb2.IngestVideosRequest(items=[ingest_pb2.IngestItem(uri=str(path))])
    events = [event async for event in mesh.ingest.IngestVideos(request)]
    return events[-1].summary


async def test_a_typed_clients_call_and_its_server_share_one_trace(span_exporter) -> None:
    config = load_config(EncoderConfig, environ={"CLIPMESH_ENCODER_WEIGHTS": "random:0"})
    async with serve_in_process(config, TracedApp()) as service:
        channels = DependencyChannels(config, ChannelPolicy(timeout_s=10))
        try:
            span_exporter.clear()
            info = await EncoderClient(channels, service.target).model_info(timeout_s=10)
        finally:
            await channels.close()
    assert info.model_id == "traced"
    spans = [s for s in span_exporter.get_finished_spans() if "GetModelInfo" in s.name]
    kinds = {s.kind for s in spans}
    assert {SpanKind.CLIENT, SpanKind.SERVER} <= kinds
    assert len({s.context.trace_id for s in spans}) == 1
    server = next(s for s in spans if s.kind == SpanKind.SERVER)
    client = next(s for s in spans if s.kind == SpanKind.CLIENT)
    assert server.parent.span_id == client.context.span_id
    assert server.attributes[SERVICE_ATTRIBUTE] == "encoder"


def test_the_resource_names_the_service() -> None:
    resource = tracer_provider("encoder").resource
    assert resource.attributes["service.name"] == "clipmesh-encoder"


@pytest.mark.asyncio(loop_scope="module")
async def test_one_search_is_one_trace_through_encoder_and_index(mesh, span_exporter) -> None:
    assert (await _ingest(mesh, _tiny_video(mesh, "library.mp4", seed=1))).ingested == 1
    span_exporter.clear()
    query = search_pb2.QueryPart(image=encode(gradient_image(96, 64, seed=3)))
    await mesh.search.SearchVideos(
        search_pb2.SearchVideosRequest(parts=[query], top_k=3, skip_cache=True)
    )

    spans = span_exporter.get_finished_spans()
    _one_trace(spans)
    root = _server_span(spans, SEARCH)
    embed, lookup = _server_span(spans, EMBED_IMAGES), _server_span(spans, INDEX_SEARCH)
    for span, service in [(root, "orchestrator"), (embed, "encoder"), (lookup, "index")]:
        assert span.attributes[SERVICE_ATTRIBUTE] == service
    for downstream in (embed, lookup):
        _assert_called_through_a_client(downstream, root, spans)
    # The orchestrator's stage spans sit between its server span and each downstream call.
    stages = {s.name: s for s in spans if s.name.startswith("search.")}
    assert _descends_from(embed, stages["search.encode"], spans)
    assert _descends_from(lookup, stages["search.index"], spans)
    assert root.attributes["clipmesh.search.query_kind"] == "image"
    assert stages["search.encode"].attributes["clipmesh.search.images"] == 1


@pytest.mark.asyncio(loop_scope="module")
async def test_one_ingest_is_one_trace_through_encoder_and_index(mesh, span_exporter) -> None:
    video = _tiny_video(mesh, "ingested.mp4", seed=2)
    span_exporter.clear()
    assert (await _ingest(mesh, video)).ingested == 1

    spans = span_exporter.get_finished_spans()
    _one_trace(spans)
    root = _server_span(spans, INGEST)
    assert root.attributes[SERVICE_ATTRIBUTE] == "orchestrator"
    downstream = {
        rpc: _server_span(spans, rpc) for rpc in (INDEX_GET_VIDEO, EMBED_IMAGES, INDEX_UPSERT)
    }
    for rpc, span in downstream.items():
        assert span.attributes[SERVICE_ATTRIBUTE] == rpc.split(".")[1]  # "encoder", "index"
        _assert_called_through_a_client(span, root, spans)
    # Every span but the test's own call is the orchestrator's server span or inside it.
    callers = {s.context.span_id for s in _ancestors(root, spans)}
    inside = [s for s in spans if s.context.span_id not in callers and s is not root]
    assert all(_descends_from(s, root, spans) for s in inside)
    video_span = next(s for s in spans if s.name == "ingest.video")
    assert video_span.attributes["clipmesh.media.outcome"] == "INGEST_STAGE_DONE"
    assert _descends_from(downstream[INDEX_UPSERT], video_span, spans)
