"""Generates clipmesh's Grafana dashboards (JSON) from code, with the Grafana Foundation SDK.

    python tools/generate_dashboards.py          # (re)write the JSON files
    python tools/generate_dashboards.py --check  # fail when the committed JSON differs

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

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import prometheus, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    VariableRefresh,
)

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "deploy" / "k8s" / "components" / "observability" / "dashboards"

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
NS = 'namespace="$namespace"'
BUDGET_S = 0.5  # the search budget (docs/operations.md): drawn as a red line
RATE = "$__rate_interval"


def query(expr: str, legend: str) -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).datasource(DATASOURCE)


def panel(
    title: str,
    description: str,
    unit: str,
    *queries: prometheus.Dataquery,
    red_from: float | None = None,
    stacked: bool = False,
    width: int = 12,
) -> timeseries.Panel:
    """A time series panel; `red_from` draws a dashed red threshold line at that value."""
    built = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .min(0)
        .span(width)
        .height(8)
        .fill_opacity(10 if not stacked else 40)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
    )
    for each in queries:
        built = built.with_target(each)
    if red_from is not None:
        steps = [Threshold(value=None, color="green"), Threshold(value=red_from, color="red")]
        built = built.thresholds(
            dashboard_builders.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(steps)
        ).thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(common.GraphTresholdsStyleMode.DASHED)
        )
    if stacked:
        built = built.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    return built


def quantiles(metric: str, by: str, *levels: float) -> list[prometheus.Dataquery]:
    """histogram_quantile queries of `metric` (a histogram), per `by` label if one is named."""
    group = f"{by}, le" if by else "le"
    legend = f" {{{{{by}}}}}" if by else ""
    return [
        query(
            f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{{{NS}}}[{RATE}])))",
            f"p{round(q * 100)}{legend}",
        )
        for q in levels
    ]


def base(uid: str, title: str, description: str) -> dashboard_builders.Dashboard:
    """A dashboard with the datasource and namespace variables every clipmesh board uses."""
    return (
        dashboard_builders.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["clipmesh"])
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .time("now-3h", "now")
        .refresh("30s")
        .timezone("browser")
        .with_variable(
            dashboard_builders.DatasourceVariable("datasource")
            .label("Data source")
            .type("prometheus")
        )
        .with_variable(
            dashboard_builders.QueryVariable("namespace")
            .label("Namespace")
            .datasource(DATASOURCE)
            .query("label_values(clipmesh_service_info, namespace)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        )
    )


def search_dashboard() -> dashboard_builders.Dashboard:
    return (
        base(
            "clipmesh-search",
            "clipmesh / Search budget",
            "End-to-end search latency against the 500 ms budget, per stage, and the encoder "
            "and index behind it.",
        )
        .with_row(dashboard_builders.Row("Search against the 500 ms budget"))
        .with_panel(
            panel(
                "Search latency",
                "End-to-end SearchVideos latency (recorded quantiles over 5 minutes). The red "
                "line is the 500 ms budget; ClipmeshSearchLatencyP99High pages when p99 stays "
                "above it for 5 minutes.",
                "s",
                query(f"clipmesh:search_seconds:p50_5m{{{NS}}}", "p50"),
                query(f"clipmesh:search_seconds:p95_5m{{{NS}}}", "p95"),
                query(f"clipmesh:search_seconds:p99_5m{{{NS}}}", "p99"),
                red_from=BUDGET_S,
            )
        )
        .with_panel(
            panel(
                "Budget exceeded",
                "Share of searches that ran past their budget or failed because of it.",
                "percentunit",
                query(f"clipmesh:search_budget_exceeded:ratio_5m{{{NS}}}", "exceeded"),
                red_from=0.01,
            )
        )
        .with_panel(
            panel(
                "Searches per second, by query kind",
                "SearchVideos calls answered, by the kind of query (image, text, clip, mixed).",
                "reqps",
                query(
                    f"sum by (kind) (rate(clipmesh_search_seconds_count{{{NS}}}[{RATE}]))",
                    "{{kind}}",
                ),
                stacked=True,
            )
        )
        .with_panel(
            panel(
                "p99 by query kind",
                "Text queries skip image decoding; clip queries skip the encoder.",
                "s",
                query(f"clipmesh:search_seconds_by_kind:p99_5m{{{NS}}}", "{{kind}}"),
                red_from=BUDGET_S,
            )
        )
        .with_panel(
            panel(
                "Stage latency",
                "Where the budget goes: p50 and p99 of each stage of a search.",
                "s",
                query(f"clipmesh:search_stage_seconds:p50_5m{{{NS}}}", "p50 {{stage}}"),
                query(f"clipmesh:search_stage_seconds:p99_5m{{{NS}}}", "p99 {{stage}}"),
            )
        )
        .with_panel(
            panel(
                "Hot-query cache hit ratio",
                "Repeated queries answered from the orchestrator's cache.",
                "percentunit",
                query(
                    f'sum(rate(clipmesh_search_cache_lookups_total{{{NS}, result="hit"}}[{RATE}]))'
                    f" / sum(rate(clipmesh_search_cache_lookups_total{{{NS}}}[{RATE}]))",
                    "hit ratio",
                ),
            )
        )
        .with_row(dashboard_builders.Row("Encoder"))
        .with_panel(
            panel(
                "Items encoded per second",
                "Images and texts embedded, all encoder replicas together.",
                "ops",
                query(f"clipmesh:encoder_items:rate5m{{{NS}}}", "{{modality}}"),
            )
        )
        .with_panel(
            panel(
                "Batch size",
                "Items per executed batch: mean, and p95. Small batches under load mean "
                "max_queue_delay_ms is too short or there are too many replicas.",
                "short",
                query(
                    f"sum by (modality) (rate(clipmesh_encoder_batch_size_sum{{{NS}}}[{RATE}]))"
                    f" / sum by (modality) (rate(clipmesh_encoder_batch_size_count{{{NS}}}"
                    f"[{RATE}]))",
                    "mean {{modality}}",
                ),
                *quantiles("clipmesh_encoder_batch_size", "modality", 0.95),
            )
        )
        .with_panel(
            panel(
                "Queue time",
                "Time an item waits for its batch.",
                "s",
                *quantiles("clipmesh_encoder_queue_seconds", "modality", 0.5, 0.99),
            )
        )
        .with_panel(
            panel(
                "Queue saturation",
                "Queued items over max_queue_items, per pod; at 100% requests are refused. "
                "ClipmeshEncoderQueueSaturated fires above 80% for 5 minutes.",
                "percentunit",
                query(f"clipmesh:encoder_queue:saturation{{{NS}}}", "{{pod}} {{modality}}"),
                red_from=0.8,
            )
        )
        .with_panel(
            panel(
                "Batch compute time",
                "Model time of one batch (p50, p99).",
                "s",
                *quantiles("clipmesh_encoder_batch_compute_seconds", "modality", 0.5, 0.99),
            )
        )
        .with_panel(
            panel(
                "Refused or dropped items",
                "Items the encoder refused (queue full, invalid) or dropped (deadline passed, "
                "caller gone).",
                "ops",
                query(
                    f"sum by (reason) (rate(clipmesh_encoder_rejected_total{{{NS}}}[{RATE}]))",
                    "{{reason}}",
                ),
                stacked=True,
            )
        )
        .with_row(dashboard_builders.Row("Index"))
        .with_panel(
            panel(
                "Index size",
                "Segments (vectors) and videos per collection.",
                "short",
                query(
                    f"sum by (collection) (clipmesh_index_segments{{{NS}}})",
                    "segments {{collection}}",
                ),
                query(
                    f"sum by (collection) (clipmesh_index_videos{{{NS}}})", "videos {{collection}}"
                ),
            )
        )
        .with_panel(
            panel(
                "Index search latency",
                "p99 of one index search, by backend; reduced-effort (degraded) searches per "
                "second when deadlines are short.",
                "s",
                query(f"clipmesh:index_search_seconds:p99_5m{{{NS}}}", "p99 {{backend}}"),
            )
        )
        .with_panel(
            panel(
                "Degraded searches",
                "Searches answered with fewer probes because the deadline was short.",
                "ops",
                query(
                    f"sum by (backend) (rate(clipmesh_index_degraded_searches_total{{{NS}}}"
                    f"[{RATE}]))",
                    "{{backend}}",
                ),
            )
        )
        .with_panel(
            panel(
                "Snapshot age and write-ahead log",
                "Seconds since the last snapshot, per index pod (embedded FAISS). "
                "ClipmeshIndexSnapshotStale fires past twice the snapshot interval while the log "
                "holds writes.",
                "s",
                query(f"clipmesh_index_snapshot_age_seconds{{{NS}}}", "age {{pod}}"),
                query(f"clipmesh_index_snapshot_interval_seconds{{{NS}}}", "interval {{pod}}"),
            )
        )
    )


def generation_dashboard() -> dashboard_builders.Dashboard:
    return (
        base(
            "clipmesh-generation",
            "clipmesh / Generation and previs",
            "The generator gateway's jobs, queue and providers, and the previs pipeline on top.",
        )
        .with_row(dashboard_builders.Row("Jobs"))
        .with_panel(
            panel(
                "Jobs by state",
                "Jobs the gateway holds now.",
                "short",
                query(f"sum by (state) (clipmesh_generator_jobs{{{NS}}})", "{{state}}"),
                stacked=True,
            )
        )
        .with_panel(
            panel(
                "Jobs ended per minute",
                "Jobs that ended, by final state and backend.",
                "short",
                query(
                    f"sum by (backend, state) (increase(clipmesh_generator_jobs_ended_total"
                    f"{{{NS}}}[1m]))",
                    "{{backend}} {{state}}",
                ),
                stacked=True,
            )
        )
        .with_panel(
            panel(
                "Failure ratio",
                "Failed over ended (succeeded + failed), 30 minutes. "
                "ClipmeshGenerationFailureRateHigh fires above 20%.",
                "percentunit",
                query(f"clipmesh:generator_jobs_failed:ratio_30m{{{NS}}}", "{{backend}}"),
                red_from=0.2,
            )
        )
        .with_panel(
            panel(
                "Provider errors",
                "Errors providers answered, by backend and the provider's code.",
                "ops",
                query(
                    f"sum by (backend, code) (rate(clipmesh_generator_provider_errors_total"
                    f"{{{NS}}}[{RATE}]))",
                    "{{backend}} {{code}}",
                ),
                query(
                    f"sum by (backend) (rate(clipmesh_generator_provider_retries_total"
                    f"{{{NS}}}[{RATE}]))",
                    "{{backend}} retries",
                ),
            )
        )
        .with_row(dashboard_builders.Row("Queue and latency"))
        .with_panel(
            panel(
                "Queue depth",
                "Jobs waiting for a provider slot.",
                "short",
                query(f"sum by (backend) (clipmesh_generator_queue_depth{{{NS}}})", "{{backend}}"),
            )
        )
        .with_panel(
            panel(
                "Queue wait and time to result",
                "p95 of the time a job waits for a slot, and of submission to result.",
                "s",
                *quantiles("clipmesh_generator_queue_seconds", "backend", 0.95),
                *quantiles("clipmesh_generator_time_to_result_seconds", "backend", 0.5, 0.95),
            )
        )
        .with_panel(
            panel(
                "Rate-limit wait",
                "p95 of the wait for the provider's submissions-per-second limit.",
                "s",
                *quantiles("clipmesh_generator_rate_limit_wait_seconds", "backend", 0.95),
            )
        )
        .with_panel(
            panel(
                "Content cache hit ratio",
                "Generations answered from the gateway's content cache.",
                "percentunit",
                query(
                    f'sum(rate(clipmesh_generator_cache_lookups_total{{{NS}, result="hit"}}'
                    f"[{RATE}])) / sum(rate(clipmesh_generator_cache_lookups_total{{{NS}}}"
                    f"[{RATE}]))",
                    "hit ratio",
                ),
            )
        )
        .with_row(dashboard_builders.Row("Previs"))
        .with_panel(
            panel(
                "Shots and clips",
                "Previs shot revisions by outcome, clips by QA result, and regenerations.",
                "short",
                query(
                    f"sum by (outcome) (increase(clipmesh_previs_shots_total{{{NS}}}[5m]))",
                    "shots {{outcome}}",
                ),
                query(
                    f"sum by (result) (increase(clipmesh_previs_clips_total{{{NS}}}[5m]))",
                    "clips {{result}}",
                ),
                query(
                    f"sum(increase(clipmesh_previs_regenerations_total{{{NS}}}[5m]))",
                    "regenerations",
                ),
            )
        )
        .with_panel(
            panel(
                "Shot wall time",
                "One shot revision end to end: screening, generation, checks, ingest.",
                "s",
                *quantiles("clipmesh_previs_shot_seconds", "", 0.5, 0.95),
            )
        )
    )


def grpc_dashboard() -> dashboard_builders.Dashboard:
    return (
        base(
            "clipmesh-grpc",
            "clipmesh / gRPC services",
            "Requests, errors and latency of every clipmesh RPC, and the processes behind them.",
        )
        .with_row(dashboard_builders.Row("Errors"))
        .with_panel(
            panel(
                "Server errors by service and method",
                "RPCs per second that ended with a server-side error code.",
                "reqps",
                query(
                    f"clipmesh:grpc_server_errors:rate5m{{{NS}}} > 0",
                    "{{grpc_service}}/{{grpc_method}}",
                ),
            )
        )
        .with_panel(
            panel(
                "Error ratio by service",
                "Server errors over all calls. ClipmeshGrpcErrorRatioHigh pages above 5%.",
                "percentunit",
                query(f"clipmesh:grpc_server_errors:ratio_5m{{{NS}}}", "{{grpc_service}}"),
                red_from=0.05,
            )
        )
        .with_panel(
            panel(
                "Non-OK codes",
                "Every status code other than OK, callers' mistakes included.",
                "reqps",
                query(
                    f"sum by (grpc_service, grpc_code) (rate(grpc_server_handled_total{{{NS}, "
                    f'grpc_code!="OK"}}[{RATE}]))',
                    "{{grpc_service}} {{grpc_code}}",
                ),
                stacked=True,
            )
        )
        .with_row(dashboard_builders.Row("Traffic and latency"))
        .with_panel(
            panel(
                "Requests per second",
                "RPCs handled, by service and method.",
                "reqps",
                query(
                    f"clipmesh:grpc_server_requests:rate5m{{{NS}}}",
                    "{{grpc_service}}/{{grpc_method}}",
                ),
                stacked=True,
            )
        )
        .with_panel(
            panel(
                "Unary p99 by method",
                "Server-side handling time of unary RPCs.",
                "s",
                query(
                    f"clipmesh:grpc_server_handling_seconds:p99_5m{{{NS}}}",
                    "{{grpc_service}}/{{grpc_method}}",
                ),
                red_from=BUDGET_S,
            )
        )
        .with_panel(
            panel(
                "Stream messages sent",
                "Messages per second on server streams (generation progress, ingest, previs).",
                "ops",
                query(
                    f"sum by (grpc_service, grpc_method) (rate(grpc_server_msg_sent_total{{{NS}}}"
                    f"[{RATE}]))",
                    "{{grpc_service}}/{{grpc_method}}",
                ),
            )
        )
        .with_row(dashboard_builders.Row("Processes"))
        .with_panel(
            panel(
                "CPU",
                "CPU cores used per pod.",
                "short",
                query(
                    f"sum by (component, pod) (rate(process_cpu_seconds_total{{{NS}}}[{RATE}]))",
                    "{{component}} {{pod}}",
                ),
            )
        )
        .with_panel(
            panel(
                "Resident memory",
                "Resident set size per pod.",
                "bytes",
                query(f"process_resident_memory_bytes{{{NS}}}", "{{component}} {{pod}}"),
            )
        )
    )


DASHBOARDS = {
    "clipmesh-search.json": search_dashboard,
    "clipmesh-generation.json": generation_dashboard,
    "clipmesh-grpc.json": grpc_dashboard,
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
