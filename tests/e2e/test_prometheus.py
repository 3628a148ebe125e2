"""clipmesh watched by a real Prometheus with the files users run (deploy/prometheus: the scrape
configuration, its `clipmesh up` targets, the rules the Kubernetes component ships).

`clipmesh up --tls` runs the five services as production does (TLS, tokens, a policy with
quotas); Prometheus scrapes them every second from before the first request; a little traffic
follows (an ingest, searches, one refused search, a generation on the animatic backend). Then,
through Prometheus's HTTP API: every target is up with the labels the rules and dashboards
select by, every rule evaluates, every recording rule records series, every query of every
generated dashboard returns data (zeros where nothing happened, never "No data"), and the
refusal is an increase from 0.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipmesh.cli.certs import DevCredentials
from clipmesh.cli.services import CONFIG_TYPES, SERVICE_NAMES
from clipmesh.demo.library import make_library
from clipmesh_client import Client, tls_credentials
from clipmesh_client.errors import InvalidArgumentError
from clipmesh_client.generation import GeneratorClient
from tests.conftest import distinct_free_port
from tests.deploy.promql import OBSERVABILITY
from tests.mesh import mesh_environ
from tests.prometheus import (
    PrometheusServer,
    eventually,
    prometheus_binary,
    render_config,
    running_prometheus,
)

DASHBOARDS = OBSERVABILITY / "dashboards"
SCRAPE_INTERVAL_S = 1
# What Grafana puts for $__rate_interval: at least four scrape intervals; wider here so that a
# scrape delayed on a busy machine still leaves two samples in every window.
RATE_INTERVAL = "15s"
SETTLE_S = 45  # how long scrapes and rule evaluations may take to show what the tests check
# The development caller of `clipmesh up --tls` (its token is in certs/local.token), with a
# limit on every quota, so that the tenancy board has something to draw.
POLICY = """\
version: 1
callers:
  local:
    grants: [{roles: [admin]}]
    quotas:
      provider_video_seconds_per_day: 600
      concurrent_jobs: 4
      ingest_bytes_per_day: 1GiB
"""
VARIABLE_QUERY = re.compile(r"label_values\((\w+),\s*(\w+)\)")


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory) -> Iterator[PrometheusServer]:
    """Prometheus scraping `clipmesh up --tls` after an ingest, searches and a generation."""
    prometheus_binary()  # fail (CI) or skip before starting anything
    tmp_path = tmp_path_factory.mktemp("observed")
    library = tmp_path / "library"
    make_library(library, count=2, seed=3, size=(160, 90))
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    environ = mesh_environ(tmp_path / "state", distinct_free_port)
    environ["CLIPMESH_ORCHESTRATOR_ALLOWED_ROOTS"] = str(library)
    for name in ("orchestrator", "previs", "generator"):
        environ[CONFIG_TYPES[name].env_name("policy_file")] = str(policy)
    metrics_ports = {
        name: int(environ[CONFIG_TYPES[name].env_name("metrics_port")]) for name in SERVICE_NAMES
    }
    config_dir = tmp_path / "prometheus"
    config_dir.mkdir()
    config = render_config(config_dir, metrics_ports, SCRAPE_INTERVAL_S)
    data_dir = tmp_path / "mesh"
    with (
        _clipmesh_up(data_dir, environ),
        running_prometheus(config, distinct_free_port(), config_dir) as server,
    ):
        # Scraped once before any call: every series the traffic moves has a sample from before.
        eventually(lambda: _every_target_up(server), timeout_s=SETTLE_S)
        _traffic(environ, DevCredentials(data_dir / "certs"), library)
        yield server


@contextlib.contextmanager
def _clipmesh_up(data_dir: Path, environ: dict[str, str]) -> Iterator[None]:
    """`clipmesh up --tls` until the block exits, then SIGTERM (it stops every service)."""
    # Past --startup-timeout-s it gives up and exits, which ends the read below.
    command = ["clipmesh", "up", "--tls", "--data-dir", str(data_dir), "--startup-timeout-s", "120"]
    up = subprocess.Popen(
        [sys.executable, "-m", *command],
        env={**environ, "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = []
        for line in up.stdout:
            output.append(line)
            if "all services SERVING" in line:
                break
        else:
            pytest.fail("clipmesh up never became ready:\n" + "".join(output))
        yield
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            up.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            up.kill()
            up.communicate()


def _traffic(environ: dict[str, str], credentials: DevCredentials, library: Path) -> None:
    target = f"127.0.0.1:{environ[CONFIG_TYPES['orchestrator'].env_name('port')]}"
    token = credentials.token_file.read_text().strip()
    tls = tls_credentials(credentials.ca_file)
    with Client(target, timeout_s=60, credentials=tls, token=token) as client:
        events = list(client.ingest(sorted(library.glob("*.mp4"))))
        assert events[-1].ingested == 2, events[-1]
        client.search(text="a red boat at sea")
        client.search(text="a red boat at sea")  # answered from the cache
        client.search(image=_png(seed=1))
        with pytest.raises(InvalidArgumentError):  # the mesh's first refusal
            client.search(image=b"these bytes are no image")
    with GeneratorClient(target, timeout_s=60, credentials=tls, token=token) as generator:
        *_, last = generator.generate("a slow pan", size=(256, 144), duration_s=1, fps=12)
        assert last.job.state == "succeeded", last


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (90, 160, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def _every_target_up(prometheus: PrometheusServer) -> None:
    targets = prometheus.targets()
    assert sorted(t["labels"].get("component") for t in targets) == sorted(SERVICE_NAMES)
    assert all(t["health"] == "up" for t in targets), targets


def test_every_service_is_scraped_with_the_labels_the_rules_select_by(prometheus) -> None:
    _every_target_up(prometheus)
    for each in prometheus.targets():
        labels = each["labels"]
        assert labels["namespace"] == "clipmesh" and labels["job"] == "clipmesh/clipmesh"
        assert labels["pod"] == labels["instance"] == each["scrapeUrl"].split("/")[2]
    up = prometheus.query('up{job=~".+/clipmesh"}')  # what ClipmeshTargetDown watches
    assert sorted(s["metric"]["component"] for s in up) == sorted(SERVICE_NAMES)


def test_every_rule_evaluates_and_every_recording_rule_records_series(prometheus) -> None:
    def check() -> None:
        groups = prometheus.rule_groups()
        assert groups, "no rule groups loaded"
        rules = [rule for group in groups for rule in group["rules"]]
        unhealthy = [(r["name"], r["health"], r.get("lastError")) for r in rules]
        assert all(health == "ok" for _, health, _ in unhealthy), unhealthy
        recorded = [r["name"] for r in rules if r["type"] == "recording"]
        empty = [name for name in recorded if not prometheus.query(name)]
        assert not empty, f"recording rules with no series: {empty}"

    eventually(check, timeout_s=SETTLE_S)


def _dashboard_queries(prometheus: PrometheusServer) -> dict[str, str]:
    """`dashboard / panel: expr` → the expression as Grafana sends it: each variable at the
    value Grafana picks first (the first its query finds), $__rate_interval at RATE_INTERVAL."""
    found = {}
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text("utf-8"))
        values = {"$__rate_interval": RATE_INTERVAL}
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "query":
                values[f"${variable['name']}"] = _first_value(prometheus, variable["query"])
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for name, value in values.items():
                    expr = expr.replace(name, value)
                found[f"{path.stem} / {panel['title']}: {target['expr']}"] = expr
    return found


def _first_value(prometheus: PrometheusServer, query: str | dict) -> str:
    text = query if isinstance(query, str) else query["query"]
    matched = VARIABLE_QUERY.fullmatch(text)
    assert matched, f"a variable query the test cannot run: {text}"
    metric, label = matched.groups()
    values = prometheus.label_values(label, metric)
    assert values, f"the variable query {text} finds no value"
    return values[0]


def test_every_dashboard_query_returns_data(prometheus) -> None:
    def check() -> None:
        queries = _dashboard_queries(prometheus)
        assert len(queries) > 40  # every board's, not a glob that found nothing
        empty = [origin for origin, expr in queries.items() if not prometheus.query(expr)]
        assert not empty, "queries that return nothing:\n" + "\n".join(empty)

    eventually(check, timeout_s=SETTLE_S)


def test_a_first_refusal_shows_as_an_increase_from_zero(prometheus) -> None:
    """The series existed at 0 before the one bad search: rate() and increase() see it (a
    series born at 1 would show no increase, and an error ratio would miss a first failure)."""
    refused = (
        'sum(increase(grpc_server_handled_total{grpc_method="SearchVideos", '
        'grpc_code="INVALID_ARGUMENT"}[5m]))'
    )
    dropped = 'sum(increase(clipmesh_encoder_rejected_total{reason="invalid"}[5m]))'

    def check() -> None:
        for expr in (refused, dropped):
            found = prometheus.query(expr)
            assert [round(float(s["value"][1])) for s in found] == [1], (expr, found)

    eventually(check, timeout_s=SETTLE_S)
