"""Stitching a previs cut: the selected clip of each shot, in order, as one MP4 and a timeline.

Every clip is decoded and re-encoded rather than concatenated stream by stream: the shots can
come from different backends and differ in size, frame rate and codec settings, and an MP4 holds
one of each. The cut takes one size and one rate (by default the first clip's). A clip whose
shape differs is scaled to fit and padded with black (letterbox or pillarbox), never cropped or
stretched, and is resampled by time: a clip of `d` seconds gives `round(d × fps)` frames, frame
`k` showing the source frame on screen at `k / fps`. So every shot keeps its length to within
a frame and the cut lasts as long as its shots.

The cut is written like the generator's animatic (H.264, yuv420p, one tick a frame, a keyframe
a second, single-threaded x264 and swscale): the same clips and settings give the same bytes.
It is picture only; previs clips carry no sound.

Next to the MP4, an OpenTimelineIO timeline lists each shot's clip, with its place in the cut,
pointing at the source clip rather than the cut, so an editor can re-cut from the originals.
Both files are written in a scratch folder inside `out_dir` and renamed into place, so a failed
stitch leaves no partial file and keeps the previous cut.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

import av
import numpy as np
import opentimelineio as otio
from opentimelineio.opentime import RationalTime, TimeRange

from clipmesh.media.probe import Clock, VideoInfo, corrupt, open_video, probe
from clipmesh.runtime.errors import InvalidArgument

MAX_SIDE = 4096
MAX_FPS = 120.0

# As the animatic's encoder, and for the same reason: without mbtree, this x264 build's output
# does not vary with leftover heap contents. CRF 23 (x264's default) rather than the animatic's
# 28: the clips are compressed already, and a second pass should not lose much more.
_X264_OPTIONS = {"preset": "veryfast", "crf": "23", "x264-params": "no-mbtree=1"}
# Matroska and FLV store times in whole milliseconds: a frame due at 41.67 ms says 42 ms.
_TIMESTAMP_SLACK_S = 0.001


@dataclass(frozen=True)
class CutClip:
    """One shot's selected clip, in cut order.

    Attributes:
        path: The clip file (an MP4 made by the generator).
        shot_id: The shot it films, e.g. "s001".
        name: The clip's name in the timeline, e.g. "s001 · Mara opens the door".
        metadata: JSON-serialisable facts about the shot, kept in the timeline.
    """

    path: Path
    shot_id: str
    name: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StitchedCut:
    """What `stitch` wrote.

    Attributes:
        mp4: The cut.
        otio: Its OpenTimelineIO timeline.
        duration_s: Length of the cut: its frames / `fps`.
        width: Frame width of the cut, in pixels.
        height: Frame height of the cut, in pixels.
        fps: Frame rate of the cut.
        shot_frames: Frames each shot contributes, in cut order.
    """

    mp4: Path
    otio: Path
    duration_s: float
    width: int
    height: int
    fps: float
    shot_frames: tuple[int, ...]


def _fit(width: int, height: int, box_width: int, box_height: int) -> tuple[int, int]:
    """The largest size of `width` × `height`'s shape that fits in the box."""
    scale = min(box_width / width, box_height / height)
    return (
        max(1, min(box_width, round(width * scale))),
        max(1, min(box_height, round(height * scale))),
    )


def _cut_size(width: int | None, height: int | None, first: VideoInfo) -> tuple[int, int]:
    """The requested size; a side not given is the first clip's (within `MAX_SIDE` and rounded
    down to even, as yuv420p needs)."""
    first_width, first_height = _fit(
        first.width, first.height, min(first.width, MAX_SIDE), min(first.height, MAX_SIDE)
    )
    return (
        width or max(2, first_width - first_width % 2),
        height or max(2, first_height - first_height % 2),
    )


def _check_size(side: int | None, name: str) -> None:
    if side is not None and not (isinstance(side, int) and 0 < side <= MAX_SIDE and side % 2 == 0):
        raise InvalidArgument(
            f"{name} must be an even number of pixels up to {MAX_SIDE}, not {side}",
            field=name,
            reason="UNSUPPORTED_SIZE",
        )


def _decoded(path: Path) -> Iterator[tuple[float, av.VideoFrame]]:
    """(seconds from the first frame, frame) of every frame of `path`, in display order."""
    with open_video(path) as (container, stream):
        stream.thread_type = "AUTO"  # frame-threaded H.264 decoding is bit-exact
        clock = Clock(stream)
        try:
            for frame in container.decode(stream):
                if frame.pts is not None:
                    yield clock.seconds(frame.pts), frame
        except av.FFmpegError as exc:
            raise corrupt(path, f"decoding failed ({exc.strerror})") from None


def _resampled(path: Path, frame_count: int, fps: float) -> Iterator[av.VideoFrame]:
    """The frame of `path` on screen at each time `k / fps`, for `k` below `frame_count`."""
    with contextlib.closing(_decoded(path)) as frames:
        shown, upcoming = None, next(frames, None)
        for index in range(frame_count):
            time_s = index / fps + _TIMESTAMP_SLACK_S
            while upcoming is not None and (shown is None or upcoming[0] <= time_s):
                shown, upcoming = upcoming, next(frames, None)
            if shown is None:
                raise corrupt(path, "no frame could be decoded")
            yield shown[1]


def _framed(frame: av.VideoFrame, fitted: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """`frame` upright, scaled to `fitted` and centred on a black `size` picture (RGB)."""
    turns = round(frame.rotation / 90) % 4  # counter-clockwise, like np.rot90
    width, height = fitted
    stored_width, stored_height = (height, width) if turns % 2 else (width, height)
    rgb = frame.reformat(
        width=stored_width, height=stored_height, format="rgb24", interpolation="AREA", threads=1
    ).to_ndarray()
    if turns:
        rgb = np.rot90(rgb, turns)
    canvas = np.zeros((size[1], size[0], 3), np.uint8)
    left, top = (size[0] - width) // 2, (size[1] - height) // 2
    canvas[top : top + height, left : left + width] = rgb
    return canvas


class _Shot(NamedTuple):
    clip: CutClip
    info: VideoInfo
    frame_count: int  # in the cut


def _encode(path: Path, shots: Sequence[_Shot], size: tuple[int, int], rate: Fraction) -> None:
    """Writes the shots in turn as one H.264 MP4 of `size` at `rate`."""
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        # One tick a frame: frame n starts at n / fps and n frames last exactly n / fps.
        stream.codec_context.time_base = 1 / rate
        stream.codec_context.gop_size = max(1, round(rate))  # a keyframe a second
        stream.codec_context.thread_count = 1  # threads would make the bytes vary
        stream.options = dict(_X264_OPTIONS)
        pts = 0
        for shot in shots:
            fitted = _fit(shot.info.width, shot.info.height, *size)
            previous, picture = None, None
            for frame in _resampled(shot.clip.path, shot.frame_count, float(rate)):
                if frame is not previous:  # a repeated frame is converted once
                    rgb = av.VideoFrame.from_ndarray(_framed(frame, fitted, size), format="rgb24")
                    # Converted here, single-threaded: the encoder's own conversion varies.
                    picture, previous = rgb.reformat(format="yuv420p", threads=1), frame
                picture.pts = pts
                pts += 1
                container.mux(stream.encode(picture))
        container.mux(stream.encode(None))


def _timeline(
    shots: Sequence[_Shot], fps: float, title: str, metadata: Mapping[str, Any]
) -> otio.schema.Timeline:
    """One video track of the shots' clips, each pointing at its source clip."""
    timeline = otio.schema.Timeline(name=title, metadata={"clipmesh": dict(metadata)})
    track = otio.schema.Track(name="previs", kind=otio.schema.TrackKind.Video)
    timeline.tracks.append(track)
    start = 0
    for clip, info, frame_count in shots:
        source_frames = round(info.duration_s * info.fps)
        source = TimeRange(RationalTime(0, info.fps), RationalTime(source_frames, info.fps))
        item = otio.schema.Clip(
            name=clip.name,
            media_reference=otio.schema.ExternalReference(
                target_url=clip.path.resolve().as_uri(), available_range=source
            ),
            source_range=TimeRange(RationalTime(0, fps), RationalTime(frame_count, fps)),
        )
        item.metadata["clipmesh"] = {
            **clip.metadata,
            "shot_id": clip.shot_id,
            "cut_start_s": start / fps,
            "cut_duration_s": frame_count / fps,
        }
        track.append(item)
        start += frame_count
    return timeline


def stitch(
    clips: Sequence[CutClip],
    out_dir: Path,
    *,
    name: str = "cut",
    title: str = "",
    width: int | None = None,
    height: int | None = None,
    fps: float | None = None,
    timeline_metadata: Mapping[str, Any] | None = None,
) -> StitchedCut:
    """Joins the clips, in order, into `out_dir / f"{name}.mp4"` and `f"{name}.otio"`.

    Synchronous and CPU-bound (it decodes and encodes every frame): run it in a worker thread.

    Args:
        clips: Each shot's selected clip, in cut order.
        out_dir: Where the cut goes (created if missing); a previous cut of `name` is replaced
            only once the new one is complete.
        name: File name of the cut, without extension.
        title: Name of the timeline; `name` when empty.
        width: Frame width of the cut; the first clip's by default.
        height: Frame height of the cut; the first clip's by default.
        fps: Frame rate of the cut; the first clip's by default.
        timeline_metadata: JSON-serialisable facts kept in the timeline's metadata.

    Returns:
        What was written.

    Raises:
        InvalidArgument: `EMPTY_CUT` with no clips; `INVALID_NAME`, `UNSUPPORTED_SIZE` or
            `UNSUPPORTED_FPS` for bad arguments; `probe`'s `NOT_A_VIDEO`, `CORRUPT_MEDIA` or
            `MEDIA_TOO_LARGE`, naming the clip, for a clip that cannot be read.
    """
    if not clips:
        raise InvalidArgument("a cut needs at least one clip", field="clips", reason="EMPTY_CUT")
    if not name or name.startswith(".") or Path(name).name != name:
        raise InvalidArgument(f"{name!r} is not a file name", field="name", reason="INVALID_NAME")
    _check_size(width, "width")
    _check_size(height, "height")
    if fps is not None and not 0 < fps <= MAX_FPS:
        raise InvalidArgument(
            f"fps must be above 0 and at most {MAX_FPS:g}, not {fps}",
            field="fps",
            reason="UNSUPPORTED_FPS",
        )
    infos = [probe(clip.path) for clip in clips]
    size = _cut_size(width, height, infos[0])
    rate = Fraction(fps or min(infos[0].fps, MAX_FPS)).limit_denominator(1001)
    cut_fps = float(rate)
    shots = [
        _Shot(clip, info, max(1, round(info.duration_s * cut_fps)))
        for clip, info in zip(clips, infos, strict=True)
    ]
    shot_frames = tuple(shot.frame_count for shot in shots)
    mp4, timeline_path = out_dir / f"{name}.mp4", out_dir / f"{name}.otio"
    about_cut = {"mp4": mp4.name, "width": size[0], "height": size[1], "fps": cut_fps}
    timeline = _timeline(shots, cut_fps, title or name, {**(timeline_metadata or {}), **about_cut})

    out_dir.mkdir(parents=True, exist_ok=True)
    # Inside out_dir, so the renames below stay on one file system and are atomic.
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=f".{name}-") as scratch:
        mp4_scratch, timeline_scratch = Path(scratch) / mp4.name, Path(scratch) / timeline_path.name
        _encode(mp4_scratch, shots, size, rate)
        otio.adapters.write_to_file(timeline, str(timeline_scratch), adapter_name="otio_json")
        os.replace(mp4_scratch, mp4)
        os.replace(timeline_scratch, timeline_path)
    return StitchedCut(
        mp4=mp4,
        otio=timeline_path,
        duration_s=sum(shot_frames) / cut_fps,
        width=size[0],
        height=size[1],
        fps=cut_fps,
        shot_frames=shot_frames,
    )
