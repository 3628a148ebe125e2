"""What the bulk-ingest tests share: their settings, a run of the driver in this process, the
report's lines, and what the index holds of a collection (videos, segments, vectors)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np

from clipmesh.bulk.config import BulkIngestConfig
from clipmesh.bulk.progress import Totals
from clipmesh.bulk.run import BulkIngestJob, run_bulk_ingest
from clipmesh.bulk.sources import Source
from clipmesh.runtime.config import load_config
from clipmesh_api.common.v1 import common_pb2
from clipmesh_api.index.v1 import index_pb2, index_pb2_grpc


def bulk_environ(index_target: str, data_dir: Path, **settings: object) -> dict[str, str]:
    """`CLIPMESH_BULK_INGEST_*` for a test run: the test mesh's index, thumbnails under
    `data_dir`, small batches, and `settings` (field name → value)."""
    environ = {
        "CLIPMESH_BULK_INGEST_INDEX_TARGET": index_target,
        "CLIPMESH_BULK_INGEST_THUMBNAILS_DIR": str(data_dir / "thumbnails"),
        "CLIPMESH_BULK_INGEST_VIDEOS_PER_TASK": "2",
        "CLIPMESH_BULK_INGEST_WRITE_BATCH_VIDEOS": "4",
        "CLIPMESH_BULK_INGEST_CALL_TIMEOUT_S": "60",
    }
    for name, value in settings.items():
        environ[BulkIngestConfig.env_name(name)] = str(value)
    return environ


def bulk_config(index_target: str, data_dir: Path, **settings: object) -> BulkIngestConfig:
    return load_config(BulkIngestConfig, environ=bulk_environ(index_target, data_dir, **settings))


async def bulk_run(
    source: str | Path,
    config: BulkIngestConfig,
    encoder,
    *,
    ray_address: str,
    report: Path,
    labels: dict[str, str] | None = None,
    **options,
) -> Totals:
    """Runs the driver in this process against the test cluster (`options`: those of
    `run_bulk_ingest`, e.g. `on_progress`)."""
    job = BulkIngestJob(Source.parse(str(source), config), ray_address, labels or {}, report)
    return await run_bulk_ingest(job, config, encoder, **options)


def report_lines(report: Path) -> dict[str, dict]:
    """The report, by URI."""
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    by_uri = {line["uri"]: line for line in lines}
    assert len(by_uri) == len(lines), "a file is reported twice"
    return by_uri


@dataclass(frozen=True)
class HeldVideo:
    """A video as the index holds it."""

    meta: common_pb2.Video
    segment_count: int
    times: np.ndarray  # (n, 3): start, end, keyframe
    vectors: np.ndarray  # (n, d)


async def held_videos(mesh, collection: str) -> dict[str, HeldVideo]:
    """Every video of `collection` with its segments, by content hash."""
    index = mesh.stub("index", index_pb2_grpc.IndexServiceStub)
    request = index_pb2.ListVideosRequest(
        collection=collection, page=common_pb2.PageRequest(page_size=1000)
    )
    try:
        listing = await index.ListVideos(request)
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:  # created by its first write: none yet
            return {}
        raise
    held = {}
    for video in listing.videos:
        got = await index.GetVideo(
            index_pb2.GetVideoRequest(collection=collection, video_id=video.video_id)
        )
        segments = await index.GetSegments(
            index_pb2.GetSegmentsRequest(collection=collection, video_id=video.video_id)
        )
        times = np.array([(s.start_s, s.end_s, s.keyframe_s) for s in segments.segments])
        vectors = np.array([s.vector for s in segments.segments], dtype=np.float32)
        assert video.content_sha256 not in held, "the same bytes are held twice"
        held[video.content_sha256] = HeldVideo(got.video, got.segments, times, vectors)
    return held
