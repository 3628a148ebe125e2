"""The search dashboard: latency against the 500 ms budget, refusals, stages, encoder, index."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders

from tools.dashboards.panels import BUDGET_S, NS, RATE, base, panel, quantiles, query


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
