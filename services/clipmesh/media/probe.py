"""Opening and probing untrusted local video files with PyAV (FFmpeg).

Every file is opened by `open_video`: FFmpeg's `file` protocol only, and only an allowlist of
container demuxers, so a playlist (HLS, concat) cannot pull in other files. `MediaLimits`
bounds each file so a hostile one can neither wedge a worker nor exhaust memory: its size
before it is read, duration and frame size from the headers, the pixels any decoder may
allocate for one frame (FFmpeg's `max_pixels`), and one `Deadline` for all its probing and
decoding, checked before every packet. That keeps the work in the calling thread (PyAV
releases the GIL) instead of a subprocess per file. `probe` then checks what ingest relies on
and catches `+faststart` files cut short. Errors are `InvalidArgument` (`NOT_A_VIDEO`,
`CORRUPT_MEDIA`, `MEDIA_TOO_LARGE`, `MEDIA_TOO_SLOW`) naming the file; the limits and their
defaults are in docs/security.md.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from av.container import InputContainer
from av.stream import Disposition
from av.video.stream import VideoStream

from clipmesh.runtime.errors import InvalidArgument, PermissionDenied

# FFmpeg demuxer names: `mov` serves MP4/MOV/M4V/3GP, `matroska` serves WebM too.
_DEMUXERS = "mov,matroska,avi,mpegts,flv,mpeg,ogg,asf"

# Magic bytes of the containers above, to tell a damaged video from something else.
_CONTAINER_MAGIC = (
    (4, b"ftyp", "MP4"),
    (4, b"moov", "MP4"),
    (4, b"mdat", "MP4"),
    (4, b"free", "MP4"),
    (4, b"wide", "MP4"),
    (0, b"\x1a\x45\xdf\xa3", "Matroska"),
    (0, b"FLV", "FLV"),
    (0, b"OggS", "Ogg"),
    (0, b"\x00\x00\x01\xba", "MPEG-PS"),
    (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "ASF"),
)
_TS_PACKET_BYTES = 188


@dataclass(frozen=True)
class MediaLimits:
    """What ingest accepts and how long FFmpeg may take to look.

    Attributes:
        max_file_bytes: Largest file accepted.
        max_duration_s: Longest video accepted.
        max_side: Longest frame side accepted, in pixels (as displayed), whatever the rotation.
        max_frame_pixels: Most pixels in one frame, whatever the header says: the decoder
            refuses to allocate a larger one.
        max_decode_s: Longest all probing and decoding of one file may take, together.
        probe_size_bytes: Most bytes FFmpeg reads to find the streams.
        read_timeout_s: Longest FFmpeg may block opening or reading the file.
    """

    max_file_bytes: int = 20 << 30
    max_duration_s: float = 4 * 3600.0
    max_side: int = 8192
    max_frame_pixels: int = 36_000_000  # 8K (8192×4320 is 35.4 million)
    max_decode_s: float = 1800.0
    probe_size_bytes: int = 5_000_000
    read_timeout_s: float = 30.0


DEFAULT_LIMITS = MediaLimits()


class Deadline:
    """The wall-clock budget of one file's probing and decoding (`MediaLimits.max_decode_s`).

    One deadline is shared by every pass over a file (probe, analysis, keyframes), so the limit
    holds for the file as a whole.
    """

    def __init__(self, path: Path, limit_s: float) -> None:
        self._path = path
        self.limit_s = limit_s
        self._end_s = time.monotonic() + limit_s

    def remaining_s(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self._end_s - time.monotonic())

    def check(self) -> None:
        """Raises `MEDIA_TOO_SLOW` once the budget is spent."""
        if time.monotonic() >= self._end_s:
            raise InvalidArgument(
                f"{self._path.name}: reading and decoding took longer than the "
                f"{self.limit_s:g} s limit per file",
                field="uri",
                reason="MEDIA_TOO_SLOW",
            )


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` found out about a video.

    Attributes:
        duration_s: Length of the video stream.
        fps: Average frame rate.
        width: Frame width as displayed (after rotation and pixel aspect ratio).
        height: Frame height as displayed.
        codec: FFmpeg's name of the video codec (`h264`, `hevc`, `vp9` …).
        frame_count_estimate: Frames in the stream, from the container or duration × fps.
        size_bytes: Size of the file.
    """

    duration_s: float
    fps: float
    width: int
    height: int
    codec: str
    frame_count_estimate: int
    size_bytes: int


def _sniff_container(path: Path) -> str | None:
    """The video container `path`'s first bytes announce, or None."""
    with open(path, "rb") as file:
        head = file.read(_TS_PACKET_BYTES + 1)
    for offset, magic, name in _CONTAINER_MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    if len(head) > _TS_PACKET_BYTES and head[0] == head[_TS_PACKET_BYTES] == 0x47:
        return "MPEG-TS"
    return None


def corrupt(path: Path, detail: str) -> InvalidArgument:
    """The error for a video file that cannot be read through (`CORRUPT_MEDIA`)."""
    return InvalidArgument(f"{path.name}: {detail}", field="uri", reason="CORRUPT_MEDIA")


def not_a_video(path: Path, detail: str) -> InvalidArgument:
    """The error for a file that holds no video (`NOT_A_VIDEO`)."""
    return InvalidArgument(f"{path.name}: {detail}", field="uri", reason="NOT_A_VIDEO")


def _unopenable(path: Path, exc: av.FFmpegError) -> Exception:
    try:
        if os.path.getsize(path) == 0:
            return not_a_video(path, "the file is empty")
        container = _sniff_container(path)
    except OSError as os_error:
        return PermissionDenied(
            f"{path.name} cannot be read: {os_error.strerror}", reason="FILE_NOT_READABLE"
        )
    if container is None:
        return not_a_video(path, "not a video file (no supported container format found)")
    return corrupt(path, f"looks like {container} but cannot be opened ({exc.strerror})")


def _video_stream(container: InputContainer, path: Path) -> VideoStream:
    """The first real video stream; cover art (an attached picture) does not count."""
    for stream in container.streams.video:
        if not stream.disposition & Disposition.attached_pic:
            if stream.codec_context is None:  # what PyAV gives for an unknown codec
                raise corrupt(path, "FFmpeg has no decoder for its video codec")
            return stream
    raise not_a_video(path, "no video stream")


@contextmanager
def open_video(
    path: Path, limits: MediaLimits = DEFAULT_LIMITS, deadline: Deadline | None = None
) -> Iterator[tuple[InputContainer, VideoStream]]:
    """Opens a local video file for reading, safely; yields the container and its video stream.

    Args:
        path: A local regular file, as returned by `resolve_media_path`.
        limits: Probe size, read timeout and the pixel cap of the decoders.
        deadline: The file's time budget, which opening counts against too; a fresh one
            of `limits.max_decode_s` when None.

    Raises:
        InvalidArgument: `NOT_A_VIDEO`, `CORRUPT_MEDIA` or `MEDIA_TOO_SLOW`.
        PermissionDenied: `FILE_NOT_READABLE`.
    """
    deadline = deadline or Deadline(path, limits.max_decode_s)
    container_options = {
        "protocol_whitelist": "file",
        "format_whitelist": _DEMUXERS,
        "probesize": str(limits.probe_size_bytes),
    }
    # Finding the streams decodes a few frames; their decoders get the pixel cap too.
    decoder_options = {"max_pixels": str(limits.max_frame_pixels)}
    try:
        container = av.open(
            str(path),
            options=decoder_options,
            container_options=container_options,
            # FFmpeg gives up opening when the file's budget runs out, reading at any stall.
            timeout=(min(limits.read_timeout_s, deadline.remaining_s()), limits.read_timeout_s),
            metadata_errors="replace",
        )
    except av.FFmpegError as exc:
        deadline.check()
        raise _unopenable(path, exc) from None
    with container:
        stream = _video_stream(container, path)
        stream.codec_context.options = {**stream.codec_context.options, **decoder_options}
        yield container, stream


def decode(
    container: InputContainer, stream: VideoStream, deadline: Deadline
) -> Iterator[av.VideoFrame]:
    """`container.decode(stream)`, checking the file's deadline before each packet."""
    try:
        for packet in container.demux(stream):
            deadline.check()
            yield from packet.decode()
    except IndexError:  # PyAV has no stream for a packet of one FLV or MPEG-TS added midway
        raise corrupt(Path(container.name), "a stream appeared partway through") from None


class Clock:
    """Converts between a stream's timestamps and seconds from its first frame.

    Containers may start at a non-zero time (MPEG-TS often does); clipmesh's times always count
    from the first frame.
    """

    def __init__(self, stream: VideoStream) -> None:
        self.time_base = stream.time_base or Fraction(1, 90_000)
        self.start_pts = stream.start_time or 0

    def seconds(self, pts: int) -> float:
        """Seconds from the first frame at timestamp `pts`."""
        return float((pts - self.start_pts) * self.time_base)

    def pts(self, seconds: float) -> int:
        """The timestamp `seconds` after the first frame."""
        return self.start_pts + int(seconds / self.time_base)


def display_size(stream: VideoStream, rotation_deg: int) -> tuple[int, int]:
    """(width, height) of the stream's frames as shown: pixel aspect ratio and rotation applied."""
    codec = stream.codec_context
    width, height = codec.width, codec.height
    aspect = stream.sample_aspect_ratio
    if aspect and aspect > 0 and aspect != 1:
        width = round(width * aspect)
    if rotation_deg % 180:
        width, height = height, width
    return width, height


def _duration_s(container: InputContainer, stream: VideoStream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return None


def _first_keyframe_from(
    container: InputContainer, stream: VideoStream, pts: int | None, deadline: Deadline
) -> av.VideoFrame | None:
    if pts is not None:
        container.seek(pts, stream=stream, backward=True)
    return next(decode(container, stream, deadline), None)


def _cut_short(stream: VideoStream, size_bytes: int) -> bool:
    """Whether the container's index points past the end of the file (MP4 and MOV have one)."""
    entries = stream.index_entries
    if not entries:
        return False
    last = entries[len(entries) - 1]
    return last.pos + last.size > size_bytes


def _too_large(path: Path, detail: str) -> InvalidArgument:
    return InvalidArgument(f"{path.name}: {detail}", field="uri", reason="MEDIA_TOO_LARGE")


def check_file_size(path: Path, limits: MediaLimits = DEFAULT_LIMITS) -> int:
    """The file's size in bytes, or `MEDIA_TOO_LARGE` above `limits.max_file_bytes`.

    Cheap (one `stat`): ingest calls it before reading the file at all.
    """
    size_bytes = os.path.getsize(path)
    if size_bytes > limits.max_file_bytes:
        raise _too_large(
            path, f"{size_bytes:,} bytes; the limit is {limits.max_file_bytes:,} bytes per file"
        )
    return size_bytes


def _check_frame_size(
    path: Path, stream: VideoStream, rotation: int, limits: MediaLimits
) -> tuple[int, int]:
    """The frame size as displayed; MEDIA_TOO_LARGE when a side or the pixels exceed limits."""
    codec = stream.codec_context
    width, height = display_size(stream, rotation)
    if max(width, height) > limits.max_side:
        raise _too_large(
            path, f"{width}×{height} pixels; the limit is {limits.max_side} on either side"
        )
    if codec.width * codec.height > limits.max_frame_pixels:
        raise _too_large(
            path,
            f"{codec.width}×{codec.height} pixels; the limit is "
            f"{limits.max_frame_pixels:,} pixels a frame",
        )
    return width, height


def probe(
    path: Path, limits: MediaLimits = DEFAULT_LIMITS, deadline: Deadline | None = None
) -> VideoInfo:
    """Reads a video's streams and checks that it can be decoded from start to end.

    Decodes the first keyframe and, where the container has an index, the last one, and
    checks the index against the file's size, so files cut short fail here, not halfway
    through ingest.

    Args:
        path: A local regular file, as returned by `resolve_media_path`.
        limits: Caps on size, duration and frame size, probe size and read timeout.
        deadline: The file's time budget; a fresh one of `limits.max_decode_s` when None.

    Raises:
        InvalidArgument: `NOT_A_VIDEO` (not a video container, or no video stream),
            `CORRUPT_MEDIA` (damaged, truncated, undecodable, no duration or frame rate),
            `MEDIA_TOO_LARGE` (bigger, longer or larger than `limits`) or `MEDIA_TOO_SLOW`.
        PermissionDenied: `FILE_NOT_READABLE`.
    """
    size_bytes = check_file_size(path, limits)
    deadline = deadline or Deadline(path, limits.max_decode_s)
    with open_video(path, limits, deadline) as (container, stream):
        codec = stream.codec_context
        duration_s = _duration_s(container, stream)
        rate = stream.average_rate or stream.guessed_rate
        if not duration_s or duration_s <= 0:
            raise corrupt(path, "the video stream has no duration")
        if not rate or rate <= 0:
            raise corrupt(path, "the video stream has no frame rate")
        if not codec.width or not codec.height:
            # FFmpeg clears the size of a stream whose frames its decoder refused to allocate.
            raise corrupt(
                path,
                "the video stream has no readable frame size (frames over "
                f"{limits.max_frame_pixels:,} pixels are refused unread)",
            )
        if duration_s > limits.max_duration_s:
            raise _too_large(
                path, f"{duration_s:.0f} s long; the limit is {limits.max_duration_s:.0f} s"
            )
        # Checked before decoding anything, so a huge frame is never allocated.
        _check_frame_size(path, stream, 0, limits)
        if _cut_short(stream, size_bytes):
            raise corrupt(path, "truncated: the file ends before the media its index lists")
        # Keyframes are all the checks below need; skipping the rest keeps probing cheap.
        codec.skip_frame = "NONKEY"
        try:
            first = _first_keyframe_from(container, stream, None, deadline)
            if first is None:
                raise corrupt(path, "no frame could be decoded")
            # Only an index makes a seek land on a keyframe; without one (MPEG-TS, PS) a seek to
            # the end finds none after it however whole the file is.
            if stream.index_entries:
                last = _first_keyframe_from(
                    container, stream, Clock(stream).pts(duration_s), deadline
                )
                if last is None:
                    raise corrupt(
                        path, f"truncated: no frame decodes near the end ({duration_s:.1f} s)"
                    )
        except av.FFmpegError as exc:
            raise corrupt(path, f"decoding failed ({exc.strerror})") from None
        fps = float(rate)
        # Again as decoded: the bitstream may declare another size (or aspect) than the header.
        width, height = _check_frame_size(path, stream, first.rotation, limits)
        return VideoInfo(
            duration_s=duration_s,
            fps=fps,
            width=width,
            height=height,
            codec=codec.name,
            frame_count_estimate=stream.frames or round(duration_s * fps),
            size_bytes=size_bytes,
        )
