"""What every clipmesh dashboard is built from: the datasource and namespace variables,
Prometheus queries (with zeros for label values not known in advance), time series panels with
an optional red threshold line, quantiles, and a quota's use per caller against its limit."""

from __future__ import annotations

from pathlib import Path

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import prometheus, timeseries
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
        # Each line's peak, highest first: every known label value has a line from the start
        # (at 0), so the lines that moved lead the legend.
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["max"])
            .sort_by("Max")
            .sort_desc(True)
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


def or_zero(expr: str, labels: str, seen: str) -> str:
    """`expr`, or 0 for each value of `labels` that the series `seen` have and `expr` lacks.

    For label values not known in advance (callers, providers' error codes), which no service
    can create at 0: the panel draws a line at 0 where they would be, not "No data".
    """
    return f"{expr} or on ({labels}) 0 * sum by ({labels}) ({seen})"


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


def quota_used(title: str, quota: str, unit: str, description: str) -> timeseries.Panel:
    """Each caller's use of `quota` (clipmesh_quota_used, summed over the pods that count it)
    and its limit from the policy (none drawn for an unlimited quota); a third of a row."""
    return panel(
        title,
        description,
        unit,
        query(f'sum by (caller) (clipmesh_quota_used{{{NS}, quota="{quota}"}})', "{{caller}}"),
        query(
            f'max by (caller) (clipmesh_quota_limit{{{NS}, quota="{quota}"}})', "{{caller}} limit"
        ),
        width=8,
    )


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
