"""Transport security and identity on real servers: TLS and mTLS handshakes with certificates
from `clipmesh dev-certs`, a search through the orchestrator over mTLS, bearer tokens with the
caller in logs, spans and metrics, certificate reload, and the plaintext default's warning."""

from __future__ import annotations

import asyncio
import contextlib
import io
import ipaddress
import json
import logging
import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from click.testing import CliRunner
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from clipmesh.cli.certs import CLIENT_NAME, DevCredentials, make_dev_credentials
from clipmesh.cli.main import cli
from clipmesh.cli.mesh import LocalMesh
from clipmesh.encoder.config import EncoderConfig
from clipmesh.encoder.server import create_app as create_encoder
from clipmesh.index.config import IndexConfig
from clipmesh.index.server import create_app as create_index
from clipmesh.orchestrator.config import OrchestratorConfig
from clipmesh.orchestrator.server import create_app as create_orchestrator
from clipmesh.runtime.auth import token_digest
from clipmesh.runtime.config import ConfigError, load_config
from clipmesh.runtime.dependencies import DependencyChannels
from clipmesh.runtime.logs import JsonFormatter
from clipmesh.runtime.security import channel_credentials
from clipmesh.runtime.server import StartupError, create_server
from clipmesh_api.encoder.v1 import encoder_pb2, encoder_pb2_grpc
from clipmesh_api.index.v1 import index_pb2, index_pb2_grpc
from clipmesh_client import Client, UnauthenticatedError, UnavailableError, tls_credentials
from clipmesh_client.wire import ChannelPolicy, open_aio_channel
from tests.media import encode, gradient_image
from tests.mesh import TINY_ENCODER_ENV
from tests.support import scrape_metrics, serve_in_process

pytestmark = pytest.mark.asyncio(loop_scope="module")
ALICE_TOKEN = "alice-token-0123456789"
SEARCH = "clipmesh.orchestrator.v1.SearchService"


@pytest.fixture(scope="module")
def mesh_ca(tmp_path_factory) -> DevCredentials:
    """The development credentials every secured server of this module uses."""
    return make_dev_credentials(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory) -> DevCredentials:
    """Credentials from an unrelated CA, which the mesh must not trust (30 days, so that its
    certificates' expiry differs from the mesh's)."""
    return make_dev_credentials(tmp_path_factory.mktemp("other-certs"), valid_days=30)


def tls_env(service: str, credentials: DevCredentials, *, client_auth: bool) -> dict[str, str]:
    prefix = f"CLIPMESH_{service.upper()}_"
    return {
        prefix + "TLS_CERT_FILE": str(credentials.cert_file(service)),
        prefix + "TLS_KEY_FILE": str(credentials.key_file(service)),
        prefix + "TLS_CA_FILE": str(credentials.ca_file),
        prefix + "TLS_CLIENT_AUTH": str(client_auth).lower(),
    }


def index_config(tmp_path: Path, **environ: str) -> IndexConfig:
    return load_config(IndexConfig, environ={"CLIPMESH_INDEX_DATA_DIR": str(tmp_path), **environ})


EXPIRY_METRIC = "clipmesh_tls_certificate_expiry_timestamp_seconds"


def not_after(certificate: Path) -> float:
    """The certificate's expiry as a Unix time."""
    return x509.load_pem_x509_certificate(certificate.read_bytes()).not_valid_after_utc.timestamp()


def client_cert(credentials: DevCredentials, *, trust: DevCredentials) -> grpc.ChannelCredentials:
    """The "client" certificate of `credentials`, verifying servers against `trust`'s CA."""
    return tls_credentials(
        trust.ca_file, credentials.cert_file(CLIENT_NAME), credentials.key_file(CLIENT_NAME)
    )


async def health_code(target: str, credentials: grpc.ChannelCredentials | None) -> str:
    """The status code a health check over a fresh connection ends with."""
    if credentials is None:
        channel = grpc.aio.insecure_channel(target)
    else:
        channel = grpc.aio.secure_channel(target, credentials)
    async with channel:
        try:
            await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
        except grpc.aio.AioRpcError as error:
            return error.code().name
    return "OK"


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


# --- TLS and mTLS handshakes -------------------------------------------------------------


async def test_a_tls_port_refuses_plaintext_and_serves_clients_trusting_its_ca(
    tmp_path, mesh_ca, other_ca
) -> None:
    config = index_config(tmp_path, **tls_env("index", mesh_ca, client_auth=False))
    async with serve_in_process(config, create_index(config)) as index:
        assert await health_code(index.target, None) == "UNAVAILABLE"
        assert await health_code(index.target, tls_credentials(other_ca.ca_file)) == "UNAVAILABLE"
        assert await health_code(index.target, tls_credentials(mesh_ca.ca_file)) == "OK"


async def test_with_client_auth_only_certificates_of_the_mesh_ca_get_in(
    tmp_path, mesh_ca, other_ca
) -> None:
    config = index_config(tmp_path, **tls_env("index", mesh_ca, client_auth=True))
    async with serve_in_process(config, create_index(config)) as index:
        no_certificate = tls_credentials(mesh_ca.ca_file)
        assert await health_code(index.target, no_certificate) == "UNAVAILABLE"
        foreign = client_cert(other_ca, trust=mesh_ca)
        assert await health_code(index.target, foreign) == "UNAVAILABLE"
        assert await health_code(index.target, client_cert(mesh_ca, trust=mesh_ca)) == "OK"


async def test_the_health_port_answers_plaintext_probes_and_serves_nothing_else(
    tmp_path, mesh_ca, free_ports
) -> None:
    health_port = free_ports()
    config = index_config(
        tmp_path,
        CLIPMESH_INDEX_HEALTH_PORT=str(health_port),
        **tls_env("index", mesh_ca, client_auth=True),
    )
    probe_target = f"127.0.0.1:{health_port}"
    async with serve_in_process(config, create_index(config)) as index:
        assert await health_code(index.target, None) == "UNAVAILABLE"  # main port: mTLS only
        assert await health_code(probe_target, None) == "OK"  # what a kubelet probe does
        async with grpc.aio.insecure_channel(probe_target) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await index_pb2_grpc.IndexServiceStub(channel).GetStats(
                    index_pb2.GetStatsRequest(), timeout=5
                )
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert await health_code(probe_target, None) == "UNAVAILABLE"  # closed with the service


async def test_a_health_port_equal_to_the_grpc_port_is_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match="CLIPMESH_INDEX_HEALTH_PORT=50052 is also the gRPC"):
        index_config(tmp_path, CLIPMESH_INDEX_PORT="50052", CLIPMESH_INDEX_HEALTH_PORT="50052")


async def test_a_renewed_certificate_is_served_to_new_connections_without_restart(
    tmp_path, mesh_ca, other_ca
) -> None:
    live = tmp_path / "live"
    live.mkdir()
    for name in ("index.crt", "index.key"):
        shutil.copy(mesh_ca.directory / name, live / name)
    config = index_config(
        tmp_path,
        CLIPMESH_INDEX_TLS_CERT_FILE=str(live / "index.crt"),
        CLIPMESH_INDEX_TLS_KEY_FILE=str(live / "index.key"),
    )
    async with serve_in_process(config, create_index(config)) as index:
        assert await health_code(index.target, tls_credentials(mesh_ca.ca_file)) == "OK"
        # Swapped in as a Kubernetes Secret update does: new files renamed over the old ones.
        for name in ("index.crt", "index.key"):
            shutil.copy(other_ca.directory / name, live / f".{name}.new")
            os.replace(live / f".{name}.new", live / name)
        assert await health_code(index.target, tls_credentials(other_ca.ca_file)) == "OK"
        assert await health_code(index.target, tls_credentials(mesh_ca.ca_file)) == "UNAVAILABLE"
        # What the alert on expiry reads: the certificate now served, not the first one.
        samples = await scrape_metrics(index.metrics_port)
        in_use = samples[(EXPIRY_METRIC, (("usage", "serving"),))]
        assert (
            in_use
            == not_after(other_ca.cert_file("index"))
            != not_after(mesh_ca.cert_file("index"))
        )


async def test_unusable_tls_files_stop_the_service_with_the_setting_and_file_named(
    tmp_path, mesh_ca, other_ca
) -> None:
    missing = index_config(
        tmp_path,
        CLIPMESH_INDEX_TLS_CERT_FILE=str(tmp_path / "absent.crt"),
        CLIPMESH_INDEX_TLS_KEY_FILE=str(mesh_ca.key_file("index")),
    )
    with pytest.raises(StartupError, match=r"CLIPMESH_INDEX_TLS_CERT_FILE=.*absent\.crt"):
        create_server(missing, create_index(missing))
    mismatched = index_config(
        tmp_path,
        CLIPMESH_INDEX_TLS_CERT_FILE=str(mesh_ca.cert_file("index")),
        CLIPMESH_INDEX_TLS_KEY_FILE=str(other_ca.key_file("index")),
    )
    with pytest.raises(StartupError, match=r"CLIPMESH_INDEX_TLS_KEY_FILE=.*does not match"):
        create_server(mismatched, create_index(mismatched))
    no_ca = replace(
        index_config(tmp_path, **tls_env("index", mesh_ca, client_auth=True)), tls_ca_file=""
    )
    with pytest.raises(StartupError, match="CLIPMESH_INDEX_TLS_CLIENT_AUTH needs"):
        create_server(no_ca, create_index(no_ca))


async def test_without_tls_settings_the_service_warns_at_start_that_it_is_plaintext(
    tmp_path, caplog
) -> None:
    config = index_config(tmp_path)
    with caplog.at_level(logging.WARNING, logger="clipmesh.runtime"):
        async with serve_in_process(config, create_index(config)):
            pass
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith("plaintext (no TLS)") for m in warnings), warnings
    assert any(m.startswith("auth off") for m in warnings), warnings


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
    config = load_config(
        OrchestratorConfig,
        environ={
            "CLIPMESH_ORCHESTRATOR_ENCODER_TARGET": secured.dependencies["encoder"],
            "CLIPMESH_ORCHESTRATOR_INDEX_TARGET": secured.dependencies["index"],
            "CLIPMESH_ORCHESTRATOR_DATA_DIR": str(tmp_path),
            # Verifies the encoder's certificate but presents none of its own.
            "CLIPMESH_ORCHESTRATOR_TLS_CA_FILE": str(mesh_ca.ca_file),
        },
    )
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
    config = load_config(
        OrchestratorConfig,
        environ={
            "CLIPMESH_ORCHESTRATOR_ENCODER_TARGET": secured.dependencies["encoder"],
            "CLIPMESH_ORCHESTRATOR_INDEX_TARGET": secured.dependencies["index"],
            "CLIPMESH_ORCHESTRATOR_DATA_DIR": str(tmp_path),
            "CLIPMESH_ORCHESTRATOR_TLS_CERT_FILE": str(live / "orchestrator.crt"),
            "CLIPMESH_ORCHESTRATOR_TLS_KEY_FILE": str(live / "orchestrator.key"),
            "CLIPMESH_ORCHESTRATOR_TLS_CA_FILE": str(mesh_ca.ca_file),
        },
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
        assert any("do not load" in r.getMessage() for r in caplog.records)
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


# --- clipmesh dev-certs and clipmesh up --tls ----------------------------------------------


async def test_up_with_tls_runs_internal_services_on_mtls_and_the_public_port_on_tokens(
    tmp_path,
) -> None:
    mesh = LocalMesh(data_dir=tmp_path, environ={}, tls=True)
    configs = {service.name: service.config for service in mesh.plan()}
    certs = tmp_path / "certs"
    for name, config in configs.items():
        assert (config.tls_cert_file, config.tls_key_file) == (
            str(certs / f"{name}.crt"),
            str(certs / f"{name}.key"),
        )
        assert config.tls_ca_file == str(certs / "ca.crt")
        public = name in ("orchestrator", "previs")
        assert config.tls_client_auth == (not public)
        assert config.auth_tokens_file == (str(certs / "tokens.txt") if public else "")
    assert DevCredentials(certs).token_file.is_file()
    assert mesh.probe_credentials() is not None


async def test_dev_certs_writes_a_ca_and_certificates_for_every_service(tmp_path) -> None:
    target = tmp_path / "certs"
    result = CliRunner().invoke(cli, ["dev-certs", str(target)])
    assert result.exit_code == 0, result.output
    ca = x509.load_pem_x509_certificate((target / "ca.crt").read_bytes())
    for service in ("encoder", "index", "generator", "orchestrator", "previs"):
        cert = x509.load_pem_x509_certificate((target / f"{service}.crt").read_bytes())
        cert.verify_directly_issued_by(ca)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert set(names.get_values_for_type(x509.DNSName)) == {service, "localhost"}
        assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    for secret in [*target.glob("*.key"), target / "local.token"]:
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
    assert stat.S_IMODE((target / "ca.crt").stat().st_mode) == 0o644
    token = (target / "local.token").read_text().strip()
    assert token not in (target / "tokens.txt").read_text()  # only its digest is stored
    assert token_digest(token) in (target / "tokens.txt").read_text()


async def test_dev_certs_never_overwrites_unless_forced(tmp_path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["dev-certs", str(tmp_path)]).exit_code == 0
    before = (tmp_path / "ca.crt").read_bytes()
    again = runner.invoke(cli, ["dev-certs", str(tmp_path)])
    assert again.exit_code != 0
    assert "--force" in again.output
    assert (tmp_path / "ca.crt").read_bytes() == before
    assert runner.invoke(cli, ["dev-certs", "--force", str(tmp_path)]).exit_code == 0
    assert (tmp_path / "ca.crt").read_bytes() != before
