"""What components/tls and components/api-tokens make of the prod overlay: every service on
TLS with a certificate cert-manager issues for the name its callers dial, mutual TLS on the
internal services, tokens on the public API, probes on the plaintext health-only port, and
certificates mounted so that renewals reach the pods.

The services' side of this runs for real in tests/integration: TLS, mTLS, reload and the
health port in test_tls_transport.py, tokens in test_tls_token_auth.py; the CRD schemas are
checked in test_custom_resources.py.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from clipmesh.cli.mesh import DEPENDENCIES
from tests.deploy.manifests import (
    DEV,
    PROD,
    Manifest,
    component,
    container_ports,
    find,
    loaded_configs,
    mount_holding,
    of_kind,
    render,
    volume_of_mount,
)

TLS_MOUNT = "/var/run/secrets/clipmesh/tls"
PUBLIC = {"orchestrator", "previs"}  # callers outside the mesh; they call the others inward
INTERNAL = {"encoder", "index", "generator"}
PUBLIC_NAMES = {
    "orchestrator": "api.clipmesh.example.com",
    "previs": "previs.clipmesh.example.com",
}


@pytest.fixture(scope="module")
def prod() -> list[Manifest]:
    return render(PROD)


@pytest.fixture(scope="module")
def configs(prod: list[Manifest]) -> dict[str, tuple[Manifest, dict, object]]:
    """Component name → (workload, container, its service config)."""
    return {component(workload): (workload, c, cfg) for workload, c, cfg in loaded_configs(prod)}


def certificate_of(prod: list[Manifest], workload: Manifest, container: dict) -> Manifest:
    """The Certificate whose Secret the container mounts at TLS_MOUNT."""
    mount = mount_holding(container, f"{TLS_MOUNT}/tls.crt")
    assert mount is not None and mount["mountPath"] == TLS_MOUNT, "no TLS Secret mounted"
    secret = volume_of_mount(workload, mount)["secret"]["secretName"]
    [certificate] = [c for c in of_kind(prod, "Certificate") if c["spec"]["secretName"] == secret]
    return certificate


def test_every_service_serves_tls_from_its_mounted_secret(configs) -> None:
    for name, (_, _, config) in configs.items():
        assert config.tls_cert_file == f"{TLS_MOUNT}/tls.crt", name
        assert config.tls_key_file == f"{TLS_MOUNT}/tls.key", name
        assert config.tls_ca_file == f"{TLS_MOUNT}/ca.crt", name


def test_internal_services_demand_client_certificates_and_the_public_api_tokens(configs) -> None:
    for name in INTERNAL:
        config = configs[name][2]
        assert config.tls_client_auth, f"{name} accepts callers without a certificate"
    for name in PUBLIC:
        config = configs[name][2]
        assert not config.tls_client_auth, f"{name}: outside callers carry no certificate"
        assert config.auth_tokens_file, f"{name}: the public API must check tokens"


def test_certificates_name_what_callers_dial_and_allow_what_the_service_does(
    prod: list[Manifest], configs
) -> None:
    dialled = {
        dependency: getattr(configs[caller][2], f"{dependency}_target")
        for caller, dependencies in DEPENDENCIES.items()
        for dependency in dependencies
    }
    for name, (workload, container, _) in configs.items():
        spec = certificate_of(prod, workload, container)["spec"]
        if name in dialled:
            host = urlsplit(dialled[name].replace("dns:///", "//")).hostname
            assert host in spec["dnsNames"], f"{name}: callers dial {host}"
        else:
            assert f"clipmesh-{name}" in spec["dnsNames"]
            assert PUBLIC_NAMES[name] in spec["dnsNames"], f"{name}: no public name"
        assert "server auth" in spec["usages"], name
        # Only the callers inward may present their certificate as a client.
        assert ("client auth" in spec["usages"]) == (name in PUBLIC), name
        assert spec["privateKey"]["rotationPolicy"] == "Always"


def test_certificates_come_from_the_mesh_ca_rooted_in_a_self_signed_issuer(
    prod: list[Manifest], configs
) -> None:
    for name, (workload, container, _) in configs.items():
        issuer_ref = certificate_of(prod, workload, container)["spec"]["issuerRef"]
        assert issuer_ref["kind"] == "Issuer", name
        issuer = find(prod, "Issuer", issuer_ref["name"])
        ca_certificate = next(
            c
            for c in of_kind(prod, "Certificate")
            if c["spec"]["secretName"] == issuer["spec"]["ca"]["secretName"]
        )
        assert ca_certificate["spec"]["isCA"]
        root = find(prod, "Issuer", ca_certificate["spec"]["issuerRef"]["name"])
        assert "selfSigned" in root["spec"]


def test_renewals_reach_the_pods(configs) -> None:
    """A Secret mounted as a directory is updated in place; through subPath it never is."""
    for name, (workload, container, _) in configs.items():
        for mount in container["volumeMounts"]:
            volume = volume_of_mount(workload, mount)
            if "secret" in volume:
                assert "subPath" not in mount, f"{name}: {mount['name']} by subPath"
                assert mount.get("readOnly"), f"{name}: {mount['name']} writable"


def test_probes_use_the_plaintext_health_port_and_it_serves_nothing_else(
    prod: list[Manifest], configs
) -> None:
    for name, (_, container, config) in configs.items():
        ports = container_ports(container)
        assert config.health_port == ports["health"] != ports["grpc"], name
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == ports["health"], f"{name}: {probe}"
    # Callers reach the gRPC port only: the health port is for the kubelet, not a Service.
    for service in of_kind(prod, "Service"):
        ports = service["spec"]["ports"]
        assert {p["name"] for p in ports} == {"grpc", "metrics"}, service["metadata"]["name"]
        grpc = next(p for p in ports if p["name"] == "grpc")
        assert grpc.get("appProtocol") != "kubernetes.io/h2c", "TLS is not cleartext HTTP/2"


def test_dev_stays_plaintext_without_cert_manager() -> None:
    dev = render(DEV)
    assert not of_kind(dev, "Certificate") and not of_kind(dev, "Issuer")
    for workload, _, config in loaded_configs(dev):
        assert not config.tls_cert_file and not config.health_port, component(workload)
        assert not config.auth_tokens_file, component(workload)
