"""Closed-loop load on the encoder service: callers that each send one request and, as soon as
it is answered, the next, timed inside a window of wall-clock time.

bench/encoder.py runs it in its own process; bench/gpu.py runs several copies as client
processes (`python -m bench.encoder_load ...`, JSON on stdout), since one Python client tops out
at a few thousand requests a second, and adds their windows up: the window is wall-clock time
(CLOCK_REALTIME), shared by every process on the machine.

Each request carries `images_per_request` 256×256 JPEGs (a search query, or a keyframe
thumbnail), so any batching across requests is the server's doing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clipmesh.demo.synthetic import encode_image, gradient_image
from clipmesh_api.encoder.v1 import encoder_pb2, encoder_pb2_grpc
from clipmesh_client.wire import ChannelPolicy, open_aio_channel

DISTINCT_IMAGES = 64


def request_images(count: int = DISTINCT_IMAGES, side: int = 256) -> list[bytes]:
    """`count` different JPEGs of `side`×`side` pixels."""
    return [encode_image(gradient_image(side, side, seed=i)) for i in range(count)]


async def closed_loop(
    target: str,
    callers: int,
    *,
    measure_from: float,
    measure_until: float,
    images_per_request: int = 1,
    first_image: int = 0,
) -> list[float]:
    """Runs `callers` back-to-back callers from now until `measure_until` (time.time()).

    Returns the latency in seconds of every request answered inside the window
    [`measure_from`, `measure_until`]: their count over the window's length is the rate at a
    steady state (the requests before it warm up; those still in flight at its end are
    answered and left out).
    """
    images = request_images()
    latencies: list[float] = []
    async with open_aio_channel(target, ChannelPolicy(timeout_s=30, max_attempts=1)) as channel:
        stub = encoder_pb2_grpc.EncoderServiceStub(channel)

        async def caller(worker: int) -> None:
            sent = first_image + worker * images_per_request
            while time.time() < measure_until:
                picked = [images[(sent + i) % len(images)] for i in range(images_per_request)]
                request = encoder_pb2.EmbedImagesRequest(images=picked)
                started = time.perf_counter()
                await stub.EmbedImages(request)
                if measure_from <= time.time() <= measure_until:
                    latencies.append(time.perf_counter() - started)
                sent += callers * images_per_request

        await asyncio.gather(*(caller(w) for w in range(callers)))
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--callers", type=int, required=True)
    parser.add_argument("--measure-from", type=float, required=True, help="time.time()")
    parser.add_argument("--measure-until", type=float, required=True, help="time.time()")
    parser.add_argument("--images-per-request", type=int, default=1)
    parser.add_argument("--first-image", type=int, default=0)
    args = parser.parse_args()
    cpu_started = time.process_time()
    latencies = asyncio.run(
        closed_loop(
            args.target,
            args.callers,
            measure_from=args.measure_from,
            measure_until=args.measure_until,
            images_per_request=args.images_per_request,
            first_image=args.first_image,
        )
    )
    report = {"latencies_s": latencies, "cpu_s": time.process_time() - cpu_started}
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
