"""The custom resources the prod overlay ships validate against their CRD schemas, offline
(tools/validate_crds.mjs): prometheus-operator's PodMonitor and PrometheusRule, cert-manager's
Certificates and Issuers. The PodMonitor really scrapes every clipmesh workload's metrics port;
what the certificates say is checked in test_tls_manifests.py."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.deploy.manifests import PROD, render
from tests.deploy.promql import ROOT

VALIDATOR = ROOT / "tools" / "validate_crds.mjs"
OPERATOR_GROUP = "monitoring.coreos.com/"
CERT_MANAGER_GROUP = "cert-manager.io/"


def _validate(objects: list[dict]) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node, "node not found: the deploy checks need Node.js (npm packages, `make install`)"
    return subprocess.run(
        [node, str(VALIDATOR)],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def prod_objects() -> list[dict]:
    return render(PROD)


@pytest.fixture(scope="module")
def operator_objects(prod_objects) -> list[dict]:
    return [o for o in prod_objects if o["apiVersion"].startswith(OPERATOR_GROUP)]


@pytest.fixture(scope="module")
def cert_manager_objects(prod_objects) -> list[dict]:
    return [o for o in prod_objects if o["apiVersion"].startswith(CERT_MANAGER_GROUP)]


def test_prod_ships_a_pod_monitor_and_the_rules(operator_objects) -> None:
    assert sorted(o["kind"] for o in operator_objects) == ["PodMonitor", "PrometheusRule"]


def test_operator_objects_validate_against_the_crd_schemas(operator_objects) -> None:
    result = _validate(operator_objects)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("\nok ") + result.stdout.startswith("ok ") == len(operator_objects)


def test_cert_manager_objects_validate_against_the_crd_schemas(cert_manager_objects) -> None:
    kinds = sorted(o["kind"] for o in cert_manager_objects)
    assert kinds == ["Certificate"] * 6 + ["Issuer"] * 2  # the CA and one per workload
    result = _validate(cert_manager_objects)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok ") == len(cert_manager_objects)


def test_the_validator_rejects_what_cert_manager_would_reject(cert_manager_objects) -> None:
    certificate = next(o for o in cert_manager_objects if o["kind"] == "Certificate")
    broken = json.loads(json.dumps(certificate))
    broken["spec"]["duration"] = 2160  # must be a duration string
    result = _validate([broken])
    assert result.returncode == 1 and "duration must be string" in result.stdout


def test_the_validator_rejects_what_the_operator_would_reject(operator_objects) -> None:
    (monitor,) = [o for o in operator_objects if o["kind"] == "PodMonitor"]
    broken = json.loads(json.dumps(monitor))
    broken["spec"]["podMetricsEndpoints"][0]["interval"] = 15  # must be a duration string
    result = _validate([broken])
    assert result.returncode == 1 and "interval must be string" in result.stdout


def test_the_pod_monitor_scrapes_every_workload_on_its_metrics_port(prod_objects) -> None:
    (monitor,) = [o for o in prod_objects if o["kind"] == "PodMonitor"]
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
