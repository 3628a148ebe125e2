"""One call through the channel factory yields one trace: a client span and the server's span."""

from __future__ import annotations

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from clipmesh.encoder.config import EncoderConfig
from clipmesh.runtime.channels import create_channel
from clipmesh.runtime.config import load_config
from clipmesh.runtime.server import Application, GrpcService
from clipmesh.runtime.tracing import configure_tracing
from clipmesh_api.encoder.v1 import encoder_pb2, encoder_pb2_grpc
from tests.support import serve_in_process


class TracedEncoder(encoder_pb2_grpc.EncoderServiceServicer):
    async def GetModelInfo(self, request, context):
        return encoder_pb2.GetModelInfoResponse(model_id="traced")


class TracedApp(Application):
    def grpc_services(self) -> list[GrpcService]:
        return [GrpcService.generated(encoder_pb2, encoder_pb2_grpc, TracedEncoder())]


async def test_client_and_server_spans_share_one_trace() -> None:
    exporter = InMemorySpanExporter()
    configure_tracing("encoder", extra_processor=SimpleSpanProcessor(exporter))
    config = load_config(EncoderConfig, environ={"CLIPMESH_ENCODER_WEIGHTS": "random:0"})
    async with (
        serve_in_process(config, TracedApp()) as service,
        create_channel(service.target) as channel,
    ):
        stub = encoder_pb2_grpc.EncoderServiceStub(channel)
        await stub.GetModelInfo(encoder_pb2.GetModelInfoRequest())
    spans = [s for s in exporter.get_finished_spans() if "GetModelInfo" in s.name]
    kinds = {s.kind for s in spans}
    assert {SpanKind.CLIENT, SpanKind.SERVER} <= kinds
    assert len({s.context.trace_id for s in spans}) == 1
    server = next(s for s in spans if s.kind == SpanKind.SERVER)
    client = next(s for s in spans if s.kind == SpanKind.CLIENT)
    assert server.parent.span_id == client.context.span_id
    assert server.resource.attributes["service.name"] == "clipmesh-encoder"
