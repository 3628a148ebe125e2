"""What must never leak, checked on the real mesh: the four services as processes, traces
exported to a local OTLP collector, the generator holding a DashScope key (a faithful local
DashScope that refuses it). After an image search and a generation that fails on the key,
neither the query image nor the key appears in any log line, any file the services wrote
(their data directories and TMPDIR), any /metrics page, any span, or the error the caller
got."""

from __future__ import annotations

import base64
import io
import time
from concurrent import futures
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from PIL import Image, PngImagePlugin

from clipmesh.cli.services import CONFIG_TYPES
from clipmesh.demo.library import make_library
from clipmesh_client import Client
from clipmesh_client.generation import GeneratorClient
from tests.fakes.dashscope_server import FakeDashScope
from tests.mesh import process_mesh

pytestmark = pytest.mark.timeout(180)

HELD_KEY = "sk-canary-held-by-the-gateway-5e1d"  # what the generator holds (and must hide)
ACCEPTED_KEY = "sk-the-only-key-dashscope-takes"  # so every call with HELD_KEY is refused
IMAGE_MARKER = "clipmesh-privacy-canary-9b7e"


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace collector that keeps what it is sent."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []

    def Export(self, request, context):
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()

    def services(self) -> set[str]:
        return {
            attribute.value.string_value
            for request in self.requests
            for spans in request.resource_spans
            for attribute in spans.resource.attributes
            if attribute.key == "service.name"
        }


def _query_image() -> bytes:
    """A PNG whose pixels are random and whose text chunk carries the marker."""
    pixels = np.random.default_rng(7).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", IMAGE_MARKER)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def _needles(image: bytes) -> dict[str, bytes]:
    """The byte strings that must not appear anywhere: the key, the image and its parts."""
    return {
        "api key": HELD_KEY.encode(),
        "image marker": IMAGE_MARKER.encode(),
        "image bytes": image[len(image) // 2 : len(image) // 2 + 64],
        "image base64": base64.b64encode(image)[100:164],
    }


def _files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]


@pytest.fixture
def collector():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    sink = Collector()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(sink, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield sink, f"http://127.0.0.1:{port}"
    server.stop(0)


def test_query_images_and_the_provider_key_never_leak(tmp_path, free_ports, collector) -> None:
    sink, otlp_endpoint = collector
    key_file = tmp_path / "secrets" / "dashscope-api-key"
    key_file.parent.mkdir()
    key_file.write_text(HELD_KEY)
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    image = _query_image()
    with FakeDashScope(api_key=ACCEPTED_KEY) as dashscope:
        environ = {
            "TMPDIR": str(scratch),
            "OTEL_BSP_SCHEDULE_DELAY": "100",  # export spans within 0.1 s
            "CLIPMESH_GENERATOR_DASHSCOPE_BASE_URL": dashscope.base_url,
            "CLIPMESH_GENERATOR_DASHSCOPE_API_KEY_FILE": str(key_file),
            "CLIPMESH_GENERATOR_DASHSCOPE_MAX_RETRIES": "1",
        }
        for config_type in CONFIG_TYPES.values():
            environ[config_type.env_name("otlp_endpoint")] = otlp_endpoint
            environ[config_type.env_name("log_level")] = "DEBUG"  # the most that is ever logged
        library = tmp_path / "mesh" / "library"
        make_library(library, count=1, seed=2, size=(160, 90))
        environ["CLIPMESH_ORCHESTRATOR_ALLOWED_ROOTS"] = str(library)
        traced = ("encoder", "index", "generator", "orchestrator")
        with process_mesh(tmp_path / "mesh", free_ports, traced, environ) as services:
            with Client(services["orchestrator"]["target"], timeout_s=30) as client:
                assert list(client.ingest(sorted(library.glob("*.mp4"))))[-1].ingested == 1
                client.search(image=image)
            with GeneratorClient(services["generator"]["target"]) as generator:
                *_, last = generator.generate("a lighthouse at dusk", backend="dashscope")
            failure = last.job
            metrics = {n: httpx.get(s["metrics"], timeout=10).text for n, s in services.items()}
            deadline = time.monotonic() + 10
            while len(sink.services()) < len(traced) and time.monotonic() < deadline:
                time.sleep(0.1)
            for service in services.values():  # drain: logs and spans are flushed
                service["process"].terminate()
                service["process"].wait(timeout=30)
    assert failure.state == "failed" and failure.provider_code, failure  # the key was refused
    assert sink.services() >= {f"clipmesh-{n}" for n in traced}, sink.services()

    places: dict[str, bytes] = {
        f"file {p.relative_to(tmp_path)}": p.read_bytes()
        for p in _files_under(tmp_path / "mesh") + _files_under(scratch)
    }
    places |= {f"/metrics of {name}": text.encode() for name, text in metrics.items()}
    places["spans"] = b"".join(r.SerializeToString() for r in sink.requests)
    places["the caller's error"] = (
        f"{failure.error_reason} {failure.error_message} {failure.provider_code}".encode()
    )
    assert any(name.endswith(".log") for name in places), "no service log was read"
    leaks = [
        f"{needle} in {place}"
        for needle, pattern in _needles(image).items()
        for place, content in places.items()
        if pattern in content
    ]
    assert not leaks, leaks
