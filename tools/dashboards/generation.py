"""The generation and previs dashboard: jobs and provider errors, queue and latency, paid
seconds per caller and webhook deliveries, previs."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders

from tools.dashboards.panels import NS, RATE, base, or_zero, panel, quantiles, query, quota_used


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
                # Every replica exports the store's counts: the max is the figure, a sum would
                # multiply it by the replicas.
                "Jobs queued and running now, in the shared store.",
                "short",
                query(f"max by (state) (clipmesh_generator_jobs{{{NS}}})", "{{state}}"),
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
                "Errors providers answered, by backend and the provider's code (a line at 0 per "
                "backend until its provider answers one), and retries.",
                "ops",
                query(
                    or_zero(
                        f"sum by (backend, code) (rate(clipmesh_generator_provider_errors_total"
                        f"{{{NS}}}[{RATE}]))",
                        "backend",
                        f"rate(clipmesh_generator_provider_retries_total{{{NS}}}[{RATE}])",
                    ),
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
                query(f"max by (backend) (clipmesh_generator_queue_depth{{{NS}}})", "{{backend}}"),
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
        .with_row(dashboard_builders.Row("Callers and webhooks"))
        .with_panel(
            quota_used(
                "Provider video seconds today",
                "provider_video_seconds_per_day",
                "s",
                "Paid seconds of generated video today (UTC), per caller, against each caller's "
                "daily limit; failed and cancelled jobs are refunded.",
            )
        )
        .with_panel(
            panel(
                "Webhook attempts",
                "Deliveries of job-end webhooks by outcome: delivered, retry (failed, tried "
                "again later) and failed (given up: refused for good, or retried for "
                "WEBHOOK_MAX_AGE_S). ClipmeshWebhookDeliveriesFailing opens a ticket on any "
                "given-up event.",
                "ops",
                query(
                    f"sum by (outcome) (rate(clipmesh_generator_webhook_attempts_total{{{NS}}}"
                    f"[{RATE}]))",
                    "{{outcome}}",
                ),
                stacked=True,
                width=8,
            )
        )
        .with_panel(
            panel(
                "Webhooks pending",
                "Events in the outbox waiting for their next attempt. Deliveries take seconds, "
                "so this drops to zero between failures; ClipmeshWebhookDeliveriesFailing opens "
                "a ticket when it has not for an hour.",
                "short",
                query(f"sum(clipmesh_generator_webhooks_pending{{{NS}}})", "pending"),
                width=8,
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
