"""TLS on real servers, with certificates from `clipmesh dev-certs`: TLS and mTLS handshakes
against the mesh's CA and a foreign one, the plaintext health-only port, a renewed certificate
served without a restart, unusable TLS files at start-up and the plaintext default's warning;
then what `clipmesh dev-certs` writes and how `clipmesh up --tls` secures the local mesh.
Tokens and the orchestrator over mTLS are in test_tls_token_auth.py."""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import stat
from dataclasses import replace

import grpc
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from clipmesh.cli.certs import CLIENT_NAME, DevCredentials
from clipmesh.cli.main import cli
from clipmesh.cli.mesh import LocalMesh
from clipmesh.index.server import create_app as create_index
from clipmesh.runtime.auth import token_digest
from clipmesh.runtime.config import ConfigError
from clipmesh.runtime.server import StartupError, create_server
from clipmesh_api.index.v1 import index_pb2, index_pb2_grpc
from clipmesh_client import tls_credentials
from tests.integration.conftest import EXPIRY_METRIC, health_code, index_config, not_after, tls_env
from tests.support import scrape_metrics, serve_in_process

pytestmark = pytest.mark.asyncio(loop_scope="module")


def client_cert(credentials: DevCredentials, *, trust: DevCredentials) -> grpc.ChannelCredentials:
    """The "client" certificate of `credentials`, verifying servers against `trust`'s CA."""
    return tls_credentials(
        trust.ca_file, credentials.cert_file(CLIENT_NAME), credentials.key_file(CLIENT_NAME)
    )


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
