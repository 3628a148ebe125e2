"""A deterministic procedural video library for the demo, the tests and the benchmarks.

Every video is a real H.264 MP4 (libx264, yuv420p, one keyframe a second, `+faststart` like
web video) cut into shots. Each shot pans slowly across its own tinted `gradient_image`, so a
scene detector sees a hard cut between shots and small changes inside one; `VideoSpec` says
where the cuts are, so tests can check shot detection against the truth.

libx264 is deterministic for a fixed input and settings (single-threaded here, so slice and
lookahead decisions cannot depend on scheduling), frames are converted to yuv420p in numpy
(`yuv420p`, not FFmpeg's scaler), and the MP4 muxer writes no wall-clock time unless asked:
the same arguments give the same bytes.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from clipmesh.demo.synthetic import gradient_image

_DRAW_WIDTH = 320
_TITLE_WORDS = (
    ("Harbour", "Glacier", "Market", "Canyon", "Orchard", "Skyline", "Desert", "Forest"),
    ("at dawn", "in rain", "from above", "at night", "in autumn", "at noon", "in fog", "by sea"),
)


@dataclass(frozen=True)
class ShotSpec:
    """One shot of a generated video.

    Attributes:
        start_s: When the shot's first frame is shown.
        end_s: When the next shot starts (or the video ends).
        seed: Seed of the shot's picture.
    """

    start_s: float
    end_s: float
    seed: int


@dataclass(frozen=True)
class VideoSpec:
    """What `make_video` wrote.

    Attributes:
        path: The MP4 file.
        title: A human title for the demo.
        seed: The seed the video was made from.
        duration_s: Length of the video (frame count / fps).
        fps: Frames per second.
        size: (width, height) in pixels.
        shots: The shots in order; they tile `[0, duration_s]`.
    """

    path: Path
    title: str
    seed: int
    duration_s: float
    fps: int
    size: tuple[int, int]
    shots: tuple[ShotSpec, ...]

    @property
    def cuts_s(self) -> list[float]:
        """The times of the cuts between shots (the first frame of every shot but the first)."""
        return [shot.start_s for shot in self.shots[1:]]


def _shot_frame_counts(
    rng: np.random.Generator, frame_count: int, shots: int, fps: int
) -> list[int]:
    """Splits `frame_count` frames into `shots` runs of varied length, each at least 1 s."""
    min_frames = fps
    if shots * min_frames > frame_count:
        raise ValueError(f"{shots} shots of at least 1 s do not fit in {frame_count} frames")
    spare = frame_count - shots * min_frames
    weights = rng.uniform(0.3, 1.0, size=shots)
    extra = np.floor(spare * weights / weights.sum()).astype(int)
    extra[-1] += spare - int(extra.sum())
    return [min_frames + int(e) for e in extra]


def _shot_picture(seed: int, width: int, height: int) -> np.ndarray:
    """A tinted gradient `width` × `height`, drawn at 320 pixels across and scaled up.

    Drawing at a fixed scale keeps the picture the same at every video size (the pattern's
    frequencies are per pixel), so a 720p video shows what the 180p one does.
    """
    scale = min(1.0, _DRAW_WIDTH / width)
    drawn = gradient_image(max(2, round(width * scale)), max(2, round(height * scale)), seed)
    picture = np.asarray(drawn.resize((width, height), Image.Resampling.BILINEAR), np.float32)
    tint = np.random.default_rng(seed).uniform(0.35, 1.0, size=3).astype(np.float32)
    return (picture * tint).astype(np.uint8)


def make_video(
    path: Path | str,
    *,
    seed: int,
    duration_s: float,
    fps: int = 24,
    size: tuple[int, int] = (320, 180),
    shots: int = 3,
    pan_per_s: float = 0.05,
    keyframe_interval_s: float = 1.0,
    rotation_deg: int = 0,
    title: str = "",
    soundtrack: bool = False,
) -> VideoSpec:
    """Writes an H.264 MP4 of `shots` visually distinct shots and says where the cuts are.

    Args:
        path: Where to write the MP4.
        seed: Decides shot lengths, pictures and tints; the same seed gives the same bytes.
        duration_s: Length of the video; rounded to whole frames.
        fps: Frames per second.
        size: (width, height); both must be even (yuv420p).
        shots: Number of shots, each at least 1 s long.
        pan_per_s: How fast each shot pans across its picture, in frame widths a second;
            `0` makes every shot a still.
        keyframe_interval_s: Longest distance between keyframes (the GOP length); x264 adds
            more at cuts.
        rotation_deg: Counter-clockwise display rotation to store in the container, as
            phones do; `size` is the stored (unrotated) frame size.
        title: The title to report; empty picks one from `seed`.
        soundtrack: Adds an AAC sine-tone track as long as the video (a generated
            soundtrack's stand-in).

    Returns:
        The video's description, with its shots' exact start and end times.
    """
    width, height = size
    if width % 2 or height % 2:
        raise ValueError(f"size {size} must be even for yuv420p")
    path = Path(path)
    frame_count = max(1, round(duration_s * fps))
    rng = np.random.default_rng(seed)
    runs = _shot_frame_counts(rng, frame_count, shots, fps)
    shot_seeds = [int(s) for s in rng.integers(0, 2**31, size=shots)]
    speed_px_per_s = pan_per_s * width
    pan_px = math.ceil(speed_px_per_s * max(runs) / fps)

    specs: list[ShotSpec] = []
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        stream.codec_context.gop_size = max(1, round(keyframe_interval_s * fps))
        stream.codec_context.thread_count = 1
        stream.options = {"preset": "veryfast", "crf": "23"}
        if rotation_deg:
            stream.set_display_rotation(rotation_deg)
        tone = _Tone(container) if soundtrack else None
        first = 0
        for shot_seed, run in zip(shot_seeds, runs, strict=True):
            picture = _shot_picture(shot_seed, width + pan_px, height)
            for i in range(run):
                offset = int(speed_px_per_s * i / fps)
                rgb = picture[:, offset : offset + width]
                frame = av.VideoFrame.from_ndarray(yuv420p(rgb), format="yuv420p")
                frame.pts = first + i
                container.mux(stream.encode(frame))
                if tone is not None:  # interleaved, as a player reads them
                    tone.until((first + i + 1) / fps)
            specs.append(ShotSpec(first / fps, (first + run) / fps, shot_seed))
            first += run
        container.mux(stream.encode(None))
        if tone is not None:
            tone.close()

    if not title:
        title = f"{_TITLE_WORDS[0][seed % 8]} {_TITLE_WORDS[1][(seed // 8) % 8]}"
    return VideoSpec(path, title, seed, frame_count / fps, fps, (width, height), tuple(specs))


def yuv420p(rgb: np.ndarray) -> np.ndarray:
    """An (H, W, 3) uint8 RGB picture as yuv420p planes stacked into (H·3/2, W), in BT.601
    limited range (what FFmpeg's scaler makes of rgb24 by default), chroma from each 2×2
    block's mean colour.

    In integer numpy rather than FFmpeg's scaler: through the scaler the same seed now and
    then wrote different bytes (once in a fresh-clone CI run, even converting single-threaded).
    The cause was not pinned down (its SIMD paths follow buffer alignment, a suspect);
    arithmetic on the picture alone cannot vary.
    """
    height, width, _ = rgb.shape
    pixels = rgb.astype(np.int32)
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    luma = ((66 * red + 129 * green + 25 * blue + 128) >> 8) + 16
    blocks = pixels.reshape(height // 2, 2, width // 2, 2, 3).sum(axis=(1, 3))
    r, g, b = ((blocks[..., c] + 2) >> 2 for c in range(3))  # each block's mean, rounded
    u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128
    v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128
    planes = np.concatenate([luma.reshape(-1), u.reshape(-1), v.reshape(-1)])
    return planes.astype(np.uint8).reshape(height * 3 // 2, width)


DEMO_QUERIES = Path(__file__).with_name("queries.jsonl")
# Example scripts for previs: a Chinese plain-text one and an English Fountain one.
DEMO_SCRIPTS = Path(__file__).with_name("scripts")
"""Labelled queries (`clipmesh eval`) for the library `make_library` writes with seed 0."""


def make_library(
    directory: Path | str, count: int = 8, seed: int = 0, *, size: tuple[int, int] = (320, 180)
) -> list[VideoSpec]:
    """Writes `count` demo videos of 6–20 s and 2–6 shots into `directory`.

    Args:
        directory: Created if missing; files are named `video-00.mp4`, `video-01.mp4`, ….
        count: How many videos.
        seed: Decides everything; the same seed gives the same library.
        size: (width, height) of every video.

    Returns:
        The videos' descriptions, in file-name order.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    specs = []
    for index in range(count):
        duration_s = float(rng.integers(6, 21))
        shots = int(rng.integers(2, min(6, int(duration_s) // 2) + 1))
        video_seed = int(rng.integers(0, 2**31))
        specs.append(
            make_video(
                directory / f"video-{index:02d}.mp4",
                seed=video_seed,
                duration_s=duration_s,
                shots=shots,
                size=size,
                title=f"{_TITLE_WORDS[0][index % 8]} {_TITLE_WORDS[1][(index * 3 + seed) % 8]}",
            )
        )
    return specs


def library_keyframes(specs: list[VideoSpec], *, max_window_s: float = 10.0) -> list[Image.Image]:
    """The keyframes ingest embeds for these videos (one per shot-aware segment), in order:
    what an encoder's fidelity is measured on, without running the mesh."""
    from clipmesh.media.analysis import keyframes, plan_video  # the service's own planning
    from clipmesh.media.probe import DEFAULT_LIMITS, Deadline

    frames: list[Image.Image] = []
    for spec in specs:
        plan = plan_video(
            spec.path, DEFAULT_LIMITS, Deadline(spec.path, 60), max_window_s=max_window_s
        )
        frames += keyframes(spec.path, plan, DEFAULT_LIMITS, Deadline(spec.path, 60))
    return frames


def write_truncated_mp4(src: Path | str, dst: Path | str, *, keep_fraction: float = 0.5) -> Path:
    """Copies the first `keep_fraction` of `src`'s bytes to `dst`: an interrupted download.

    With `+faststart` files, a fraction well above the header's size keeps the `moov` index but
    loses the media it points at; a tiny fraction cuts the index itself.
    """
    data = Path(src).read_bytes()
    dst = Path(dst)
    dst.write_bytes(data[: int(len(data) * keep_fraction)])
    return dst


def write_not_a_video(dst: Path | str) -> Path:
    """Writes a text file (whatever its name says) to `dst`."""
    dst = Path(dst)
    dst.write_text("This is a shopping list, not a video.\n- milk\n- film stock\n" * 20)
    return dst


class _Tone:
    """A 440 Hz AAC track written into `container` in step with its video."""

    RATE = 44_100
    SAMPLES_PER_FRAME = 1024

    def __init__(self, container: av.container.OutputContainer) -> None:
        self._container = container
        self._stream = container.add_stream("aac", rate=self.RATE)
        self._written = 0

    def until(self, time_s: float) -> None:
        """Writes the tone on to `time_s` (in whole frames of 1024 samples)."""
        while self._written < round(time_s * self.RATE):
            start = self._written
            t = np.arange(start, start + self.SAMPLES_PER_FRAME) / self.RATE
            tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[np.newaxis, :]
            frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = self.RATE, start
            self._container.mux(self._stream.encode(frame))
            self._written += self.SAMPLES_PER_FRAME

    def close(self) -> None:
        self._container.mux(self._stream.encode(None))


def write_audio_only_mp4(dst: Path | str, *, duration_s: float = 1.0) -> Path:
    """Writes an MP4 holding one AAC sine-tone track and no video stream."""
    dst = Path(dst)
    with av.open(str(dst), "w", format="mp4") as container:
        tone = _Tone(container)
        tone.until(duration_s)
        tone.close()
    return dst


def still_from(video: Path | str, time_s: float, *, max_side: int = 480) -> bytes:
    """A frame of `video` at `time_s` as a still from an edit arrives: a tenth cropped off each
    side and re-compressed as JPEG (quality 75), so it is never byte-identical to a keyframe."""
    from clipmesh.media.frames import frames_at  # the service's decoder, not a copy

    (picture,) = frames_at(Path(video), [time_s], max_side=max_side)
    width, height = picture.size
    cropped = picture.crop((width // 10, height // 10, width - width // 10, height - height // 10))
    buffer = io.BytesIO()
    cropped.save(buffer, format="JPEG", quality=75)
    return buffer.getvalue()
