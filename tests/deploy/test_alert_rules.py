"""clipmesh's Prometheus rules: promtool accepts them, every alert has unit tests that see it
fire and stay quiet, a summary, a severity and a runbook section, and the label values it
matches are values the services really emit."""

from __future__ import annotations

import re

import grpc
import pytest
import yaml

from clipmesh.generator.jobs import ENDED_STATES
from clipmesh.runtime.policy import Quota
from tests.deploy.promql import OBSERVABILITY, ROOT, alert_rules, recording_rules, selectors
from tools import check_rules

OPERATIONS = ROOT / "docs" / "operations.md"


def test_promtool_checks_the_rules_and_passes_every_alert_unit_test(tmp_path) -> None:
    checked, tested = check_rules.check(tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def _unit_tests() -> list[dict]:
    document = yaml.safe_load(check_rules.RULE_TESTS.read_text("utf-8"))
    return [case for test in document["tests"] for case in test.get("alert_rule_test", [])]


@pytest.mark.parametrize("alert", sorted(alert_rules()))
def test_every_alert_is_seen_firing_and_seen_quiet(alert) -> None:
    cases = [c for c in _unit_tests() if c["alertname"] == alert]
    assert any(c["exp_alerts"] for c in cases), f"no unit test sees {alert} fire"
    assert any(not c["exp_alerts"] for c in cases), f"no unit test sees {alert} stay quiet"


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors for the headings of `markdown`."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


@pytest.mark.parametrize("alert", sorted(alert_rules()))
def test_every_alert_says_what_happened_how_bad_and_where_the_runbook_is(alert) -> None:
    rule = alert_rules()[alert]
    assert rule["labels"]["severity"] in {"page", "ticket"}
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    document, _, anchor = rule["annotations"]["runbook_url"].partition("#")
    assert document == "docs/operations.md" and anchor == alert.lower()
    assert anchor in _anchors(OPERATIONS.read_text("utf-8")), f"no runbook section for {alert}"


def _matched_values(label: str) -> set[str]:
    """Every value the rules match `label` against (regex alternatives split)."""
    expressions = [*recording_rules().values(), *(a["expr"] for a in alert_rules().values())]
    return {
        value
        for expr in expressions
        for selector in selectors(expr)
        for name, _, pattern in selector.matchers
        if name == label
        for value in pattern.split("|")
    }


def test_grpc_codes_the_rules_match_are_codes_the_metrics_interceptor_writes() -> None:
    codes = _matched_values("grpc_code")
    assert codes, "the rules match no grpc_code"
    assert codes <= {code.name for code in grpc.StatusCode}


def test_generator_states_the_rules_match_are_states_jobs_end_in() -> None:
    states = _matched_values("state")
    ended = {state.value for state in ENDED_STATES}
    assert states and states <= ended


def test_quotas_the_rules_match_are_daily_quotas_of_the_policy() -> None:
    quotas = _matched_values("quota")
    assert quotas and quotas <= {quota.value for quota in Quota if quota.daily}


def test_rules_are_shipped_by_the_observability_component() -> None:
    kustomization = yaml.safe_load((OBSERVABILITY / "kustomization.yaml").read_text("utf-8"))
    assert "prometheus-rule.yaml" in kustomization["resources"]
    assert "podmonitor.yaml" in kustomization["resources"]
