"""The configuration for a Prometheus without the operator (deploy/prometheus): promtool
accepts it with its target files and the example for VMs, its rules are the ones the
Kubernetes component ships, and the `clipmesh up` targets are every service's default metrics
port. tests/e2e/test_prometheus.py runs it on a real Prometheus."""

from __future__ import annotations

import dataclasses
import shutil

import yaml

from clipmesh.cli.services import CONFIG_TYPES, SERVICE_NAMES
from tests.prometheus import CONFIG_NAME, PROMETHEUS_DIR, UP_TARGETS
from tools import check_rules, generate_prometheus_rules

VM_EXAMPLE = PROMETHEUS_DIR / "examples" / "targets-vms.yml"


def test_promtool_accepts_the_configuration_its_rules_and_targets_with_the_vm_example(
    tmp_path,
) -> None:
    shutil.copytree(PROMETHEUS_DIR, tmp_path, dirs_exist_ok=True)
    shutil.copy(VM_EXAMPLE, tmp_path / "targets" / VM_EXAMPLE.name)  # as its comment says
    checked = check_rules.promtool("check", "config", CONFIG_NAME, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 1 rule files found" in checked.stdout


def test_the_rules_are_the_prometheus_rule_the_kubernetes_component_ships() -> None:
    rules = generate_prometheus_rules.RULES_FILE
    assert rules.read_text("utf-8") == generate_prometheus_rules.render(), (
        f"{rules.name} is stale: run `make generate`"
    )
    assert yaml.safe_load(rules.read_text("utf-8")) == {"groups": check_rules.rule_groups()}
    config = yaml.safe_load((PROMETHEUS_DIR / CONFIG_NAME).read_text("utf-8"))
    assert config["rule_files"] == [rules.name]


def _default_metrics_port(service: str) -> int:
    (field,) = (f for f in dataclasses.fields(CONFIG_TYPES[service]) if f.name == "metrics_port")
    return field.default


def test_the_clipmesh_up_targets_are_every_service_at_its_default_metrics_port() -> None:
    entries = yaml.safe_load((PROMETHEUS_DIR / UP_TARGETS).read_text("utf-8"))
    found = {entry["labels"]["component"]: entry["targets"] for entry in entries}
    assert found == {name: [f"127.0.0.1:{_default_metrics_port(name)}"] for name in SERVICE_NAMES}


def test_every_vm_target_names_its_service() -> None:
    entries = yaml.safe_load(VM_EXAMPLE.read_text("utf-8"))
    assert {entry["labels"]["component"] for entry in entries} == set(SERVICE_NAMES)
