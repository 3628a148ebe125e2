"""What a PromQL expression reads: its series selectors and the labels it groups and matches
by, from the expression's syntax tree (promql-parser), so dashboards and rules can be checked
against the metrics the services really export."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import promql_parser
import yaml

ROOT = Path(__file__).resolve().parents[2]
OBSERVABILITY = ROOT / "deploy" / "k8s" / "components" / "observability"

# Labels Prometheus (with the prometheus-operator PodMonitor) adds to every scraped series;
# `component` comes from the PodMonitor's relabeling of app.kubernetes.io/component.
# deploy/prometheus/prometheus.yml makes namespace, pod, component and job the same way.
TARGET_LABELS = frozenset(
    {"namespace", "pod", "container", "endpoint", "job", "instance", "component"}
)

# Grafana's template variables, replaced by plausible values before parsing.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$namespace": "clipmesh"}


@dataclass(frozen=True)
class Selector:
    """One series selector: the metric it names and the labels its matchers use."""

    metric: str
    matchers: tuple[tuple[str, str, str], ...]  # (label, operator, value)

    @property
    def label_names(self) -> set[str]:
        return {name for name, _, _ in self.matchers}


def parse(expr: str):
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return promql_parser.parse(expr)


def _children(node) -> Iterator:
    if isinstance(node, promql_parser.MatrixSelector):
        yield node.vector_selector
    elif isinstance(node, promql_parser.Call):
        yield from node.args
    elif isinstance(node, promql_parser.AggregateExpr):
        yield node.expr
        if node.param is not None:
            yield node.param
    elif isinstance(node, promql_parser.BinaryExpr):
        yield from (node.lhs, node.rhs)
    elif isinstance(
        node, promql_parser.ParenExpr | promql_parser.UnaryExpr | promql_parser.SubqueryExpr
    ):
        yield node.expr


def walk(node) -> Iterator:
    """Every node of the tree, parents before children."""
    yield node
    for child in _children(node):
        yield from walk(child)


def selectors(expr: str) -> list[Selector]:
    """The series selectors in `expr`."""
    return [
        Selector(
            node.name,
            tuple((m.name, str(m.op).split(".")[-1], m.value) for m in node.matchers.matchers),
        )
        for node in walk(parse(expr))
        if isinstance(node, promql_parser.VectorSelector)
    ]


def grouping_labels(expr: str) -> set[str]:
    """Labels named in `by`/`without` and in `on`/`ignoring`/`group_left` clauses."""
    found: set[str] = set()
    for node in walk(parse(expr)):
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            found |= set(node.modifier.labels)
        if isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None:
            if node.modifier.matching is not None:
                found |= set(node.modifier.matching.labels)
            found |= set(node.modifier.group_labels or ())
    return found


def outer_grouping(expr: str) -> set[str] | None:
    """The labels the result of `expr` keeps: the `by` labels of its outermost aggregation
    (without `le`, which histogram_quantile consumes); None when nothing aggregates."""
    for node in walk(parse(expr)):
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            return set(node.modifier.labels) - {"le"}
    return None


def recording_rules() -> dict[str, str]:
    """Recorded series name → its expression, from the PrometheusRule."""
    document = yaml.safe_load((OBSERVABILITY / "prometheus-rule.yaml").read_text("utf-8"))
    return {
        rule["record"]: rule["expr"]
        for group in document["spec"]["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


def alert_rules() -> dict[str, dict]:
    """Alert name → its rule, from the PrometheusRule."""
    document = yaml.safe_load((OBSERVABILITY / "prometheus-rule.yaml").read_text("utf-8"))
    return {
        rule["alert"]: rule
        for group in document["spec"]["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def raw_selectors(expr: str, rules: dict[str, str]) -> list[Selector]:
    """The selectors of `expr` with recorded series replaced by what their rules read."""
    found = []
    for selector in selectors(expr):
        if selector.metric in rules:
            found += raw_selectors(rules[selector.metric], rules)
        else:
            found.append(selector)
    return found
