"""A dynamic batcher across requests, after Triton's: items from concurrent callers run together.

Callers `submit()` their items and await the results. One worker forms batches of up to
`max_batch` items and waits at most `max_queue_delay_s` after the oldest waiting item, and only
while a full batch cannot be formed. Batches run one at a time on a dedicated executor thread,
so the event loop stays free to accept (and preprocess) the next requests while the current
batch computes; what arrives meanwhile forms the next batch.

Interactive work (searches) goes first; batch-priority work (ingest) uses the capacity it
leaves, and never starves: while any waits, each batch keeps `background_slots` places for it.

Admission is deadline-aware. The batcher forecasts when a new request's items would be done —
the running batch's rest, then the batches of the work queued ahead of them, timed by a running
fit of measured batches (`service_time.BatchTimeModel`) — and refuses at once, with
RESOURCE_EXHAUSTED `WOULD_MISS_DEADLINE` and a retry hint, work that would finish after its
deadline: accepted work should be work that can be done in time. Forecasts are calibrated
against what admitted work then actually took (`service_time.ForecastCalibration`), so the
margin follows the machine. The queue is bounded too
(`QUEUE_FULL`). Items whose caller has gone, or that can no longer finish before their
deadline, are dropped before compute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clipmesh.encoder import metrics
from clipmesh.encoder.service_time import BatchTimeModel, ForecastCalibration
from clipmesh.runtime.errors import DeadlineExceeded, ResourceExhausted, ServiceError, Unavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Admission:
    """Work admitted at `at` (`time.monotonic()`), forecast to be done `forecast_s` later."""

    at: float
    forecast_s: float


@dataclass(eq=False)
class _Request:
    future: asyncio.Future[np.ndarray]
    size: int
    deadline: float | None
    results: list[np.ndarray | None] = field(default_factory=list)
    remaining: int = 0

    def __post_init__(self) -> None:
        self.results = [None] * self.size
        self.remaining = self.size

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline


@dataclass(eq=False)
class _Item:
    request: _Request
    index: int
    payload: Any
    enqueued_at: float


class DynamicBatcher:
    """Batches items across concurrent requests for one model function.

    Args:
        modality: "image" or "text", for metrics and messages.
        run_batch: Computes a list of payloads into an (N, D) array, on `executor`.
        executor: Where batches run (one thread: batches are sequential by design).
        max_batch: Most items per batch.
        max_queue_delay_s: Longest wait for a fuller batch, from the oldest item's arrival.
        max_queue_items: Most items waiting; more is refused with RESOURCE_EXHAUSTED.
        background_slots: Places kept in each batch for batch-priority items while any wait.
    """

    def __init__(
        self,
        modality: str,
        run_batch: Callable[[list[Any]], np.ndarray],
        executor: Executor,
        *,
        max_batch: int,
        max_queue_delay_s: float,
        max_queue_items: int,
        background_slots: int = 0,
    ) -> None:
        if not 0 <= background_slots < max_batch:
            raise ValueError("background_slots must leave room for interactive items")
        self.modality = modality
        self._run_batch = run_batch
        self._executor = executor
        self.max_batch = max_batch
        self.max_queue_delay_s = max_queue_delay_s
        self.max_queue_items = max_queue_items
        self.background_slots = background_slots
        self._interactive: deque[_Item] = deque()
        self._background: deque[_Item] = deque()
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self.batch_times = BatchTimeModel()
        self.calibration = ForecastCalibration()
        self._running: tuple[float, int] | None = None  # (start, size) of the batch computing
        self.batches_run = 0

    @property
    def queued(self) -> int:
        """Items waiting (including ones whose callers have gone, until dropped)."""
        return len(self._interactive) + len(self._background)

    def start(self) -> None:
        """Starts the worker; call from the event loop that will submit."""
        self._worker = asyncio.create_task(self._work(), name=f"batcher-{self.modality}")
        metrics.create_series(self.modality)
        metrics.QUEUE_CAPACITY.labels(self.modality).set(self.max_queue_items)

    async def close(self) -> None:
        """Stops the worker and fails whatever is still queued with UNAVAILABLE."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        for item in (*self._interactive, *self._background):
            _fail(item.request, Unavailable("the encoder is shutting down"))
        self._interactive.clear()
        self._background.clear()
        metrics.QUEUE_DEPTH.labels(self.modality).set(0)

    async def submit(
        self,
        payloads: Sequence[Any],
        *,
        deadline: float | None = None,
        interactive: bool = True,
        admitted: Admission | None = None,
    ) -> np.ndarray:
        """Queues `payloads` and returns their results as an (N, D) array, in order.

        Args:
            payloads: Preprocessed items.
            deadline: `time.monotonic()` after which the caller no longer wants the results.
                With a deadline, the work is admitted here, unless `admitted` says it was.
            interactive: Interactive work is batched ahead of background work.
            admitted: The caller's own admission of this work (`admit()`, before steps of its
                own such as decoding), against which the time it takes is measured.

        Raises:
            ResourceExhausted: the queue cannot take this many more items now.
            DeadlineExceeded: the deadline passed before the items were computed.
        """
        if not payloads:
            raise ValueError("submit() needs at least one item")
        if self.queued + len(payloads) > self.max_queue_items:
            metrics.REJECTED.labels(self.modality, "queue_full").inc(len(payloads))
            per_item_s = self.batch_times.per_item_seconds(self.max_batch) or 0.02
            raise ResourceExhausted(
                f"the {self.modality} queue is full ({self.queued} items waiting, limit "
                f"{self.max_queue_items}); retry later",
                reason="QUEUE_FULL",
                retry_after_s=round(max(0.05, self.queued * per_item_s), 3),
                metadata={"queued": self.queued, "limit": self.max_queue_items},
            )
        now = time.monotonic()
        if admitted is None and deadline is not None:
            admitted = self.admit(
                len(payloads), interactive=interactive, deadline=deadline, now=now
            )
        loop = asyncio.get_running_loop()
        request = _Request(loop.create_future(), len(payloads), deadline)
        queue = self._interactive if interactive else self._background
        queue.extend(_Item(request, i, p, now) for i, p in enumerate(payloads))
        metrics.QUEUE_DEPTH.labels(self.modality).set(self.queued)
        self._wakeup.set()
        try:
            result = await request.future
        except asyncio.CancelledError:
            request.future.cancel()  # its items are skipped when their turn comes
            raise
        except DeadlineExceeded:
            if admitted is not None:  # forecast to fit, and it did not: the margin must grow
                self.calibration.record(admitted.forecast_s, time.monotonic() - admitted.at)
            raise
        if admitted is not None:
            self.calibration.record(admitted.forecast_s, time.monotonic() - admitted.at)
        return result

    def forecast_wait_s(self, count: int, interactive: bool, now: float, pending: int = 0) -> float:
        """Seconds until `count` new items would be computed: the running batch's rest, then
        the batches of the queued work ahead of them (and of `pending` items on their way to
        the queue) and their own."""
        ahead = pending + (len(self._interactive) if interactive else self.queued)
        per_batch = self.max_batch
        if interactive and self._background:
            per_batch -= self.background_slots  # places kept for the waiting ingest work
        full, rest = divmod(ahead + count, per_batch)
        wait_s = full * self.batch_times.seconds(self.max_batch)
        wait_s += self.batch_times.seconds(rest + (self.max_batch - per_batch if rest else 0))
        if self._running is not None:
            started, size = self._running
            wait_s += max(0.0, self.batch_times.seconds(size) - (now - started))
        return wait_s

    def admit(
        self,
        count: int,
        *,
        interactive: bool,
        deadline: float,
        now: float,
        pending: int = 0,
        before_s: float = 0.0,
    ) -> Admission | None:
        """Refuses work that the calibrated forecast says would be done after its deadline.

        Callers may ask before their items are ready: `pending` items on their way to the
        queue ahead of them, and `before_s` seconds of work (preprocessing) before they join.
        Returns the admission (None while nothing has been measured, so nothing forecast),
        to be passed to `submit()`.

        Raises:
            ResourceExhausted: WOULD_MISS_DEADLINE, with the delay after which to retry.
        """
        if not self.batch_times.measured:
            return None  # nothing measured yet: no forecast to refuse on
        forecast_s = before_s + self.forecast_wait_s(count, interactive, now, pending)
        wait_s = forecast_s * self.calibration.factor
        left_s = deadline - now
        if wait_s <= left_s:
            return Admission(now, forecast_s)
        metrics.REJECTED.labels(self.modality, "would_miss_deadline").inc(count)
        raise ResourceExhausted(
            f"{count} {self.modality}(s) would be embedded in about {wait_s * 1000:.0f} ms, "
            f"after the deadline ({max(left_s, 0) * 1000:.0f} ms away): the encoder is busy; "
            "retry later or with a longer deadline",
            reason="WOULD_MISS_DEADLINE",
            # Not before a full batch has drained: an earlier retry meets the same queue, and
            # refusing it costs the event loop that replies to the admitted work.
            retry_after_s=round(max(self.batch_times.seconds(self.max_batch), wait_s - left_s), 3),
            metadata={
                "forecast_ms": round(wait_s * 1000, 1),
                "deadline_ms": round(max(left_s, 0) * 1000, 1),
                "calibration": round(self.calibration.factor, 2),
            },
        )

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wait_for_batch()
            batch = self._take_batch()
            metrics.QUEUE_DEPTH.labels(self.modality).set(self.queued)
            if not batch:
                continue
            started = time.perf_counter()
            self._running = (time.monotonic(), len(batch))
            try:
                outputs = await loop.run_in_executor(
                    self._executor, self._run_batch, [item.payload for item in batch]
                )
            except Exception as exc:
                log.exception("%s batch of %d failed", self.modality, len(batch))
                error = (
                    exc
                    if isinstance(exc, ServiceError)
                    else ServiceError(
                        f"{self.modality} encoding failed; details are in the encoder log"
                    )
                )
                for item in batch:
                    _fail(item.request, error)
                continue
            finally:
                self._running = None
            elapsed = time.perf_counter() - started
            self._record(len(batch), elapsed)
            for item, vector in zip(batch, outputs, strict=True):
                _deliver(item, vector)

    async def _wait_for_batch(self) -> None:
        """Returns once a full batch is queued, or the oldest item has waited long enough."""
        while not self.queued:
            self._wakeup.clear()
            await self._wakeup.wait()
        oldest = min(q[0].enqueued_at for q in (self._interactive, self._background) if q)
        while self.queued < self.max_batch:
            remaining_s = oldest + self.max_queue_delay_s - time.monotonic()
            if remaining_s <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining_s)
            except TimeoutError:
                return

    def _take_batch(self) -> list[_Item]:
        """Pops up to `max_batch` live items, interactive first but for the places kept for
        waiting background items; drops dead ones and ones that would finish too late."""
        now = time.monotonic()
        # Whatever is taken will be done about this much later: a deadline before that is lost.
        done_at = now + self.batch_times.seconds(min(self.max_batch, self.queued))
        batch: list[_Item] = []
        kept = min(self.background_slots, len(self._background))
        for queue, limit in (
            (self._interactive, self.max_batch - kept),
            (self._background, self.max_batch),
        ):
            while queue and len(batch) < limit:
                item = queue.popleft()
                request = item.request
                if request.future.done():
                    reason = "cancelled" if request.future.cancelled() else "failed"
                    metrics.REJECTED.labels(self.modality, reason).inc()
                    continue
                if request.expired(done_at):
                    metrics.REJECTED.labels(self.modality, "deadline").inc()
                    _fail(
                        request,
                        DeadlineExceeded(
                            f"the deadline passed, or would before they were computed, while "
                            f"{request.size} {self.modality}(s) waited for the encoder",
                            reason="DEADLINE_IN_QUEUE",
                        ),
                    )
                    continue
                metrics.QUEUE_SECONDS.labels(self.modality).observe(now - item.enqueued_at)
                batch.append(item)
        return batch

    def _record(self, size: int, elapsed_s: float) -> None:
        self.batches_run += 1
        self.batch_times.record(size, elapsed_s)
        metrics.BATCH_SIZE.labels(self.modality).observe(size)
        metrics.BATCH_COMPUTE_SECONDS.labels(self.modality).observe(elapsed_s)
        metrics.ITEMS_ENCODED.labels(self.modality).inc(size)


def _deliver(item: _Item, vector: np.ndarray) -> None:
    request = item.request
    if request.future.done():
        return
    request.results[item.index] = vector
    request.remaining -= 1
    if request.remaining == 0:
        request.future.set_result(np.stack(request.results))


def _fail(request: _Request, error: Exception) -> None:
    if not request.future.done():
        request.future.set_exception(error)
