"""Encoder metrics (Prometheus), labelled by modality ("image" or "text")."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

from clipmesh.runtime.metrics import LATENCY_BUCKETS_S, create_zero_series

# Why an item was refused (queue_full, would_miss_deadline: the forecast says it would be done
# too late, invalid) or dropped from the queue (deadline, cancelled: its caller went away,
# failed: its request had failed already).
REJECT_REASONS = (
    "queue_full",
    "would_miss_deadline",
    "deadline",
    "cancelled",
    "failed",
    "invalid",
)

QUEUE_SECONDS = Histogram(
    "clipmesh_encoder_queue_seconds",
    "Time an item waited in the batch queue.",
    ["modality"],
    buckets=LATENCY_BUCKETS_S,
)
BATCH_SIZE = Histogram(
    "clipmesh_encoder_batch_size",
    "Items per executed batch.",
    ["modality"],
    buckets=(1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 256, 512),
)
BATCH_COMPUTE_SECONDS = Histogram(
    "clipmesh_encoder_batch_compute_seconds",
    "Model time of one batch.",
    ["modality"],
    buckets=LATENCY_BUCKETS_S,
)
PREPROCESS_SECONDS = Histogram(
    "clipmesh_encoder_preprocess_seconds",
    "Decode and preprocess time of one request.",
    ["modality"],
    buckets=LATENCY_BUCKETS_S,
)
ITEMS_ENCODED = Counter("clipmesh_encoder_items_encoded_total", "Items embedded.", ["modality"])
QUEUE_DEPTH = Gauge(
    "clipmesh_encoder_queue_depth", "Items waiting in the batch queue.", ["modality"]
)
QUEUE_CAPACITY = Gauge(
    "clipmesh_encoder_queue_capacity",
    "Items the batch queue holds before refusing requests (max_queue_items).",
    ["modality"],
)
REJECTED = Counter(
    "clipmesh_encoder_rejected_total",
    "Items refused or dropped, by reason (queue_full, would_miss_deadline, deadline, "
    "cancelled, failed, invalid).",
    ["modality", "reason"],
)
TEXT_LANGUAGE_WARNINGS = Counter(
    "clipmesh_encoder_text_language_warnings_total",
    "Texts embedded with a warning: written in a script none of the text tower's declared "
    "languages uses (for example Chinese queries on an English-only model).",
)
MODEL_INFO = Info(
    "clipmesh_encoder_model",
    "The loaded model, its weights, device, precision and the text tower's languages.",
)


def create_series(modality: str) -> None:
    """The series of one modality's batcher at 0, each refusal reason's included (its start)."""
    for metric in (QUEUE_SECONDS, BATCH_SIZE, BATCH_COMPUTE_SECONDS, ITEMS_ENCODED, QUEUE_DEPTH):
        create_zero_series(metric, modality=[modality])
    create_zero_series(REJECTED, modality=[modality], reason=REJECT_REASONS)
