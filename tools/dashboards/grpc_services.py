"""The gRPC services dashboard: errors, traffic and latency by service and method, processes."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders

from tools.dashboards.panels import BUDGET_S, NS, RATE, base, panel, query


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
                "RPCs per second that ended with a server-side error code; every method has a "
                "line, at 0 while it does not fail.",
                "reqps",
                query(
                    f"clipmesh:grpc_server_errors:rate5m{{{NS}}}",
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
                "Requests by caller",
                "Authenticated calls to the public API per second, by caller (the names of the "
                "token file) and status code. Empty while token auth is off.",
                "reqps",
                query(
                    f"sum by (caller, grpc_code) (rate(clipmesh_caller_requests_total{{{NS}}}"
                    f"[{RATE}]))",
                    "{{caller}} {{grpc_code}}",
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
        .with_panel(
            panel(
                "TLS certificates: days left",
                "Days until each pod's certificate in use expires: serving (its TLS port) and "
                "client (the orchestrator's calls inward). cert-manager renews at 30 days left "
                "and pods pick renewals up within seconds, so lines should jump back to about "
                "90; ClipmeshCertificateExpiresSoon opens a ticket under 14. Empty without TLS.",
                "d",
                query(
                    "min by (component, pod, usage) (("
                    f"clipmesh_tls_certificate_expiry_timestamp_seconds{{{NS}}} - time()) / 86400)",
                    "{{component}} {{pod}} {{usage}}",
                ),
            )
        )
    )
