"""The dynamic batcher: batches form across callers, the delay bound holds, a full queue
refuses, and expired or cancelled work never reaches the model."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from clipmesh.encoder.batcher import DynamicBatcher
from clipmesh.encoder.service_time import ForecastCalibration
from clipmesh.runtime.errors import DeadlineExceeded, ResourceExhausted


class RecordingModel:
    """Doubles each payload; records every batch; can be held to let a queue build up."""

    def __init__(self) -> None:
        self.batches: list[list[float]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, payloads: list[float]) -> np.ndarray:
        self.entered.set()
        self.gate.wait(timeout=30)
        self.batches.append(list(payloads))
        return np.array([[2 * p] for p in payloads], dtype=np.float32)

    @property
    def computed(self) -> list[float]:
        return [p for batch in self.batches for p in batch]


@pytest.fixture
async def model_and_batcher():
    model = RecordingModel()
    executor = ThreadPoolExecutor(1)
    batchers = []

    def make(**options) -> DynamicBatcher:
        settings = {"max_batch": 8, "max_queue_delay_s": 0.01, "max_queue_items": 64, **options}
        batcher = DynamicBatcher("image", model, executor, **settings)
        batcher.start()
        batchers.append(batcher)
        return batcher

    yield model, make
    model.gate.set()
    for batcher in batchers:
        await batcher.close()
    executor.shutdown()


async def _hold_first_batch(model: RecordingModel, batcher: DynamicBatcher) -> asyncio.Task:
    """Starts a one-item request and keeps it computing until `model.gate` is set."""
    model.gate.clear()
    model.entered.clear()
    first = asyncio.create_task(batcher.submit([0.0]))
    await asyncio.to_thread(model.entered.wait, 10)
    return first


async def test_results_come_back_in_order_per_caller(model_and_batcher) -> None:
    _, make = model_and_batcher
    batcher = make()
    result = await batcher.submit([1.0, 2.0, 3.0])
    assert result.tolist() == [[2.0], [4.0], [6.0]]


async def test_concurrent_callers_share_batches(model_and_batcher) -> None:
    model, make = model_and_batcher
    batcher = make(max_batch=8)
    first = await _hold_first_batch(model, batcher)
    callers = [asyncio.create_task(batcher.submit([float(i)])) for i in range(1, 17)]
    await asyncio.sleep(0.05)  # all 16 are queued behind the running batch
    model.gate.set()
    results = await asyncio.gather(first, *callers)
    assert [r.tolist() for r in results[1:]] == [[[2.0 * i]] for i in range(1, 17)]
    assert [len(b) for b in model.batches] == [1, 8, 8]


async def test_a_full_batch_does_not_wait_for_the_delay(model_and_batcher) -> None:
    model, make = model_and_batcher
    batcher = make(max_batch=4, max_queue_delay_s=30.0)
    started = time.monotonic()
    await asyncio.wait_for(batcher.submit([1.0, 2.0, 3.0, 4.0]), timeout=10)
    assert time.monotonic() - started < 10  # far below the 30 s delay: it ran at once
    assert model.batches == [[1.0, 2.0, 3.0, 4.0]]


async def test_a_lone_item_waits_up_to_the_delay_for_company(model_and_batcher) -> None:
    model, make = model_and_batcher
    batcher = make(max_batch=4, max_queue_delay_s=0.3)
    lone = asyncio.create_task(batcher.submit([1.0]))
    await asyncio.sleep(0.1)
    late = asyncio.create_task(batcher.submit([2.0]))  # arrives within the delay: same batch
    started = time.monotonic()
    await asyncio.gather(lone, late)
    assert model.batches == [[1.0, 2.0]]
    assert time.monotonic() - started >= 0.1  # it did wait for the rest of the delay


async def test_a_full_queue_refuses_with_a_retry_hint(model_and_batcher) -> None:
    model, make = model_and_batcher
    batcher = make(max_queue_items=4)
    first = await _hold_first_batch(model, batcher)
    queued = asyncio.create_task(batcher.submit([1.0, 2.0, 3.0, 4.0]))
    await asyncio.sleep(0.02)
    with pytest.raises(ResourceExhausted) as caught:
        await batcher.submit([5.0])
    assert caught.value.reason == "QUEUE_FULL"
    assert caught.value.retry_after_s > 0
    model.gate.set()
    await asyncio.gather(first, queued)
    assert 5.0 not in model.computed


async def test_expired_work_is_dropped_before_compute(model_and_batcher) -> None:
    model, make = model_and_batcher
    batcher = make()
    first = await _hold_first_batch(model, batcher)
    doomed = asyncio.create_task(batcher.submit([7.0], deadline=time.monotonic() + 0.05))
    survivor = asyncio.create_task(batcher.submit([8.0]))
    await asyncio.sleep(0.15)  # the deadline passes while the first batch computes
    model.gate.set()
    with pytest.raises(DeadlineExceeded):
        await doomed
    assert (await survivor).tolist() == [[16.0]]
    await first
    assert 7.0 not in model.computed


async def test_cancelled_work_is_dropped_before_compute(model_and_batcher) -> None:
    model, make = model_and_batcher
    batcher = make()
    first = await _hold_first_batch(model, batcher)
    abandoned = asyncio.create_task(batcher.submit([9.0, 10.0]))
    await asyncio.sleep(0.02)
    abandoned.cancel()  # what gRPC does when the caller goes away
    await asyncio.sleep(0.02)
    model.gate.set()
    await first
    assert (await batcher.submit([11.0])).tolist() == [[22.0]]
    assert 9.0 not in model.computed and 10.0 not in model.computed


async def test_interactive_work_is_batched_ahead_of_background_work(model_and_batcher) -> None:
    model, make = model_and_batcher
    batcher = make(max_batch=2)
    first = await _hold_first_batch(model, batcher)
    background = asyncio.create_task(batcher.submit([1.0, 2.0], interactive=False))
    await asyncio.sleep(0.01)
    interactive = asyncio.create_task(batcher.submit([3.0, 4.0]))
    await asyncio.sleep(0.02)
    model.gate.set()
    await asyncio.gather(first, background, interactive)
    assert model.batches[1] == [3.0, 4.0]  # the later, interactive request went first


async def test_a_failing_batch_fails_its_callers_and_the_batcher_keeps_serving(
    model_and_batcher,
) -> None:
    _, make = model_and_batcher
    batcher = make()
    original = batcher._run_batch

    def explode_once(payloads):
        batcher._run_batch = original
        raise RuntimeError("CUDA error: device-side assert")

    batcher._run_batch = explode_once
    with pytest.raises(Exception, match="encoding failed"):
        await batcher.submit([1.0])
    assert (await batcher.submit([2.0])).tolist() == [[4.0]]


async def test_work_that_would_miss_its_deadline_is_refused_at_once(model_and_batcher) -> None:
    model, make = model_and_batcher
    batcher = make(max_batch=8)
    batcher.batch_times.record(8, 1.0)  # as measured: a batch of 8 takes a second
    first = await _hold_first_batch(model, batcher)
    queued = asyncio.create_task(batcher.submit([float(i) for i in range(1, 17)]))
    await asyncio.sleep(0.02)  # two full batches wait ahead: about 2 s of work
    with pytest.raises(ResourceExhausted) as caught:
        await batcher.submit([99.0], deadline=time.monotonic() + 0.5)
    assert caught.value.reason == "WOULD_MISS_DEADLINE"
    assert caught.value.retry_after_s >= 1.5  # the queue must drain by about that much
    assert float(caught.value.metadata["forecast_ms"]) > 2000
    patient = asyncio.create_task(batcher.submit([42.0], deadline=time.monotonic() + 60))
    model.gate.set()
    await asyncio.gather(first, queued)
    assert (await patient).tolist() == [[84.0]]
    assert 99.0 not in model.computed


async def test_the_forecast_counts_running_queued_and_own_batches(model_and_batcher) -> None:
    model, make = model_and_batcher
    batcher = make(max_batch=4)
    batcher.batch_times.record(4, 0.4)  # 0.1 s an item, proportional until a second size
    assert batcher.forecast_wait_s(1, True, time.monotonic()) == pytest.approx(0.1)
    first = await _hold_first_batch(model, batcher)
    queued = asyncio.create_task(batcher.submit([1.0, 2.0, 3.0, 4.0, 5.0]))
    await asyncio.sleep(0.02)
    now = time.monotonic()
    # The running batch of 1 (≈0.1 s, partly done), one full batch (0.4 s), then 1 + 2 items.
    assert 0.6 < batcher.forecast_wait_s(2, True, now) <= 0.4 + 0.3 + 0.1
    # Background work waits behind everything queued, interactive work only behind its own.
    waiting = asyncio.create_task(batcher.submit([6.0, 7.0, 8.0, 9.0], interactive=False))
    await asyncio.sleep(0.02)
    now = time.monotonic()
    assert batcher.forecast_wait_s(2, False, now) > batcher.forecast_wait_s(2, True, now) + 0.3
    model.gate.set()
    await asyncio.gather(first, queued, waiting)


async def test_background_work_is_not_starved_by_a_stream_of_searches(model_and_batcher) -> None:
    model, make = model_and_batcher
    batcher = make(max_batch=4, background_slots=1)
    first = await _hold_first_batch(model, batcher)
    ingest = asyncio.create_task(batcher.submit([-1.0, -2.0], interactive=False))
    await asyncio.sleep(0.01)
    searches = asyncio.create_task(batcher.submit([float(i) for i in range(1, 13)]))
    await asyncio.sleep(0.02)  # 12 interactive items queued after 2 background ones
    model.gate.set()
    await asyncio.gather(first, ingest, searches)
    # Without the kept place the ingest items would wait for all 12 searches (three batches).
    assert model.batches[1] == [1.0, 2.0, 3.0, -1.0]
    assert model.batches[2] == [4.0, 5.0, 6.0, -2.0]
    assert model.computed[-1] == 12.0


def test_the_batch_time_model_fits_a_fixed_cost_and_a_cost_per_item() -> None:
    from clipmesh.encoder.service_time import BatchTimeModel

    times = BatchTimeModel()
    assert not times.measured and times.seconds(4) == 0.0
    times.record(2, 0.2)
    assert times.seconds(4) == pytest.approx(0.4)  # one size seen: proportional
    for _ in range(20):
        times.record(1, 0.030)
        times.record(8, 0.100)
    assert times.seconds(1) == pytest.approx(0.030, rel=0.05)
    assert times.seconds(8) == pytest.approx(0.100, rel=0.05)
    assert times.seconds(4) == pytest.approx(0.030 + 3 * 0.010, rel=0.05)
    assert times.per_item_seconds(8) == pytest.approx(0.0125, rel=0.05)


def test_the_calibration_grows_when_work_runs_past_its_forecast_and_settles_when_it_holds() -> None:
    calibration = ForecastCalibration()
    assert calibration.factor == 1.0  # nothing measured: forecasts taken as they are
    for _ in range(20):
        calibration.record(forecast_s=0.1, actual_s=0.1)
    assert calibration.factor == pytest.approx(1.0, abs=0.01)
    for _ in range(8):
        calibration.record(forecast_s=0.1, actual_s=0.2)  # the machine got slower
    slowed = calibration.factor
    assert slowed > 1.6
    for _ in range(40):
        calibration.record(forecast_s=0.1, actual_s=0.1)
    assert calibration.factor < 1.1 < slowed
    calibration.record(forecast_s=0.0, actual_s=0.5)  # nothing forecast: nothing learnt
    assert calibration.factor < 1.1


async def test_admission_allows_for_how_far_forecasts_have_run_over(model_and_batcher) -> None:
    _, make = model_and_batcher
    batcher = make(max_batch=4)
    batcher.batch_times.record(4, 0.4)  # one item: 0.1 s forecast
    assert batcher.admit(
        1, interactive=True, deadline=time.monotonic() + 0.15, now=time.monotonic()
    )
    for _ in range(10):
        batcher.calibration.record(forecast_s=0.1, actual_s=0.3)  # work took three times longer
    with pytest.raises(ResourceExhausted) as caught:
        batcher.admit(1, interactive=True, deadline=time.monotonic() + 0.15, now=time.monotonic())
    assert caught.value.reason == "WOULD_MISS_DEADLINE"
    assert float(caught.value.metadata["calibration"]) >= 3.0
    # Not before a full batch of four has drained (0.4 s), however small the shortfall.
    assert caught.value.retry_after_s >= 0.4


async def test_admitted_work_teaches_the_calibration_what_it_really_took(model_and_batcher) -> None:
    model, make = model_and_batcher
    batcher = make(max_batch=4)
    batcher.batch_times.record(4, 0.004)  # forecast: 1 ms an item
    model.gate.clear()
    model.entered.clear()
    slow = asyncio.create_task(batcher.submit([1.0], deadline=time.monotonic() + 30))
    await asyncio.to_thread(model.entered.wait, 10)
    await asyncio.sleep(0.05)  # the batch takes 50 times its forecast
    model.gate.set()
    assert (await slow).tolist() == [[2.0]]
    assert batcher.calibration.measured == 1
    assert batcher.calibration.factor > 10
