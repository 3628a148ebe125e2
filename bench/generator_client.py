"""The generator benchmark's client, in a process of its own: one Generate stream per job, all
held open at once on one channel, each event's receipt timed against the gateway's stamp.

    python -m bench.generator_client --target 127.0.0.1:PORT --jobs 500 --seed 0 --out load.json

Writes to --out: every job's outcome against the one its prompt asked for, and for every event
`received - event_time` in milliseconds (both read from the machine's wall clock, CLOCK_REALTIME,
which every process on one Linux machine shares), when it came and its kind. Beside them, what
the client itself costs, so its own delays can be told from the gateway's: the CPU time it
used, and how late its event loop ran a 5 ms timer (`client_loop_lag_*`) — an event that
arrives while the loop is busy waits at least that long before its receipt is stamped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path

import grpc
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clipmesh_api.generator.v1 import generator_pb2, generator_pb2_grpc

State = generator_pb2.JobState
EXPECTED = {
    "ok": State.JOB_STATE_SUCCEEDED,
    "rejected": State.JOB_STATE_FAILED,
    "lost": State.JOB_STATE_FAILED,
    "cancelled": State.JOB_STATE_CANCELLED,
}
MARKERS = {"ok": "", "rejected": "[fail:DataInspectionFailed] ", "lost": "[unknown] "}
CANCELLED = generator_pb2.CancelOutcome.CANCEL_OUTCOME_CANCELLED
LAG_TICK_S = 0.005


def event_kind(state: int, message: str) -> str:
    """ "position" for a queued job's new place in the queue, else the job's state."""
    if message.startswith("position "):
        return "position"
    return State.Name(state).removeprefix("JOB_STATE_").lower()


def plan(jobs: int, seed: int) -> list[str]:
    """The outcome each job asks for: 88 % ok, 5 % rejected, 2 % lost, 5 % cancelled."""
    rng = random.Random(seed)
    kinds = rng.choices(["ok", "rejected", "lost", "cancelled"], [88, 5, 2, 5], k=jobs)
    kinds[0] = "ok"
    return kinds


async def one_job(
    stub, index: int, kind: str, overheads: list[tuple], firsts: list[float]
) -> tuple[str, int, str, bool]:
    """One job's stream to its end: (the outcome asked for, the state it ended in, its error
    reason, whether that state is right).

    A job to cancel is cancelled on its first QUEUED event by a call made beside the stream:
    cancelling a running job can take the gateway half a second (it waits to see the job end),
    and the stream's events must not wait in the client meanwhile. Answered REQUESTED (it had
    started), the job may also end SUCCEEDED: the provider finished it."""
    prompt = f"{MARKERS.get(kind, '')}shot {index}: a slow dolly across a harbour at dawn"
    spec = generator_pb2.GenerationSpec(
        prompt=prompt, backend="dashscope", model="wanx2.1-t2v-turbo", width=832, height=480
    )
    call = stub.Generate(generator_pb2.GenerateRequest(spec=spec), timeout=900)
    last = None
    cancel = None
    async for response in call:
        received = time.time()
        event = response.event
        stamped = event.event_time.ToNanoseconds() / 1e9
        if last is None:
            firsts.append(received)
        overheads.append((received - stamped, received, event.job.state, event.message))
        last = event.job
        if kind == "cancelled" and cancel is None and last.state == State.JOB_STATE_QUEUED:
            request = generator_pb2.CancelJobRequest(job_id=last.job_id)
            cancel = asyncio.ensure_future(stub.CancelJob(request, timeout=30))
    expected = {EXPECTED[kind]}
    if cancel is not None and (await cancel).outcome != CANCELLED:
        expected.add(State.JOB_STATE_SUCCEEDED)  # it had started: the provider finished it
    return kind, last.state, last.error.reason, last.state in expected


async def loop_lag(lags: list[tuple[float, float]], stop: asyncio.Event) -> None:
    """How late this process's event loop wakes a LAG_TICK_S timer (and when), until `stop`."""
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(LAG_TICK_S)
        lags.append((time.perf_counter() - started - LAG_TICK_S, time.time()))


async def load(target: str, jobs: int, seed: int) -> dict[str, object]:
    overheads: list[tuple] = []
    firsts: list[float] = []
    lags: list[tuple[float, float]] = []
    kinds = plan(jobs, seed)
    options = [("grpc.max_concurrent_streams", 1000)]
    stop = asyncio.Event()
    monitor = asyncio.create_task(loop_lag(lags, stop))
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        stub = generator_pb2_grpc.GeneratorServiceStub(channel)
        started, cpu_started = time.monotonic(), time.process_time()
        outcomes = await asyncio.gather(
            *(one_job(stub, i, kind, overheads, firsts) for i, kind in enumerate(kinds)),
            return_exceptions=True,
        )
        wall_s = time.monotonic() - started
        cpu_s = time.process_time() - cpu_started
    stop.set()
    await monitor
    errors = [repr(o) for o in outcomes if isinstance(o, BaseException)]
    ended = [o for o in outcomes if not isinstance(o, BaseException)]
    wrong = [o[:3] for o in ended if not o[3]]
    by_state: dict[str, int] = {}
    for _, state, _, _ in ended:
        name = State.Name(state).removeprefix("JOB_STATE_").lower()
        by_state[name] = by_state.get(name, 0) + 1
    lag_ms = np.asarray([lag for lag, _ in lags]) * 1000
    worst_lag, worst_at = max(lags)
    slowest = sorted(overheads, reverse=True)[:20]
    first_received = min((o[1] for o in overheads), default=0.0)
    return {
        "jobs": jobs,
        "wall_s": round(wall_s, 1),
        "ended_by_state": by_state,
        "all_ended_correctly": not errors and not wrong and len(ended) == jobs,
        "wrong_outcomes": [list(map(str, w)) for w in wrong[:10]],
        "stream_errors": errors[:10],
        "client_cpu_share": round(cpu_s / wall_s, 3),
        "client_loop_lag_p50_ms": round(float(np.percentile(lag_ms, 50)), 2),
        "client_loop_lag_p99_ms": round(float(np.percentile(lag_ms, 99)), 2),
        "client_loop_lag_max_ms": round(worst_lag * 1000, 1),
        "client_loop_lag_max_at_s": round(worst_at - first_received, 3),
        "overheads_ms": [round(o[0] * 1000, 3) for o in overheads],
        "received_at_s": [round(o[1] - first_received, 3) for o in overheads],
        "kinds": [event_kind(o[2], o[3]) for o in overheads],
        "all_streams_open_at_s": round(max(firsts) - first_received, 3) if firsts else 0.0,
        "slowest_events": [
            {
                "overhead_ms": round(o[0] * 1000, 1),
                "received_at_s": round(o[1] - first_received, 3),
                "state": State.Name(o[2]).removeprefix("JOB_STATE_").lower(),
                "message": o[3],
            }
            for o in slowest
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = asyncio.run(load(args.target, args.jobs, args.seed))
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
