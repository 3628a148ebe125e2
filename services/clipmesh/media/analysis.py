"""The steps of ingesting one video that need no service: its content id, its probe and segment
plan, its keyframes and thumbnails, and the write that stores it.

One implementation for every ingest: the orchestrator's `VideoIngester` runs these steps inside
its spans and progress reports, and the bulk ingest (`clipmesh.bulk`) runs them in Ray workers.
The same file therefore gets the same id, the same segments, the same keyframes and, embedded
with the same weights, the same vectors either way.
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from clipmesh.index.records import Segments, VideoMeta, VideoWrite
from clipmesh.media.frames import analysis_frames, frames_at
from clipmesh.media.paths import sha256_file
from clipmesh.media.probe import Deadline, MediaLimits, VideoInfo, check_file_size, probe
from clipmesh.media.shots import PlannedSegment, plan_segments

KEYFRAME_SIDE = 384  # enough for the model's 224 px input after a centre crop, and thumbnails
THUMBNAIL_JPEG_QUALITY = 90


@dataclass(frozen=True)
class ContentId:
    """Who a file is, by its bytes: the same bytes anywhere are the same video.

    Attributes:
        sha256: Hex SHA-256 of the file.
        video_id: The index's id for it, derived from the hash.
    """

    sha256: str
    video_id: str


@dataclass(frozen=True)
class VideoPlan:
    """What probing and shot detection found.

    Attributes:
        info: The probe's facts (duration, frame rate, size).
        segments: The segments, tiling the video.
    """

    info: VideoInfo
    segments: list[PlannedSegment]


def content_id(path: Path, limits: MediaLimits) -> ContentId:
    """Hashes a file after checking its size against the limits (one `stat` first, so a huge
    file is refused before it is read).

    Raises:
        InvalidArgument: MEDIA_TOO_LARGE.
    """
    check_file_size(path, limits)
    digest = sha256_file(path)
    return ContentId(digest, f"v{digest[:20]}")


def plan_video(
    path: Path, limits: MediaLimits, deadline: Deadline, *, max_window_s: float
) -> VideoPlan:
    """Probes the file and plans its shot-aware segments (one analysis pass of small frames).

    Raises:
        InvalidArgument: CORRUPT_MEDIA, NOT_A_VIDEO, MEDIA_TOO_LARGE, MEDIA_TOO_SLOW.
    """
    info = probe(path, limits, deadline)
    frames = analysis_frames(path, limits=limits, deadline=deadline)
    return VideoPlan(info, plan_segments(frames, info.duration_s, max_window_s=max_window_s))


def keyframes(
    path: Path, plan: VideoPlan, limits: MediaLimits, deadline: Deadline
) -> list[Image.Image]:
    """The frame that stands for each segment, at most `KEYFRAME_SIDE` pixels a side."""
    times_s = [segment.keyframe_s for segment in plan.segments]
    return frames_at(path, times_s, max_side=KEYFRAME_SIDE, limits=limits, deadline=deadline)


def save_thumbnails(
    thumbnails_dir: Path, video_id: str, images: Sequence[Image.Image]
) -> list[tuple[str, bytes]]:
    """Saves each keyframe as a JPEG thumbnail under `thumbnails_dir/video_id/`; returns
    (thumbnail URI, JPEG bytes) per keyframe. The JPEG is also what is embedded, so a
    thumbnail and its vector always show the same picture."""
    directory = thumbnails_dir / video_id
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for number, image in enumerate(images):
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=THUMBNAIL_JPEG_QUALITY)
        path = directory / f"{number:05d}.jpg"
        path.write_bytes(buffer.getvalue())
        written.append((path.resolve().as_uri(), buffer.getvalue()))
    return written


def video_meta(
    identity: ContentId,
    info: VideoInfo,
    *,
    uri: str,
    title: str,
    source: str,
    labels: Mapping[str, str],
) -> VideoMeta:
    """The video's metadata as the index stores it."""
    return VideoMeta(
        video_id=identity.video_id,
        uri=uri,
        title=title,
        duration_s=info.duration_s,
        fps=info.fps,
        width=info.width,
        height=info.height,
        size_bytes=info.size_bytes,
        source=source,
        create_time_s=time.time(),
        content_sha256=identity.sha256,
        labels=dict(labels),
    )


def video_write(
    meta: VideoMeta, plan: VideoPlan, *, thumbnails: Sequence[str], vectors: np.ndarray
) -> VideoWrite:
    """The index write that stores the video with all its segments at once."""
    segments = Segments(
        start_s=np.array([s.start_s for s in plan.segments], dtype=np.float64),
        end_s=np.array([s.end_s for s in plan.segments], dtype=np.float64),
        keyframe_s=np.array([s.keyframe_s for s in plan.segments], dtype=np.float64),
        vectors=vectors,
        thumbnails=tuple(thumbnails),
    )
    return VideoWrite(meta, segments)
