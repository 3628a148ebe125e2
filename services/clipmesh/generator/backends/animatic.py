"""The `animatic` backend: a storyboard-style H.264 clip of the prompt, with no cloud and no GPU.

It is the gateway's default backend, so the mesh and the demo generate real videos anywhere.
The clip shows the prompt on a caption band over a simple drawn scene (sky, sun, hills,
silhouettes and a figure) in the palette of its colour/mood words, filmed with the camera move
and framing its camera language names (`shot_language.read_shot_language`).

The scene is drawn once, larger than the frame, as a far layer and a near (silhouette) layer;
each frame is a scaled or rotated crop of both. The near layer making more of a dolly, crane or
track than the far one is the parallax that tells those moves from a pan or a tilt.

Determinism: the same prompt, negative prompt, size, duration, fps and seed give the same
frames and the same bytes: x264 runs single-threaded with fixed settings (and without mbtree,
see `_X264_OPTIONS`) and the MP4 muxer writes no wall-clock time. That holds on one installation;
another CJK font, Pillow or FFmpeg build may draw or encode differently. Without `spec.seed`
the scene is seeded from the prompt.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import re
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from clipmesh.generator.backends.base import (
    Backend,
    GenerationFailed,
    ModelLimits,
    RenderedVideo,
    TaskContext,
)
from clipmesh.generator.backends.shot_language import (
    Framing,
    ShotLanguage,
    read_shot_language,
)
from clipmesh.generator.backends.storyboard import Storyboard
from clipmesh.generator.jobs import GenerationSpec

MODELS = {
    # DashScope's strictest prompt limits on purpose: a prompt that renders offline also
    # submits online, to any of its models.
    "animatic-v1": ModelLimits(
        sizes=(),
        default_size=(832, 480),
        durations_s=(),
        default_duration_s=5.0,
        fps=(24.0, 12.0, 16.0, 25.0, 30.0),
        max_prompt_chars=800,
        max_negative_prompt_chars=500,
        size_range=(128, 1920, 16),
        duration_range_s=(1.0, 10.0),
    )
}
OUTPUT_NAME = "animatic.mp4"

_CHUNKS = 20  # frames render in ~5 % chunks: how often a cancel is noticed
_REPORT_EVERY_FRACTION = 0.1
_REPORT_EVERY_S = 0.5
# Without mbtree: with it, this x264 build's output varied with leftover heap contents at some
# frame widths (160, 320, …), so the same frames did not always give the same bytes.
_X264_OPTIONS = {"preset": "veryfast", "crf": "28", "x264-params": "no-mbtree=1"}
# Pillow's bundled font has no CJK glyphs (Chinese prompts would print as boxes), so a common
# system CJK font is used where one is installed, and the bundled font otherwise.
_CJK_FONT_PATHS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
)
_WIDE = "\u2e80-\u9fff\uac00-\ud7af\uff00-\uffef"  # CJK: a line may break before any of them
_TOKENS = re.compile(rf"[{_WIDE}]|[^\s{_WIDE}]+|\s+")


def _font(size_px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Loaded afresh for every clip (well under a millisecond), never cached: a FreeType face
    # must not be used by two renders running at once in different threads.
    for path in _CJK_FONT_PATHS:
        if Path(path).exists():
            return ImageFont.truetype(path, size_px)
    return ImageFont.load_default(size=size_px)


def _line_height(font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> int:
    _, top, _, bottom = font.getbbox("Ag国")
    return round((bottom - top) * 1.35)


def _wrap(text: str, font, width_px: int, max_lines: int) -> list[str]:
    """`text` in at most `max_lines` lines of `width_px`, the last ending in "…" when it does
    not fit (a caption: the whole prompt is in the job record)."""
    lines = [""]
    for token in _TOKENS.findall(" ".join(text.split())):
        if font.getlength(lines[-1] + token) <= width_px:
            lines[-1] += token
        elif not token.isspace():
            lines.append(token)
    lines = [line.strip() for line in lines if line.strip()]
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], lines[max_lines - 1] + "…"]
    fitted = []
    for line in lines:  # still too long: one word wider than the frame
        while len(line) > 1 and font.getlength(line) > width_px:
            line = line[:-2] + "…"  # noqa: PLW2901 — shortening the line is the point
        fitted.append(line)
    return fitted


def _grow(box: tuple[float, float, float, float], by: int) -> tuple[float, ...]:
    return (box[0] - by, box[1] - by, box[2] + by, box[3] + by)


class _Decor:
    """What is drawn over every frame of one clip: a foreground shoulder or fisheye vignette
    where the framing asks, the "CLOSE-UP · PUSH IN" label, the timecode, and the caption band
    with the prompt and the negative prompt ("avoid: …": it cannot steer a drawing, but the
    editor sees it)."""

    def __init__(self, spec: GenerationSpec, shot: ShotLanguage) -> None:
        self._overlay = _overlay(spec, shot)
        self._clock_font = _font(max(8, round(spec.height / 32)))
        self._margin = max(3, round(spec.height / 40))
        self._fps = spec.fps

    def apply(self, picture: Image.Image, index: int) -> None:
        """Draws the furniture and frame `index`'s timecode (minutes:seconds:frames)."""
        picture.paste(self._overlay, (0, 0), self._overlay)
        seconds, frames = divmod(index, max(1, round(self._fps)))
        text = f"{seconds // 60:02d}:{seconds % 60:02d}:{frames:02d}"
        draw, corner = ImageDraw.Draw(picture), (picture.width - self._margin, self._margin)
        box = draw.textbbox(corner, text, font=self._clock_font, anchor="ra")
        draw.rectangle(_grow(box, self._margin // 2), fill=(0, 0, 0))
        draw.text(corner, text, font=self._clock_font, fill=(255, 255, 255), anchor="ra")


def _overlay(spec: GenerationSpec, shot: ShotLanguage) -> Image.Image:
    width, height = spec.width, spec.height
    overlay = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    if shot.framing is Framing.FISHEYE:
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        radius = np.hypot(xs - width / 2, ys - height / 2) / math.hypot(width / 2, height / 2)
        overlay.putalpha(Image.fromarray((np.clip(radius - 0.7, 0, 0.3) * 800).astype(np.uint8)))
    draw = ImageDraw.Draw(overlay)
    if shot.framing is Framing.OVER_THE_SHOULDER:
        dark = (12, 12, 14, 240)
        draw.ellipse((-0.2 * width, 0.62 * height, 0.36 * width, 1.5 * height), fill=dark)
        draw.ellipse((0.0 * width, 0.2 * height, 0.24 * width, 0.8 * height), fill=dark)
    body, small = _font(max(9, round(height / 24))), _font(max(8, round(height / 32)))
    margin = max(3, round(height / 40))
    draw.rectangle((0, 0, width - 1, height - 1), outline=(255, 255, 255, 90))

    draw.rectangle(
        _grow(draw.textbbox((margin, margin), shot.label, font=small), margin // 2),
        fill=(0, 0, 0, 160),
    )
    draw.text((margin, margin), shot.label, font=small, fill=(255, 255, 255, 255))

    body_h, small_h = _line_height(body), _line_height(small)
    max_lines = max(1, min(3, height // 5 // body_h))  # the band covers about a fifth at most
    lines = _wrap(spec.prompt, body, width - 2 * margin, max_lines)
    avoid = spec.negative_prompt.strip()
    avoid_lines = _wrap(f"avoid: {avoid}", small, width - 2 * margin, 1) if avoid else []
    top = height - 2 * margin - len(lines) * body_h - len(avoid_lines) * small_h
    draw.rectangle((0, top, width, height), fill=(10, 10, 12, 180))
    for index, line in enumerate(lines):
        draw.text((margin, top + margin + index * body_h), line, font=body, fill=(250, 250, 245))
    for line in avoid_lines:
        draw.text((margin, height - margin - small_h), line, font=small, fill=(190, 190, 190))
    return overlay


def _seed(spec: GenerationSpec) -> int:
    if spec.seed is not None:
        return spec.seed % 2**63
    return int.from_bytes(hashlib.sha256(spec.prompt.encode()).digest()[:8], "big") >> 1


class _Mp4Writer:
    """An H.264 MP4 written frame by frame, as `clipmesh.demo.library` writes its videos."""

    def __init__(self, path: Path, width: int, height: int, fps: float) -> None:
        rate = Fraction(fps).limit_denominator(1001)
        self._container = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = "yuv420p"
        # One tick a frame: frame n starts at n / fps and n frames last exactly n / fps.
        self._stream.codec_context.time_base = 1 / rate
        self._stream.codec_context.gop_size = max(1, round(fps))  # a keyframe a second
        self._stream.codec_context.thread_count = 1  # threads would make the bytes vary
        self._stream.options = dict(_X264_OPTIONS)
        self._next_pts = 0

    def write(self, picture: Image.Image) -> None:
        # Converted here, single-threaded: the encoder's own conversion varied between runs.
        frame = av.VideoFrame.from_image(picture).reformat(format="yuv420p", threads=1)
        frame.pts = self._next_pts
        self._next_pts += 1
        self._container.mux(self._stream.encode(frame))

    def finish(self) -> None:
        self._container.mux(self._stream.encode(None))
        self._container.close()

    def abort(self) -> None:
        with contextlib.suppress(av.FFmpegError, OSError):  # the file is deleted next
            self._container.close()


def _render_frames(
    board: Storyboard, decor: _Decor, writer: _Mp4Writer, start: int, stop: int
) -> None:
    for index in range(start, stop):
        picture = board.frame(index)
        decor.apply(picture, index)
        writer.write(picture)


async def _in_worker(function, *args) -> None:
    """Runs `function` in a worker thread. If the task is cancelled meanwhile, waits for the
    thread before re-raising, so clean-up never closes the encoder under a running chunk."""
    future = asyncio.ensure_future(asyncio.to_thread(function, *args))
    try:
        await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait([future])
        raise


class AnimaticBackend(Backend):
    """Renders a storyboard animatic of the prompt on the CPU, one core per running job.

    Args:
        max_concurrent: Renders at once (the gateway's queue keeps to it).
    """

    name = "animatic"
    default_model = "animatic-v1"
    models = MODELS
    cancels_running = True

    def __init__(self, *, max_concurrent: int = 1) -> None:
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be at least 1, not {max_concurrent}")
        self.max_concurrent = max_concurrent

    async def run(self, spec: GenerationSpec, ctx: TaskContext) -> RenderedVideo:
        """Renders a validated `spec` to `ctx.scratch_dir / "animatic.mp4"`.

        Frames render in a worker thread, in chunks of about 5 %; progress ("frame i/n", with
        an ETA from the measured frame rate) is reported about every 10 % or 0.5 s, and a set
        `ctx.cancel_requested` is honoured between chunks.

        Returns:
            The clip: round(duration_s × fps) frames, its `duration_s` their count / fps
            (which the container's duration equals: within half a frame of the request).

        Raises:
            GenerationFailed: "CANCELLED" when cancelled while rendering; no file is left.
        """
        width, height, fps = spec.width, spec.height, spec.fps
        frame_count = max(1, round(spec.duration_s * fps))
        shot = read_shot_language(spec.prompt)
        board = await asyncio.to_thread(
            Storyboard, (width, height), fps, frame_count, shot, seed=_seed(spec)
        )
        decor = await asyncio.to_thread(_Decor, spec, shot)
        ctx.scratch_dir.mkdir(parents=True, exist_ok=True)
        path = ctx.scratch_dir / OUTPUT_NAME
        chunk = max(1, math.ceil(frame_count / _CHUNKS))
        writer = _Mp4Writer(path, width, height, fps)
        try:
            started_s = reported_s = time.monotonic()
            reported = 0.0
            for start in range(0, frame_count, chunk):
                if ctx.cancel_requested.is_set():
                    raise GenerationFailed("CANCELLED", "cancelled while rendering")
                done = min(frame_count, start + chunk)
                await _in_worker(_render_frames, board, decor, writer, start, done)
                now_s, fraction = time.monotonic(), done / frame_count
                # (The tolerance lets float steps such as 0.3 - 0.2 count as a tenth.)
                due = fraction - reported >= _REPORT_EVERY_FRACTION - 1e-9
                if done < frame_count and (due or now_s - reported_s >= _REPORT_EVERY_S):
                    eta_s = (frame_count - done) * (now_s - started_s) / done
                    await ctx.report(fraction, eta_s, f"frame {done}/{frame_count}")
                    reported, reported_s = fraction, now_s
            await _in_worker(writer.finish)
        except BaseException:
            writer.abort()
            path.unlink(missing_ok=True)
            raise
        await ctx.report(1.0, 0.0, f"frame {frame_count}/{frame_count}")
        return RenderedVideo(path, width, height, fps, frame_count / fps, actual_prompt="")


# The scene and its camera. Self-contained (it needs only the shot language), so it can move to
# a module of its own as it grows.
