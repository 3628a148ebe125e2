"""The tenancy dashboard: each caller's quota use against its limit, and the calls the policy
refused. A board of its own because it is read per team (who is near a limit, who is refused
what), not per service; the webhooks are on the generation board, with the paid seconds again."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders

from tools.dashboards.panels import NS, RATE, base, or_zero, panel, query, quota_used


def tenancy_dashboard() -> dashboard_builders.Dashboard:
    return (
        base(
            "clipmesh-tenancy",
            "clipmesh / Tenancy",
            "Each caller's quotas against the policy's limits, and the calls the policy refused. "
            "Empty without a policy (docs/security.md#tenancy).",
        )
        .with_row(dashboard_builders.Row("Quotas"))
        .with_panel(
            panel(
                "Quota use against the limit",
                "Each caller's use of each quota over its limit, at the pod closest to it (every "
                "orchestrator pod counts and limits ingest bytes on its own). Requests that "
                "would pass 100% are refused RESOURCE_EXHAUSTED; ClipmeshQuotaNearlyExhausted "
                "opens a ticket above 90% of a daily quota. Unlimited quotas (and limits of 0) "
                "have no line.",
                "percentunit",
                query(
                    f"max by (caller, quota) (clipmesh_quota_used{{{NS}}} "
                    f"/ (clipmesh_quota_limit{{{NS}}} > 0))",
                    "{{caller}} {{quota}}",
                ),
                red_from=0.9,
                width=24,
            )
        )
        .with_panel(
            quota_used(
                "Provider video seconds today",
                "provider_video_seconds_per_day",
                "s",
                "Seconds of video generated on paid backends today (UTC), per caller, and its "
                "limit. Failed and cancelled jobs are refunded.",
            )
        )
        .with_panel(
            quota_used(
                "Ingest bytes today",
                "ingest_bytes_per_day",
                "bytes",
                "Bytes of new video ingested today (UTC), per caller, all orchestrator pods "
                "together, and the limit each pod applies to its own share.",
            )
        )
        .with_panel(
            quota_used(
                "Generation jobs in flight",
                "concurrent_jobs",
                "short",
                "Each caller's generation jobs queued or running now, and how many it may have.",
            )
        )
        .with_row(dashboard_builders.Row("Refusals"))
        .with_panel(
            panel(
                "Permission denied by caller",
                "Calls the policy refused PERMISSION_DENIED, per caller and method (at the "
                "front doors, where the token names the caller).",
                "reqps",
                query(refusals_by_caller("PERMISSION_DENIED"), "{{caller}} {{grpc_method}}"),
                stacked=True,
                width=8,
            )
        )
        .with_panel(
            panel(
                "Permission denied by missing permission",
                "The same refusals by method and the permission the caller lacked "
                "(`undeclared`: a method that declares no access rule, refused to everyone).",
                "reqps",
                query(
                    f"sum by (grpc_method, permission) (rate(clipmesh_authz_denied_total{{{NS}}}"
                    f"[{RATE}]))",
                    "{{grpc_method}} {{permission}}",
                ),
                stacked=True,
                width=8,
            )
        )
        .with_panel(
            panel(
                "Resource exhausted by caller",
                "Calls refused RESOURCE_EXHAUSTED, per caller and method: quotas "
                "(QUOTA_EXCEEDED, TOO_MANY_JOBS) and the per-caller and per-process bounds "
                "(CALLER_BUSY, SERVER_BUSY). An ingest item over the quota fails alone and is "
                "not counted here.",
                "reqps",
                query(refusals_by_caller("RESOURCE_EXHAUSTED"), "{{caller}} {{grpc_method}}"),
                stacked=True,
                width=8,
            )
        )
    )


def refusals_by_caller(code: str) -> str:
    """Calls per second refused with `code`, per caller and method; 0 for each method a caller
    called without such a refusal (callers are not known before they call)."""
    return or_zero(
        f"sum by (caller, grpc_method) (rate(clipmesh_caller_requests_total{{{NS}, "
        f'grpc_code="{code}"}}[{RATE}]))',
        "caller, grpc_method",
        f"rate(clipmesh_caller_requests_total{{{NS}}}[{RATE}])",
    )
