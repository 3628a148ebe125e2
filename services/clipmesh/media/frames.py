"""Decoding a probed video: a fast low-resolution pass for shot detection, and chosen frames.

Ingest has to run at 10× real time or better on two cores, so both paths decode as little as
the container allows:

- `analysis_frames` skips the frames no other frame refers to (`skip_frame="NONREF"`, about
  half of an H.264 stream with B-frames) and the deblocking filter, which a 160-pixel picture
  cannot show, and scales the few frames it keeps with a single-threaded area filter (the
  default thread pool costs more than the scaling at this size). Above about 1080p30 it
  decodes keyframes only: cuts are then found to the nearest keyframe, which encoders
  usually place at cuts anyway.
- `frames_at` seeks to the keyframe before each requested time and decodes forward to it, but
  only when that skips work: when the next time is in the group of pictures being decoded it
  decodes on. With the times sorted, hardly any frame is decoded twice.

Times count from the video's first frame (see `Clock`); frames come out as displayed, with
the pixel aspect ratio and the container's rotation applied.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np
from av.container import InputContainer
from av.video.stream import VideoStream
from PIL import Image

from clipmesh.media.probe import (
    DEFAULT_LIMITS,
    Clock,
    Deadline,
    MediaLimits,
    corrupt,
    decode,
    display_size,
    open_video,
)
from clipmesh.runtime.errors import InvalidArgument

FULL_DECODE_MAX_PIXELS_PER_S = 1920 * 1088 * 30
"""Above this source pixel rate the analysis pass decodes keyframes only."""

# Without an index to say where keyframes are, decode on rather than seek for gaps this short.
_FORWARD_DECODE_LIMIT_S = 3.0

# PIL's ROTATE_* turn counter-clockwise, like FFmpeg's display matrix.
_ROTATIONS = {
    1: Image.Transpose.ROTATE_90,
    2: Image.Transpose.ROTATE_180,
    3: Image.Transpose.ROTATE_270,
}


class AnalysisFrame(NamedTuple):
    """One frame of the analysis pass.

    Attributes:
        time_s: When the frame is shown, from the first frame.
        rgb: The frame, small, as a (height, width, 3) uint8 array.
    """

    time_s: float
    rgb: np.ndarray


def _quarter_turns(frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns that show the frame upright."""
    return round(frame.rotation / 90) % 4


def _scaled_size(stream: VideoStream, turns: int, max_side: int) -> tuple[int, int]:
    """(width, height) to scale a stored frame to so it shows at most `max_side` long."""
    width, height = display_size(stream, turns * 90)
    scale = min(1.0, max_side / max(width, height))
    width, height = max(1, round(width * scale)), max(1, round(height * scale))
    return (height, width) if turns % 2 else (width, height)


def _small_rgb(frame: av.VideoFrame, stream: VideoStream, max_side: int) -> np.ndarray:
    turns = _quarter_turns(frame)
    width, height = _scaled_size(stream, turns, max_side)
    rgb = frame.reformat(
        width=width, height=height, format="rgb24", interpolation="AREA", threads=1
    ).to_ndarray()
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def analysis_frames(
    path: Path,
    *,
    frame_rate: float = 8.0,
    max_side: int = 160,
    keyframes_only: bool | None = None,
    limits: MediaLimits = DEFAULT_LIMITS,
    deadline: Deadline | None = None,
) -> Iterator[AnalysisFrame]:
    """Decodes a video quickly at low resolution and rate, for shot detection.

    The file stays open until the iterator is exhausted or closed.

    Args:
        path: A video that `probe` accepted.
        frame_rate: At most this many frames a second are kept.
        max_side: Longest side of the kept frames, in pixels.
        keyframes_only: Decode keyframes only; `None` decides from the pixel rate.
        limits: Probe size, read timeout and pixel cap.
        deadline: The file's time budget; a fresh one of `limits.max_decode_s` when None.

    Yields:
        Frames in display order: the first decoded in each `1 / frame_rate` interval.

    Raises:
        InvalidArgument: `CORRUPT_MEDIA` when decoding fails partway; `MEDIA_TOO_SLOW`.
    """
    step_s = 1.0 / frame_rate
    deadline = deadline or Deadline(path, limits.max_decode_s)
    with open_video(path, limits, deadline) as (container, stream):
        codec = stream.codec_context
        if keyframes_only is None:
            rate = float(stream.average_rate or 30)
            keyframes_only = codec.width * codec.height * rate > FULL_DECODE_MAX_PIXELS_PER_S
        codec.skip_frame = "NONKEY" if keyframes_only else "NONREF"
        codec.options = {**codec.options, "skip_loop_filter": "all"}
        stream.thread_type = "AUTO"
        clock = Clock(stream)
        next_s, time_s = 0.0, 0.0
        try:
            for frame in decode(container, stream, deadline):
                if frame.pts is None:
                    continue
                time_s = clock.seconds(frame.pts)
                if time_s < next_s - 1e-6:
                    continue
                next_s = (math.floor(time_s / step_s + 1e-6) + 1) * step_s
                yield AnalysisFrame(time_s, _small_rgb(frame, stream, max_side))
        except av.FFmpegError as exc:
            raise corrupt(path, f"decoding failed after {time_s:.1f} s ({exc.strerror})") from None


class _ForwardDecoder:
    """Finds the frame nearest a time, decoding forward and seeking only to skip work."""

    def __init__(self, container: InputContainer, stream: VideoStream, deadline: Deadline) -> None:
        self._container, self._stream, self._deadline = container, stream, deadline
        self._clock = Clock(stream)
        self._half_frame_s = 0.5 / float(stream.average_rate or 30)
        self._frames: Iterator[av.VideoFrame] = iter(())
        self._previous: av.VideoFrame | None = None
        self._current: av.VideoFrame | None = None

    def _time_s(self, frame: av.VideoFrame) -> float:
        return self._clock.seconds(frame.pts)

    def _worth_seeking(self, time_s: float) -> bool:
        current, earliest = self._current, self._previous or self._current
        if current is None or earliest is None or self._time_s(earliest) > time_s:
            return True
        entries = self._stream.index_entries
        if len(entries) > 1:  # Matroska lists one entry until its cues are read
            keyframe = entries.search_timestamp(self._clock.pts(time_s), backward=True)
            return keyframe >= 0 and entries[keyframe].timestamp > current.pts
        return time_s - self._time_s(current) > _FORWARD_DECODE_LIMIT_S

    def _restart(self, pts: int) -> av.VideoFrame | None:
        self._container.seek(pts, stream=self._stream, backward=True)
        self._frames = decode(self._container, self._stream, self._deadline)
        return next(self._frames, None)

    def _seek(self, time_s: float) -> None:
        back_s = 0.0
        while True:
            first = self._restart(self._clock.pts(time_s - back_s))
            # A seek can land on a keyframe shown after `time_s`, or past the last one: with
            # B-frames (decoded before they are shown), or without an exact index (MPEG-TS
            # seeks by decode time to a byte position and decodes from the next keyframe).
            # Then start further back, at worst a second before the first frame, since a seek
            # just before it can miss it too.
            late = first is None or self._time_s(first) - time_s > self._half_frame_s
            if not late or time_s - back_s < -1.0:
                break
            back_s = max(2 * back_s, 1.0)
        self._previous, self._current = None, first

    def nearest(self, time_s: float) -> av.VideoFrame | None:
        """The decoded frame shown nearest `time_s` (the last one past the end)."""
        if self._worth_seeking(time_s):
            self._seek(time_s)
        while self._current is not None and self._time_s(self._current) < time_s:
            following = next(self._frames, None)
            if following is None:
                break
            self._previous, self._current = self._current, following
        candidates = [f for f in (self._previous, self._current) if f is not None]
        return min(candidates, key=lambda f: abs(self._time_s(f) - time_s), default=None)


def _as_image(frame: av.VideoFrame, stream: VideoStream, max_side: int) -> Image.Image:
    turns = _quarter_turns(frame)
    width, height = _scaled_size(stream, turns, max_side)
    image = frame.to_image(width=width, height=height, interpolation="AREA", threads=1)
    return image.transpose(_ROTATIONS[turns]) if turns else image


def frames_at(
    path: Path,
    times_s: Iterable[float],
    *,
    max_side: int,
    limits: MediaLimits = DEFAULT_LIMITS,
    deadline: Deadline | None = None,
) -> list[Image.Image]:
    """Decodes the frames shown nearest the given times.

    Args:
        path: A video that `probe` accepted.
        times_s: Seconds from the first frame, in any order; times past the end give the
            last frame.
        max_side: Longest side of the returned images, in pixels; frames are never enlarged.
        limits: Probe size, read timeout and pixel cap.
        deadline: The file's time budget; a fresh one of `limits.max_decode_s` when None.

    Returns:
        RGB images, as displayed, in the order of `times_s`.

    Raises:
        InvalidArgument: `TIME_OUT_OF_RANGE` for a negative or non-finite time;
            `CORRUPT_MEDIA` when decoding fails; `MEDIA_TOO_SLOW`.
    """
    times_s = list(times_s)
    for time_s in times_s:
        if not math.isfinite(time_s) or time_s < 0:
            raise InvalidArgument(
                f"{path.name}: no frame at {time_s} s", field="times_s", reason="TIME_OUT_OF_RANGE"
            )
    images: list[Image.Image | None] = [None] * len(times_s)
    deadline = deadline or Deadline(path, limits.max_decode_s)
    with open_video(path, limits, deadline) as (container, stream):
        stream.thread_type = "AUTO"
        decoder = _ForwardDecoder(container, stream, deadline)
        for index in sorted(range(len(times_s)), key=times_s.__getitem__):
            try:
                frame = decoder.nearest(times_s[index])
            except av.FFmpegError as exc:
                raise corrupt(
                    path, f"decoding failed near {times_s[index]:.1f} s ({exc.strerror})"
                ) from None
            if frame is None:
                raise corrupt(path, f"no frame decodes near {times_s[index]:.1f} s")
            images[index] = _as_image(frame, stream, max_side)
    return images  # type: ignore[return-value]
