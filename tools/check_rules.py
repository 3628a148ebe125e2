"""Checks clipmesh's Prometheus rules with promtool: syntax (`check rules`) and the alert unit
tests (`test rules`).

The rules live in a PrometheusRule object (deploy/k8s/components/observability/
prometheus-rule.yaml) because that is what the Prometheus operator deploys; promtool reads plain
rule files, so its `spec` is written out to a scratch directory next to the tests. promtool
compares every annotation of a firing alert; the tests (alerts-test.yaml) spell out only the
templated ones (`summary`) and the fixed text (description, runbook_url) is filled in here from
the rules, so it is written once.

    python tools/check_rules.py        # exit status 0 when both pass
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
OBSERVABILITY = ROOT / "deploy" / "k8s" / "components" / "observability"
PROMETHEUS_RULE = OBSERVABILITY / "prometheus-rule.yaml"
RULE_TESTS = OBSERVABILITY / "alerts-test.yaml"
# The name alerts-test.yaml's `rule_files` refers to.
RULES_FILE_NAME = "clipmesh-rules.yaml"


def rule_groups(path: Path = PROMETHEUS_RULE) -> list[dict]:
    """The rule groups of the PrometheusRule in `path`."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    if document.get("kind") != "PrometheusRule":
        raise ValueError(f"{path} holds a {document.get('kind')}, not a PrometheusRule")
    return document["spec"]["groups"]


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Runs promtool; raises FileNotFoundError naming the install step when it is missing."""
    executable = shutil.which("promtool")
    if executable is None:
        raise FileNotFoundError("promtool not found: run `make system-deps` (Debian: prometheus)")
    return subprocess.run(
        [executable, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def fixed_annotations(groups: list[dict]) -> dict[str, dict[str, str]]:
    """Alert name → its annotations that hold no template (the same on every firing)."""
    return {
        rule["alert"]: {k: v for k, v in rule.get("annotations", {}).items() if "{{" not in v}
        for group in groups
        for rule in group["rules"]
        if "alert" in rule
    }


def completed_tests(groups: list[dict], path: Path = RULE_TESTS) -> dict:
    """The unit tests in `path` with each expected alert's fixed annotations filled in."""
    tests = yaml.safe_load(path.read_text(encoding="utf-8"))
    fixed = fixed_annotations(groups)
    for test in tests["tests"]:
        for case in test.get("alert_rule_test", []):
            for alert in case.get("exp_alerts", []):
                alert["exp_annotations"] = {
                    **fixed[case["alertname"]],
                    **alert.get("exp_annotations", {}),
                }
    return tests


def check(workdir: Path) -> list[subprocess.CompletedProcess[str]]:
    """Writes the rules and tests into `workdir`, runs both promtool checks, returns them."""
    groups = rule_groups()
    rules = workdir / RULES_FILE_NAME
    rules.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False), encoding="utf-8")
    tests = completed_tests(groups)
    (workdir / RULE_TESTS.name).write_text(yaml.safe_dump(tests, sort_keys=False), encoding="utf-8")
    return [
        promtool("check", "rules", rules.name, cwd=workdir),
        promtool("test", "rules", RULE_TESTS.name, cwd=workdir),
    ]


def main() -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    with tempfile.TemporaryDirectory(prefix="clipmesh-rules-") as scratch:
        results = check(Path(scratch))
    for result in results:
        print(f"$ {' '.join(result.args[1:])}\n{result.stdout}{result.stderr}", end="")
    return 0 if all(r.returncode == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
