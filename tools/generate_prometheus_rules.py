"""Writes clipmesh's rules as a plain Prometheus rules file for a Prometheus without the
operator (deploy/prometheus/clipmesh-rules.yaml), from the PrometheusRule the Kubernetes
component ships: one source of truth, two forms.

    python -m tools.generate_prometheus_rules          # (re)write the rules file
    python -m tools.generate_prometheus_rules --check  # fail when the committed file differs

The rules file is the PrometheusRule's `spec` block as text, one indent level out, so the
comments beside the rules travel with them; it is checked to load as exactly the same groups.
"""

from __future__ import annotations

import argparse
import difflib
import sys

import yaml

from tools.check_rules import PROMETHEUS_RULE, ROOT, rule_groups

RULES_FILE = ROOT / "deploy" / "prometheus" / "clipmesh-rules.yaml"
HEADER = """\
# clipmesh's recording rules and alerts for a Prometheus without the operator
# (deploy/prometheus/prometheus.yml loads this file). Generated from
# deploy/k8s/components/observability/prometheus-rule.yaml by `make generate`: edit that file,
# not this one. Runbooks: docs/operations.md#alerts.
"""


def render() -> str:
    """The rules file: the PrometheusRule's `spec` block dedented, under a header.

    Raises:
        ValueError: The text taken out does not load as the PrometheusRule's groups (a layout
            the dedent cannot follow, e.g. `spec` not last or not indented by two spaces).
    """
    text = PROMETHEUS_RULE.read_text(encoding="utf-8")
    _, found, spec = text.partition("\nspec:\n")
    if not found:
        raise ValueError(f"{PROMETHEUS_RULE}: no top-level `spec:` line")
    lines = [line.removeprefix("  ") for line in spec.splitlines()]
    rendered = HEADER + "\n".join(lines) + "\n"
    if yaml.safe_load(rendered) != {"groups": rule_groups()}:
        raise ValueError(f"{PROMETHEUS_RULE}: its spec block, dedented, is not its rule groups")
    return rendered


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    check = parser.parse_args().check
    wanted = render()
    current = RULES_FILE.read_text(encoding="utf-8") if RULES_FILE.exists() else ""
    if current == wanted:
        return 0
    if not check:
        RULES_FILE.write_text(wanted, encoding="utf-8")
        print(f"wrote {RULES_FILE.relative_to(ROOT)}")
        return 0
    sys.stdout.writelines(
        difflib.unified_diff(
            current.splitlines(True), wanted.splitlines(True), str(RULES_FILE), "generated", n=1
        )
    )
    print(f"{RULES_FILE.relative_to(ROOT)} is out of date; run `make generate`", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
