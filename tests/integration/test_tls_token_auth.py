"""Identity on real servers: the orchestrator's public port on TLS with bearer tokens, calling
an encoder and an index that require client certificates (mTLS). A search end to end with the
caller in logs, spans and metrics; a missing or wrong token refused; an orchestrator without a
client certificate cut off; renewed client certificates reaching its channels without a
restart; health checks that need no token. TLS handshakes themselves: test_tls_transport.py."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import shutil
from collections.abc import Iterator

import grpc
import pytest
import pytest_asyncio
from prometheus_client import REGISTRY

from clipmesh.cli.certs import DevCredentials
from clipmesh.encoder.config import EncoderConfig
from clipmesh.encoder.server import create_app as create_encoder
from clipmesh.index.server import create_app as create_index
from clipmesh.orchestrator.config import OrchestratorConfig
from clipmesh.orchestrator.server import create_app as create_orchestrator
from clipmesh.runtime.auth import token_digest
from clipmesh.runtime.config import load_config
from clipmesh.runtime.dependencies import DependencyChannels
from clipmesh.runtime.logs import JsonFormatter
from clipmesh.runtime.security import channel_credentials
from clipmesh_api.encoder.v1 import encoder_pb2, encoder_pb2_grpc
from clipmesh_api.index.v1 import index_pb2, index_pb2_grpc
from clipmesh_client import Client, UnauthenticatedError, UnavailableError, tls_credentials
from clipmesh_client.wire import ChannelPolicy, open_aio_channel
from tests.integration.conftest import EXPIRY_METRIC, health_code, index_config, not_after, tls_env
from tests.media import encode, gradient_image
from tests.mesh import TINY_ENCODER_ENV
from tests.support import scrape_metrics, serve_in_process

pytestmark = pytest.mark.asyncio(loop_scope="module")
ALICE_TOKEN = "alice-token-0123456789"
SEARCH = "clipmesh.orchestrator.v1.SearchService"


@contextlib.contextmanager
def json_logs() -> Iterator[list[dict]]:
    """The JSON log lines (as the services print them) written inside the block."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("orchestrator"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    lines: list[dict] = []
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        lines.extend(json.loads(line) for line in stream.getvalue().splitlines())


# --- the orchestrator over mTLS, with tokens ---------------------------------------------


async def _index_one_video(encoder_target: str, index_target: str, config) -> None:
    """Indexes video "harbour" through channels holding the orchestrator's client certificate."""
    credentials = channel_credentials(config)
    async with (
        open_aio_channel(encoder_target, credentials=credentials) as encoder_channel,
        open_aio_channel(index_target, credentials=credentials) as index_channel,
    ):
        images = [encode(gradient_image(96, 64, seed=seed)) for seed in (11, 12)]
        embedded = await encoder_pb2_grpc.EncoderServiceStub(encoder_channel).EmbedImages(
            encoder_pb2.EmbedImagesRequest(images=images)
        )
        request = index_pb2.UpsertSegmentsRequest(collection="default")
        entry = request.videos.add()
        entry.video.video_id, entry.video.title = "harbour", "Harbour"
        for i, embedding in enumerate(embedded.embeddings):
            entry.segments.add(
                start_s=3 * i, end_s=3 * i + 3, keyframe_s=3 * i + 1.5, vector=embedding.vector
            )
        await index_pb2_grpc.IndexServiceStub(index_channel).UpsertSegments(request)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def secured(tmp_path_factory, mesh_ca):
    """Encoder and index requiring client certificates; the orchestrator's public port on TLS
    with token auth, calling them with its own certificate."""
    tokens = tmp_path_factory.mktemp("tokens") / "tokens.txt"
    tokens.write_text(f"# who may search\nalice:{token_digest(ALICE_TOKEN)}\nbob:bob-token\n")
    encoder_config = load_config(
        EncoderConfig, environ={**TINY_ENCODER_ENV, **tls_env("encoder", mesh_ca, client_auth=True)}
    )
    index_dir = tmp_path_factory.mktemp("index")
    index_cfg = index_config(index_dir, **tls_env("index", mesh_ca, client_auth=True))
    async with (
        serve_in_process(encoder_config, create_encoder(encoder_config)) as encoder,
        serve_in_process(index_cfg, create_index(index_cfg)) as index,
    ):
        config = load_config(
            OrchestratorConfig,
            environ={
                "CLIPMESH_ORCHESTRATOR_ENCODER_TARGET": encoder.target,
                "CLIPMESH_ORCHESTRATOR_INDEX_TARGET": index.target,
                "CLIPMESH_ORCHESTRATOR_DATA_DIR": str(tmp_path_factory.mktemp("orchestrator")),
                "CLIPMESH_ORCHESTRATOR_AUTH_TOKENS_FILE": str(tokens),
                **tls_env("orchestrator", mesh_ca, client_auth=False),
            },
        )
        await _index_one_video(encoder.target, index.target, config)
        async with serve_in_process(config, create_orchestrator(config)) as orchestrator:
            orchestrator.dependencies = {"encoder": encoder.target, "index": index.target}
            yield orchestrator


def _orchestrator_of(secured, data_dir, **settings) -> OrchestratorConfig:
    """An orchestrator's settings calling the secured encoder and index; `settings` are
    further CLIPMESH_ORCHESTRATOR_* values without the prefix."""
    environ = {
        "CLIPMESH_ORCHESTRATOR_ENCODER_TARGET": secured.dependencies["encoder"],
        "CLIPMESH_ORCHESTRATOR_INDEX_TARGET": secured.dependencies["index"],
        "CLIPMESH_ORCHESTRATOR_DATA_DIR": str(data_dir),
    }
    environ.update(
        {f"CLIPMESH_ORCHESTRATOR_{name}": str(value) for name, value in settings.items()}
    )
    return load_config(OrchestratorConfig, environ=environ)


def search(target: str, ca: DevCredentials, token: str | None):
    """A text search through the SDK over TLS, with `token` (or none)."""
    credentials = tls_credentials(ca.ca_file)
    with Client(target, credentials=credentials, token=token, max_attempts=1) as client:
        return client.search(text="a harbour", top_k=1, skip_cache=True, timeout_s=20)


async def test_a_search_with_a_valid_token_runs_end_to_end_over_mtls(
    secured, mesh_ca, span_exporter
) -> None:
    span_exporter.clear()
    with json_logs() as lines:
        result = await asyncio.to_thread(search, secured.target, mesh_ca, ALICE_TOKEN)
    assert result.hits[0].video.video_id == "harbour"
    handled = [line for line in lines if line["message"] == "rpc handled"]
    assert handled, lines
    assert handled[-1]["caller"] == "alice"
    assert handled[-1]["rpc"] == f"/{SEARCH}/SearchVideos"
    assert handled[-1]["code"] == "OK"
    server_span = await _server_span(span_exporter, f"/{SEARCH}/SearchVideos")
    assert server_span.attributes["enduser.id"] == "alice"
    samples = await scrape_metrics(secured.metrics_port)
    labels = (
        ("caller", "alice"),
        ("grpc_code", "OK"),
        ("grpc_method", "SearchVideos"),
        ("grpc_service", SEARCH),
    )
    assert samples[("clipmesh_caller_requests_total", labels)] >= 1


async def test_a_plaintext_token_line_names_its_caller_too(secured, mesh_ca) -> None:
    with json_logs() as lines:
        await asyncio.to_thread(search, secured.target, mesh_ca, "bob-token")
    assert [line["caller"] for line in lines if line["message"] == "rpc handled"] == ["bob"]


async def test_a_call_without_a_token_is_unauthenticated_and_names_the_header(
    secured, mesh_ca
) -> None:
    with pytest.raises(UnauthenticatedError) as refused:
        await asyncio.to_thread(search, secured.target, mesh_ca, None)
    assert refused.value.reason == "MISSING_TOKEN"
    assert "authorization: Bearer <token>" in refused.value.message


async def test_a_wrong_token_is_unauthenticated(secured, mesh_ca) -> None:
    with json_logs() as lines, pytest.raises(UnauthenticatedError) as refused:
        await asyncio.to_thread(search, secured.target, mesh_ca, "not-a-token")
    assert refused.value.reason == "INVALID_TOKEN"
    assert "not-a-token" not in json.dumps(lines)  # refusals never log what was presented
    assert not [line for line in lines if "caller" in line]


async def test_an_orchestrator_without_a_client_certificate_cannot_reach_the_encoder(
    secured, mesh_ca, tmp_path
) -> None:
    # Verifies the encoder's certificate but presents none of its own.
    config = _orchestrator_of(secured, tmp_path, TLS_CA_FILE=mesh_ca.ca_file)
    async with serve_in_process(config, create_orchestrator(config)) as orchestrator:
        with (
            Client(orchestrator.target, max_attempts=1) as client,
            pytest.raises(UnavailableError) as refused,
        ):
            await asyncio.to_thread(client.search, text="a harbour", timeout_s=20)
    assert refused.value.reason == "ENCODER_UNAVAILABLE"


async def test_renewed_client_certificates_reach_the_orchestrators_channels_without_restart(
    secured, mesh_ca, other_ca, tmp_path, caplog
) -> None:
    live = tmp_path / "live"
    live.mkdir()

    def install(credentials: DevCredentials, *names: str) -> None:
        """Swaps files in as a Secret update does: written aside, renamed over."""
        for name in names:
            shutil.copy(credentials.directory / name, live / f".{name}.new")
            os.replace(live / f".{name}.new", live / name)

    install(other_ca, "orchestrator.crt", "orchestrator.key")  # not trusted by the index
    config = _orchestrator_of(
        secured,
        tmp_path,
        TLS_CERT_FILE=live / "orchestrator.crt",
        TLS_KEY_FILE=live / "orchestrator.key",
        TLS_CA_FILE=mesh_ca.ca_file,
    )

    async def stats_code(channels: DependencyChannels) -> str:
        # Looked up per call, as the typed clients do: a renewal applies to the next call.
        stub = channels.stub(secured.dependencies["index"], index_pb2_grpc.IndexServiceStub)
        try:
            await stub.GetStats(index_pb2.GetStatsRequest(), timeout=5)
        except grpc.aio.AioRpcError as error:
            return error.code().name
        return "OK"

    channels = DependencyChannels(config, ChannelPolicy(timeout_s=10))
    try:
        assert await stats_code(channels) == "UNAVAILABLE"
        assert not channels.reload_credentials()  # nothing changed
        install(mesh_ca, "orchestrator.crt")  # half a rotation: the key is still the old one
        with caplog.at_level(logging.ERROR, logger="clipmesh.runtime"):
            assert not channels.reload_credentials()
        assert any("cannot be loaded" in r.getMessage() for r in caplog.records)
        install(mesh_ca, "orchestrator.key")  # the rotation completes
        assert channels.reload_credentials()
        assert await stats_code(channels) == "OK"
        expiry = REGISTRY.get_sample_value(EXPIRY_METRIC, {"usage": "client"})  # this process
        assert expiry == not_after(mesh_ca.cert_file("orchestrator"))
    finally:
        await channels.close()


async def test_health_checks_need_no_token(secured, mesh_ca) -> None:
    assert await health_code(secured.target, tls_credentials(mesh_ca.ca_file)) == "OK"


async def _server_span(exporter, name: str, timeout_s: float = 5.0):
    """The server span `name`, waiting for it to end (spans finish after the response)."""
    for _ in range(int(timeout_s / 0.05)):
        spans = [s for s in exporter.get_finished_spans() if s.name == name]
        server = [s for s in spans if s.kind.name == "SERVER"]
        if server:
            return server[-1]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no server span {name}")
