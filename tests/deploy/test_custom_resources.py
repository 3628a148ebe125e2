"""The custom resources the prod overlay ships validate against their CRD schemas, offline
(tools/validate_crds.mjs): prometheus-operator's PodMonitors and PrometheusRule, cert-manager's
Certificates and Issuers, CloudNativePG's Cluster. The PodMonitors really scrape every clipmesh
workload's metrics port and the database's exporter; what the certificates say is checked in
test_tls_manifests.py, what the services make of the database in test_high_availability.py."""

from __future__ import annotations

import json

import pytest

from tests.deploy.manifests import PROD, find, render, selector_matches, validate_crds

OPERATOR_GROUP = "monitoring.coreos.com/"
CERT_MANAGER_GROUP = "cert-manager.io/"
CLOUDNATIVEPG_GROUP = "postgresql.cnpg.io/"
# The port CloudNativePG's instance manager exports the database's metrics on, named metrics.
CLOUDNATIVEPG_METRICS_PORT = "metrics"


@pytest.fixture(scope="module")
def prod_objects() -> list[dict]:
    return render(PROD)


@pytest.fixture(scope="module")
def operator_objects(prod_objects) -> list[dict]:
    return [o for o in prod_objects if o["apiVersion"].startswith(OPERATOR_GROUP)]


@pytest.fixture(scope="module")
def cert_manager_objects(prod_objects) -> list[dict]:
    return [o for o in prod_objects if o["apiVersion"].startswith(CERT_MANAGER_GROUP)]


@pytest.fixture(scope="module")
def cloudnativepg_objects(prod_objects) -> list[dict]:
    return [o for o in prod_objects if o["apiVersion"].startswith(CLOUDNATIVEPG_GROUP)]


def test_prod_ships_the_pod_monitors_and_the_rules(operator_objects) -> None:
    """One monitor for the mesh's pods, one for the database's."""
    kinds = sorted(o["kind"] for o in operator_objects)
    assert kinds == ["PodMonitor", "PodMonitor", "PrometheusRule"]


def test_operator_objects_validate_against_the_crd_schemas(operator_objects) -> None:
    result = validate_crds(operator_objects)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("\nok ") + result.stdout.startswith("ok ") == len(operator_objects)


def test_cert_manager_objects_validate_against_the_crd_schemas(cert_manager_objects) -> None:
    kinds = sorted(o["kind"] for o in cert_manager_objects)
    assert kinds == ["Certificate"] * 6 + ["Issuer"] * 2  # the CA and one per workload
    result = validate_crds(cert_manager_objects)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok ") == len(cert_manager_objects)


def test_the_validator_rejects_what_cert_manager_would_reject(cert_manager_objects) -> None:
    certificate = next(o for o in cert_manager_objects if o["kind"] == "Certificate")
    broken = json.loads(json.dumps(certificate))
    broken["spec"]["duration"] = 2160  # must be a duration string
    result = validate_crds([broken])
    assert result.returncode == 1 and "duration must be string" in result.stdout


def test_cloudnativepg_objects_validate_against_the_crd_schema(cloudnativepg_objects) -> None:
    assert [o["kind"] for o in cloudnativepg_objects] == ["Cluster"]
    result = validate_crds(cloudnativepg_objects)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok ") == len(cloudnativepg_objects)


@pytest.mark.parametrize(
    ("path", "value", "why"),
    [
        (("spec", "instances"), "3", "data/spec/instances must be integer"),
        # Fields the CRD does not have are refused, as the API server's strict field
        # validation would: a misspelt field must not vanish silently.
        (("spec", "instance"), 3, "must NOT have additional properties: instance"),
        (("spec", "bootstrap", "initdb", "owners"), "x", "additional properties: owners"),
        (("spec", "primaryUpdateStrategy"), "auto", "must be equal to one of the allowed"),
    ],
    ids=["type", "unknown-field", "unknown-nested-field", "enum"],
)
def test_the_validator_rejects_what_cloudnativepg_would_reject(
    cloudnativepg_objects, path: tuple[str, ...], value: object, why: str
) -> None:
    broken = json.loads(json.dumps(cloudnativepg_objects[0]))
    *parents, leaf = path
    node = broken
    for key in parents:
        node = node[key]
    node[leaf] = value
    result = validate_crds([broken])
    assert result.returncode == 1 and why in result.stdout, result.stdout


def test_the_validator_rejects_what_the_operator_would_reject(operator_objects) -> None:
    monitor = find(operator_objects, "PodMonitor", "clipmesh")
    broken = json.loads(json.dumps(monitor))
    broken["spec"]["podMetricsEndpoints"][0]["interval"] = 15  # must be a duration string
    result = validate_crds([broken])
    assert result.returncode == 1 and "interval must be string" in result.stdout


def test_the_pod_monitor_scrapes_every_workload_on_its_metrics_port(prod_objects) -> None:
    monitor = find(prod_objects, "PodMonitor", "clipmesh")
    wanted = monitor["spec"]["selector"]["matchLabels"]
    ports = {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]}
    workloads = [o for o in prod_objects if o["kind"] in {"Deployment", "StatefulSet"}]
    assert len(workloads) == 5  # orchestrator, previs, encoder, index, generator
    for workload in workloads:
        template = workload["spec"]["template"]
        labels = template["metadata"]["labels"]
        assert wanted.items() <= labels.items(), workload["metadata"]["name"]
        named = {
            port.get("name")
            for container in template["spec"]["containers"]
            for port in container.get("ports", [])
        }
        assert ports <= named, f"{workload['metadata']['name']} has no port named {ports}"
        assert "app.kubernetes.io/component" in labels  # becomes the `component` label


def test_the_database_pod_monitor_scrapes_the_cloudnativepg_instances(prod_objects) -> None:
    """Its own monitor, with the label kube-prometheus-stack's Prometheus selects monitors by
    (the operator's would lack it); the instances' pods carry cnpg.io/cluster, and only them:
    no clipmesh workload is scraped twice."""
    mesh = find(prod_objects, "PodMonitor", "clipmesh")
    database = find(prod_objects, "PodMonitor", "clipmesh-postgresql")
    (cluster,) = [o for o in prod_objects if o["kind"] == "Cluster"]
    assert database["metadata"]["labels"]["release"] == mesh["metadata"]["labels"]["release"]
    instance_labels = {"cnpg.io/cluster": cluster["metadata"]["name"]}
    assert selector_matches(database["spec"]["selector"], instance_labels)
    assert not selector_matches(mesh["spec"]["selector"], instance_labels)
    assert [e["port"] for e in database["spec"]["podMetricsEndpoints"]] == [
        CLOUDNATIVEPG_METRICS_PORT
    ]
    workloads = [o for o in prod_objects if o["kind"] in {"Deployment", "StatefulSet"}]
    for workload in workloads:
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert not selector_matches(database["spec"]["selector"], labels)
    # Not the operator's deprecated monitor as well: the series would come twice.
    assert not cluster["spec"].get("monitoring", {}).get("enablePodMonitor", False)
