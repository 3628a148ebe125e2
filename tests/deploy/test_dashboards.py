"""The Grafana dashboards and the Prometheus rules read metrics the services really export.

Static checks parse every dashboard and query. The live check starts the services as
processes (the generator with a policy, so it exports its callers' quotas), gives them work
(ingest, searches, a generation), scrapes each one's /metrics and requires every metric a
dashboard or rule names to be there, with the labels the query uses.
"""

from __future__ import annotations

import io
import json
import re
from collections import defaultdict

import httpx
import numpy as np
import pytest
from PIL import Image
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

import clipmesh.encoder.metrics
import clipmesh.generator.metrics
import clipmesh.index.metrics
import clipmesh.orchestrator.metrics
import clipmesh.previs.metrics
import clipmesh.runtime.access  # noqa: F401  (registers what the services declare)
from clipmesh.demo.library import make_library
from clipmesh_client import Client
from clipmesh_client.generation import GeneratorClient
from tests.deploy.manifests import PROD, find, render
from tests.deploy.promql import (
    OBSERVABILITY,
    TARGET_LABELS,
    alert_rules,
    grouping_labels,
    outer_grouping,
    raw_selectors,
    recording_rules,
    selectors,
)
from tests.mesh import process_mesh
from tools import generate_dashboards

DASHBOARDS = sorted((OBSERVABILITY / "dashboards").glob("*.json"))
LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")
# The live generator's policy: one caller that may generate, with limits on both of the
# generator's quotas (a limit is exported only where there is one).
POLICY = """\
version: 1
callers:
  dashboards:
    grants: [{roles: [generate]}]
    quotas: {provider_video_seconds_per_day: 600, concurrent_jobs: 2}
"""


def _panels(dashboard: dict) -> list[dict]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def _dashboard_queries() -> list[tuple[str, str, dict]]:
    """(dashboard file, panel title, target) for every query of every dashboard."""
    return [
        (path.name, panel["title"], target)
        for path in DASHBOARDS
        for panel in _panels(json.loads(path.read_text("utf-8")))
        for target in panel["targets"]
    ]


def _all_expressions() -> dict[str, str]:
    """Where each expression comes from → the expression, dashboards and rules together."""
    found = {f"{name} / {title}: {t['expr']}": t["expr"] for name, title, t in _dashboard_queries()}
    found |= {f"record {name}": expr for name, expr in recording_rules().items()}
    found |= {f"alert {name}": rule["expr"] for name, rule in alert_rules().items()}
    return found


def test_the_committed_dashboards_are_what_the_generator_makes() -> None:
    assert [p.name for p in DASHBOARDS] == sorted(generate_dashboards.DASHBOARDS)
    for path in DASHBOARDS:
        wanted = generate_dashboards.render(generate_dashboards.DASHBOARDS[path.name])
        assert path.read_text("utf-8") == wanted, f"{path.name} is stale: run `make generate`"


def test_the_prod_overlay_ships_every_dashboard_as_it_is_in_the_repo() -> None:
    config_map = find(render(PROD), "ConfigMap", "clipmesh-dashboards")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["data"] == {p.name: p.read_text("utf-8") for p in DASHBOARDS}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_each_dashboard_is_well_formed(path) -> None:
    dashboard = json.loads(path.read_text("utf-8"))
    assert dashboard["uid"] == path.stem and dashboard["title"].startswith("clipmesh / ")
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "namespace"}
    for panel in _panels(dashboard):
        assert panel["title"] and panel["description"], panel
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert 'namespace="$namespace"' in target["expr"], target["expr"]


def test_every_query_parses_and_its_legend_names_labels_the_result_keeps() -> None:
    rules = recording_rules()
    for name, title, target in _dashboard_queries():
        expr = target["expr"]
        kept = outer_grouping(expr)
        if kept is None:  # no aggregation: the series' own labels
            (selector,) = {s.metric for s in selectors(expr)}
            kept = (outer_grouping(rules[selector]) if selector in rules else set()) or set()
            kept |= TARGET_LABELS
        legend = set(LEGEND_LABEL.findall(target["legendFormat"]))
        assert legend <= kept, f"{name} / {title}: legend names {legend - kept}, not kept"


def test_recorded_series_are_only_matched_on_labels_they_keep() -> None:
    rules = recording_rules()
    for origin, expr in _all_expressions().items():
        for selector in selectors(expr):
            if selector.metric in rules:
                kept = outer_grouping(rules[selector.metric]) | TARGET_LABELS
                assert selector.label_names <= kept, f"{origin}: {selector}"


def test_every_alert_reads_recorded_or_exported_series_only_through_known_rules() -> None:
    names = {s.metric for a in alert_rules().values() for s in selectors(a["expr"])}
    unknown = {n for n in names if ":" in n} - set(recording_rules())
    assert not unknown, f"alerts read recorded series no rule records: {unknown}"


# -- live: the services' own /metrics ---------------------------------------------------------


@pytest.fixture(scope="module")
def scrapes(tmp_path_factory) -> dict[str, str]:
    """Each service's /metrics text after ingest, searches and a generation ran."""
    from tests.conftest import free_port

    tmp_path = tmp_path_factory.mktemp("mesh")
    library = tmp_path / "library"
    make_library(library, count=2, seed=3, size=(160, 90))
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    environ = {
        "CLIPMESH_ORCHESTRATOR_ALLOWED_ROOTS": str(library),
        "CLIPMESH_GENERATOR_POLICY_FILE": str(policy),
    }
    with process_mesh(tmp_path, free_port, extra_env=environ) as services:
        with Client(services["orchestrator"]["target"], timeout_s=30) as client:
            events = list(client.ingest(sorted(library.glob("*.mp4"))))
            assert events[-1].ingested == 2, events[-1]
            client.search(text="a red boat at sea")
            client.search(text="a red boat at sea")  # answered from the cache
            client.search(image=_png(seed=1))
        with GeneratorClient(services["generator"]["target"], caller="dashboards") as generator:
            *_, last = generator.generate("a slow pan", size=(256, 144), duration_s=1, fps=12)
            assert last.job.state == "succeeded", last
        return {
            name: httpx.get(service["metrics"], timeout=10).text
            for name, service in services.items()
        }


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (90, 160, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def _exported(scrapes: dict[str, str]) -> dict[str, set[str]]:
    """Sample name → label names seen on it, over every service (TYPE/HELP-only families
    included: a labelled metric with no children yet still declares its name)."""
    labels: dict[str, set[str]] = defaultdict(set)
    for text in scrapes.values():
        for family in text_string_to_metric_families(text):
            suffixes = {
                "counter": ("_total", "_created"),
                "histogram": ("_bucket", "_sum", "_count", "_created"),
                "summary": ("_sum", "_count", "_created"),
                "info": ("_info",),
            }.get(family.type, ("",))
            for suffix in suffixes:
                labels[family.name + suffix] |= set()
            for sample in family.samples:
                labels[sample.name] |= set(sample.labels)
    return labels


def _declared_labels(sample_name: str) -> set[str]:
    """The label names the metric behind `sample_name` is declared with (in this process)."""
    # prometheus_client keeps no public map from sample names to collectors; this private
    # one is stable across its releases and only a test reads it.
    collector = REGISTRY._names_to_collectors.get(sample_name)
    declared = set(getattr(collector, "_labelnames", ()))
    return declared | {"le"} if sample_name.endswith("_bucket") else declared


def test_every_metric_the_dashboards_and_rules_read_is_exported_live(scrapes) -> None:
    exported = _exported(scrapes)
    rules = recording_rules()
    missing = defaultdict(list)
    for origin, expr in _all_expressions().items():
        for selector in raw_selectors(expr, rules):
            if selector.metric == "up":  # Prometheus's own series for every target
                continue
            if selector.metric not in exported:
                missing[selector.metric].append(origin)
    assert not missing, f"not exported by any service: {dict(missing)}"


def test_every_label_a_query_uses_exists_on_its_metric(scrapes) -> None:
    exported = _exported(scrapes)
    rules = recording_rules()
    for origin, expr in _all_expressions().items():
        raw = [s for s in raw_selectors(expr, rules) if s.metric != "up"]
        for selector in raw:
            known = exported[selector.metric] | _declared_labels(selector.metric) | TARGET_LABELS
            assert selector.label_names <= known, f"{origin}: {selector}"
        grouped = grouping_labels(expr) - TARGET_LABELS - {"le"}
        on_any = set().union(*(exported[s.metric] | _declared_labels(s.metric) for s in raw))
        assert grouped <= on_any | _recorded_labels(expr, rules), f"{origin}: by {grouped}"


def _recorded_labels(expr: str, rules: dict[str, str]) -> set[str]:
    return set().union(
        *(outer_grouping(rules[s.metric]) or set() for s in selectors(expr) if s.metric in rules)
    )


def test_metrics_are_exported_by_the_service_that_owns_them(scrapes) -> None:
    owners = {
        "clipmesh_search_seconds_bucket": "orchestrator",
        "clipmesh_encoder_queue_capacity": "encoder",
        "clipmesh_index_snapshot_interval_seconds": "index",
        "clipmesh_generator_jobs_ended_total": "generator",
        "clipmesh_generator_webhooks_pending": "generator",
        "clipmesh_quota_used": "generator",
        "clipmesh_quota_limit": "generator",
    }
    for sample, owner in owners.items():
        holders = {name for name, text in scrapes.items() if f"\n{sample}" in text}
        assert owner in holders, f"{sample} not in {owner}'s /metrics"
