"""Where an EmbedImages call's time goes inside the encoder service, from its own metrics.

The service times each stage of every request in Prometheus histograms: decoding and
preprocessing (`clipmesh_encoder_preprocess_seconds`), waiting in the batch queue
(`..._queue_seconds`), the model (`..._batch_compute_seconds`) and the whole RPC as the server
saw it (`grpc_server_handling_seconds`). Scraped before and after a run, the differences of
their sums and counts give each stage's mean per request; what the caller measured beyond the
server's handling time is the transport (serialisation, the network stack, the client's own
event loop). Means, not medians: histograms keep sums, and at concurrency 1 the two are close.
"""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

STAGES = {
    "decode_preprocess": ("clipmesh_encoder_preprocess_seconds", {"modality": "image"}),
    "queue_wait": ("clipmesh_encoder_queue_seconds", {"modality": "image"}),
    "model": ("clipmesh_encoder_batch_compute_seconds", {"modality": "image"}),
    "server_total": (
        "grpc_server_handling_seconds",
        {"grpc_service": "clipmesh.encoder.v1.EncoderService", "grpc_method": "EmbedImages"},
    ),
}


def scrape(metrics_url: str) -> dict[str, tuple[float, float]]:
    """Each stage's (sum of seconds, count) so far."""
    families = text_string_to_metric_families(httpx.get(metrics_url, timeout=10).text)
    totals = {stage: [0.0, 0.0] for stage in STAGES}
    for family in families:
        for sample in family.samples:
            for stage, (metric, labels) in STAGES.items():
                if not sample.name.startswith(metric):
                    continue
                if any(sample.labels.get(k) != v for k, v in labels.items()):
                    continue
                if sample.name == f"{metric}_sum":
                    totals[stage][0] += sample.value
                elif sample.name == f"{metric}_count":
                    totals[stage][1] += sample.value
    return {stage: (total, count) for stage, (total, count) in totals.items()}


def breakdown(
    before: dict[str, tuple[float, float]],
    after: dict[str, tuple[float, float]],
    requests: int,
    caller_mean_ms: float,
) -> dict[str, float]:
    """Mean milliseconds per request of each stage between two scrapes, and the transport.

    The model's time is per batch; at concurrency 1 every batch is one request's.
    """
    means = {}
    for stage in STAGES:
        seconds = after[stage][0] - before[stage][0]
        means[f"{stage}_ms"] = round(seconds / requests * 1000, 2) if requests else 0.0
    inside = means["server_total_ms"]
    means["in_server_other_ms"] = round(
        inside - means["decode_preprocess_ms"] - means["queue_wait_ms"] - means["model_ms"], 2
    )
    means["transport_and_client_ms"] = round(caller_mean_ms - inside, 2)
    return means
