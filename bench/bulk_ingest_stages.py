"""What one bulk-ingest worker spends its time on, and how fast the index takes its writes: the
per-worker figures bench/bulk_ingest.py reports and docs/benchmarks.md projects from.

`stage_profile` runs a worker's stages on one thread in this process (decoding and cutting,
then embedding with the runs' model); `index_write_rate` sends batched upserts shaped like the
driver's to a running index.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import numpy as np

from clipmesh_api.index.v1 import index_pb2_grpc
from clipmesh_client.wire import ChannelPolicy, open_aio_channel


def encoder_environ(args: argparse.Namespace) -> dict[str, str]:
    """The encoder settings every path of the benchmark runs with."""
    return {
        "CLIPMESH_ENCODER_MODEL": args.model,
        "CLIPMESH_ENCODER_WEIGHTS": "random:0",
        "CLIPMESH_ENCODER_PRECISION": args.precision,
    }


def stage_profile(args, library: list[Path], scratch: Path) -> dict[str, float]:
    """One worker's costs on one thread: decoding and cutting per second of video, embedding
    per keyframe (the model the runs use)."""
    import io

    import torch

    from clipmesh.encoder.config import EncoderConfig
    from clipmesh.encoder.encoding import ImagePreprocessor, image_limits
    from clipmesh.encoder.model import load_model
    from clipmesh.encoder.weights import WeightsSpec
    from clipmesh.media.analysis import keyframes, plan_video
    from clipmesh.media.probe import DEFAULT_LIMITS, Deadline, probe
    from clipmesh.runtime.config import load_config

    torch.set_num_threads(1)
    encoder = load_config(EncoderConfig, environ=encoder_environ(args))
    model = load_model(
        encoder.model, WeightsSpec.parse(encoder.weights), precision=encoder.precision, threads=1
    )
    preprocess = ImagePreprocessor(model, image_limits(encoder))
    decode_s = embed_s = video_s = 0.0
    frames = 0
    for path in library[: args.profile_videos]:
        started = time.perf_counter()
        deadline = Deadline(path, 600)
        plan = plan_video(path, DEFAULT_LIMITS, deadline, max_window_s=10.0)
        images = keyframes(path, plan, DEFAULT_LIMITS, deadline)
        jpegs = []
        for image in images:
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=90)
            jpegs.append(buffer.getvalue())
        decode_s += time.perf_counter() - started
        video_s += probe(path, DEFAULT_LIMITS).duration_s
        started = time.perf_counter()
        model.embed_images(torch.from_numpy(np.stack(preprocess(jpegs))))
        embed_s += time.perf_counter() - started
        frames += len(jpegs)
    return {
        "videos": min(len(library), args.profile_videos),
        "video_seconds": round(video_s, 1),
        "keyframes": frames,
        "decode_cut_s_per_video_s": round(decode_s / video_s, 5),
        "embed_ms_per_keyframe": round(embed_s / frames * 1000, 2),
        "keyframes_per_video_s": round(frames / video_s, 4),
        "embed_s_per_video_s": round(embed_s / video_s, 5),
        "decode_share": round(decode_s / (decode_s + embed_s), 3),
    }


async def index_write_rate(index: str, dimension: int) -> dict[str, float]:
    """Segments per second the index takes in batched upserts like the driver's (32 videos of
    6 segments a call, 2 calls in flight)."""
    from clipmesh.index.convert import upsert_to_proto
    from clipmesh.index.records import Segments, VideoMeta, VideoWrite

    channel = open_aio_channel(index, ChannelPolicy(timeout_s=120, max_attempts=1))
    stub = index_pb2_grpc.IndexServiceStub(channel)
    rng = np.random.default_rng(0)
    calls, videos_per_call, segments = 40, 32, 6

    def request(call: int):
        writes = []
        for number in range(videos_per_call):
            vectors = rng.normal(size=(segments, dimension)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            times = np.arange(segments, dtype=np.float64)
            video_id = f"w{call:05d}{number:05d}"
            writes.append(
                VideoWrite(
                    VideoMeta(video_id=video_id, uri=f"file:///{video_id}.mp4"),
                    Segments(times, times + 1, times + 0.5, vectors, ("",) * segments),
                )
            )
        return upsert_to_proto("writes", writes)

    requests = [request(call) for call in range(calls)]
    slots = asyncio.Semaphore(2)

    async def write(one):
        async with slots:
            await stub.UpsertSegments(one)

    started = time.perf_counter()
    await asyncio.gather(*(write(one) for one in requests))
    wall_s = time.perf_counter() - started
    await channel.close()
    total = calls * videos_per_call * segments
    return {"segments": total, "wall_s": round(wall_s, 2), "segments_per_s": round(total / wall_s)}
