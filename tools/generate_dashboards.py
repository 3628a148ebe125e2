"""Generates clipmesh's Grafana dashboards (JSON) from code, with the Grafana Foundation SDK.

    python -m tools.generate_dashboards          # (re)write the JSON files
    python -m tools.generate_dashboards --check  # fail when the committed JSON differs

The JSON lands in deploy/k8s/components/observability/dashboards/, where the observability
component ships it as ConfigMaps for Grafana's dashboard sidecar. Queries use the recorded
series of prometheus-rule.yaml where one exists (cheap to draw, the same numbers the alerts
see) and raw metrics otherwise; tests/deploy/test_dashboards.py checks every name against the
services' live /metrics.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from tools.dashboards.generation import generation_dashboard
from tools.dashboards.grpc_services import grpc_dashboard
from tools.dashboards.search import search_dashboard
from tools.dashboards.tenancy import tenancy_dashboard

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "deploy" / "k8s" / "components" / "observability" / "dashboards"

DASHBOARDS = {
    "clipmesh-search.json": search_dashboard,
    "clipmesh-generation.json": generation_dashboard,
    "clipmesh-grpc.json": grpc_dashboard,
    "clipmesh-tenancy.json": tenancy_dashboard,
}


def render(build) -> str:
    """The dashboard `build` makes, as JSON, with panel ids numbered from 1 (Grafana links
    panels by id; the SDK leaves them unset)."""
    model = json.loads(json.dumps(build().build(), cls=JSONEncoder))
    for number, each in enumerate(model["panels"], start=1):
        each["id"] = number
    return json.dumps(model, indent=2, sort_keys=True) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the JSON is out of date")
    check = parser.parse_args().check
    stale = []
    for name, build in DASHBOARDS.items():
        path, wanted = OUTPUT / name, render(build)
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current == wanted:
            continue
        if check:
            stale.append(name)
            sys.stdout.writelines(
                difflib.unified_diff(
                    current.splitlines(True), wanted.splitlines(True), str(path), "generated", n=1
                )
            )
        else:
            OUTPUT.mkdir(parents=True, exist_ok=True)
            path.write_text(wanted, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print(f"dashboards out of date: {stale}; run `make generate`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
