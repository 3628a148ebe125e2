"""The animatic backend: a real, deterministic H.264 storyboard of the prompt, offline."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import pytest

from clipmesh.generator.backends.animatic import AnimaticBackend
from clipmesh.generator.backends.base import GenerationFailed, RenderedVideo, TaskContext
from clipmesh.generator.backends.shot_language import (
    CameraMove,
    Framing,
    Palette,
    read_shot_language,
)
from clipmesh.generator.jobs import GenerationSpec
from clipmesh.runtime.errors import InvalidArgument

# Small clips keep the suite fast; 128 is the smallest side the model accepts.
SMALL = {"width": 160, "height": 128, "duration_s": 1.0, "fps": 12.0}


@dataclass
class Recorder:
    """Stands in for the gateway: records what the backend reports."""

    reports: list[tuple[float | None, float | None, str]] = field(default_factory=list)
    task_ids: list[str] = field(default_factory=list)

    async def report(self, fraction: float | None, eta_s: float | None, message: str) -> None:
        self.reports.append((fraction, eta_s, message))

    async def submitted(self, task_id: str) -> None:
        self.task_ids.append(task_id)


def _context(scratch_dir: Path, recorder: Recorder) -> TaskContext:
    return TaskContext("job-1", scratch_dir, recorder.report, recorder.submitted)


async def _render(
    scratch_dir: Path, prompt: str, recorder: Recorder | None = None, **fields
) -> RenderedVideo:
    backend = AnimaticBackend()
    spec = backend.validate(GenerationSpec(prompt=prompt, **{**SMALL, **fields}))
    return await backend.run(spec, _context(scratch_dir, recorder or Recorder()))


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def _difference(first: np.ndarray, second: np.ndarray) -> float:
    """Mean absolute difference of two frames' RGB values (0–255)."""
    return float(np.abs(first.astype(np.int16) - second.astype(np.int16)).mean())


@pytest.mark.parametrize(("fps", "duration_s", "frame_count"), [(12.0, 2.0, 24), (25.0, 1.3, 32)])
async def test_the_clip_is_an_h264_mp4_of_the_requested_size_rate_and_length(
    tmp_path: Path, fps: float, duration_s: float, frame_count: int
) -> None:
    video = await _render(tmp_path, "a lighthouse at dusk", fps=fps, duration_s=duration_s)

    assert video.path == tmp_path / "animatic.mp4"
    assert (video.width, video.height, video.fps) == (160, 128, fps)
    assert video.duration_s == frame_count / fps and video.actual_prompt == ""
    with av.open(str(video.path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert (stream.codec_context.width, stream.codec_context.height) == (160, 128)
        assert stream.average_rate == fps
        assert abs(container.duration / 1e6 - duration_s) <= 1 / fps
    assert len(_frames(video.path)) == frame_count


async def test_progress_counts_frames_up_to_the_end_without_an_event_per_frame(
    tmp_path: Path,
) -> None:
    recorder = Recorder()
    await _render(tmp_path, "a quiet harbour", recorder, duration_s=2.0)

    fractions = [fraction for fraction, _, _ in recorder.reports]
    assert fractions == sorted(set(fractions)) and fractions[-1] == 1.0
    assert 3 <= len(recorder.reports) < 24
    for fraction, eta_s, message in recorder.reports:
        done, total = map(int, re.fullmatch(r"frame (\d+)/(\d+)", message).groups())
        assert total == 24 and fraction == pytest.approx(done / total)
        assert eta_s is not None and eta_s >= 0
    assert recorder.reports[-1][1:] == (0.0, "frame 24/24")


async def test_rendering_leaves_the_event_loop_free(tmp_path: Path) -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    ticker = asyncio.create_task(tick())
    await _render(tmp_path, "a busy market", width=320, height=192, duration_s=2.0)
    ticker.cancel()
    assert ticks >= 5


@pytest.mark.parametrize(
    ("prompt", "move", "framing"),
    [
        ("a lighthouse on a cliff", CameraMove.PUSH_IN, Framing.MEDIUM),
        ("Slow PUSH-IN on her face, close-up", CameraMove.PUSH_IN, Framing.CLOSE_UP),
        ("dolly in to the door", CameraMove.PUSH_IN, Framing.MEDIUM),
        ("镜头缓缓推进，特写", CameraMove.PUSH_IN, Framing.CLOSE_UP),
        ("it pulls back to reveal the valley, wide shot", CameraMove.PULL_OUT, Framing.WIDE),
        ("拉远，远景", CameraMove.PULL_OUT, Framing.WIDE),
        ("pan left across the skyline", CameraMove.PAN_LEFT, Framing.MEDIUM),
        ("Pan right over the beach", CameraMove.PAN_RIGHT, Framing.MEDIUM),
        ("镜头左摇", CameraMove.PAN_LEFT, Framing.MEDIUM),
        ("右摇，全景", CameraMove.PAN_RIGHT, Framing.WIDE),
        ("摇镜扫过街道", CameraMove.PAN_RIGHT, Framing.MEDIUM),
        ("tilt up the tower, low angle", CameraMove.TILT_UP, Framing.LOW_ANGLE),
        ("下摇，俯拍", CameraMove.TILT_DOWN, Framing.HIGH_ANGLE),
        ("仰拍一座塔", CameraMove.PUSH_IN, Framing.LOW_ANGLE),  # 仰拍 is framing, not a move
        ("crane up over the crowd", CameraMove.CRANE_UP, Framing.MEDIUM),
        ("升降镜头越过屋顶", CameraMove.CRANE_UP, Framing.MEDIUM),
        ("a crane flies over the lake", CameraMove.PUSH_IN, Framing.MEDIUM),  # the bird
        ("tracking shot, over-the-shoulder", CameraMove.TRACKING, Framing.OVER_THE_SHOULDER),
        ("跟拍，过肩", CameraMove.TRACKING, Framing.OVER_THE_SHOULDER),
        ("orbit around the statue, fisheye", CameraMove.ORBIT, Framing.FISHEYE),
        ("环绕拍摄，鱼眼", CameraMove.ORBIT, Framing.FISHEYE),
        ("locked-off shot of the hall", CameraMove.STATIC, Framing.MEDIUM),
        ("固定镜头", CameraMove.STATIC, Framing.MEDIUM),
        ("an ecstatic crowd", CameraMove.PUSH_IN, Framing.MEDIUM),  # not "static"
        ("handheld chase", CameraMove.HANDHELD, Framing.MEDIUM),
        ("手持拍摄", CameraMove.HANDHELD, Framing.MEDIUM),
    ],
)
def test_camera_language_names_the_move_and_the_framing(
    prompt: str, move: CameraMove, framing: Framing
) -> None:
    shot = read_shot_language(prompt)
    assert (shot.move, shot.framing) == (move, framing)


def test_the_first_named_move_wins_and_the_label_reads_framing_then_move() -> None:
    shot = read_shot_language("Close-up. Pan left, then a push in")
    assert shot.move is CameraMove.PAN_LEFT and shot.move_named and shot.framing_named
    assert shot.label == "CLOSE-UP · PAN LEFT"
    default = read_shot_language("a field of poppies")
    assert not default.move_named and default.label == "MEDIUM · PUSH IN"


@pytest.mark.parametrize(
    ("prompt", "palette", "mood_words"),
    [
        ("a warm golden sunset", Palette.WARM, ("warm", "golden", "sunset")),
        ("黄昏，金色的麦田", Palette.WARM, ("黄昏", "金色")),
        ("cold blue winter morning", Palette.COLD, ("cold", "blue", "winter")),
        ("冬天的蓝色湖面", Palette.COLD, ("冬", "蓝")),
        ("a noir alley at night", Palette.NIGHT, ("noir", "night")),
        ("a forest path", Palette.GREEN, ("forest",)),
        ("霓虹灯下的赛博城市", Palette.NEON, ("霓虹", "赛博")),
        ("desaturated grey docks", Palette.GREY, ("desaturated", "grey")),
        ("浪漫的粉色花园", Palette.ROMANTIC, ("浪漫", "粉")),
        ("a tense standoff, suspense", Palette.TENSE, ("tense", "suspense")),
        ("a market square", Palette.NEUTRAL, ()),
    ],
)
def test_colour_and_mood_words_pick_the_palette(
    prompt: str, palette: Palette, mood_words: tuple[str, ...]
) -> None:
    shot = read_shot_language(prompt)
    assert shot.palette is palette and shot.mood_words == mood_words


@pytest.mark.parametrize(
    ("warm", "cold"),
    [("a warm sunset", "a cold blue night"), ("温暖的黄昏", "寒冷的蓝色冬夜")],
)
async def test_warm_words_render_warmer_than_cold_ones(
    tmp_path: Path, warm: str, cold: str
) -> None:
    warm_video = await _render(tmp_path / "warm", warm, seed=5)
    cold_video = await _render(tmp_path / "cold", cold, seed=5)
    red, _, blue = _frames(warm_video.path)[0].reshape(-1, 3).mean(axis=0)
    assert red > blue + 20
    red, _, blue = _frames(cold_video.path)[0].reshape(-1, 3).mean(axis=0)
    assert blue > red + 20


@pytest.mark.parametrize("move", [move for move in CameraMove if move is not CameraMove.STATIC])
async def test_every_move_moves_the_picture_and_a_static_shot_does_not(
    tmp_path: Path, move: CameraMove
) -> None:
    still = _frames((await _render(tmp_path / "still", "static shot", seed=3)).path)
    moving = _frames((await _render(tmp_path / "moving", f"{move.value} shot", seed=3)).path)
    # The largest change from the first frame (a handheld shake comes back where it started).
    still_change = max(_difference(still[0], frame) for frame in still)
    assert still_change < 2.5  # the timecode and compression noise
    assert max(_difference(moving[0], frame) for frame in moving) > 2 * still_change + 4


@pytest.mark.parametrize("framing", list(Framing))
async def test_every_framing_renders(tmp_path: Path, framing: Framing) -> None:
    video = await _render(tmp_path, f"{framing.value} shot of a lone rider in 霓虹 light", seed=1)
    assert len(_frames(video.path)) == 12


async def test_the_same_spec_gives_the_same_frames_and_bytes(tmp_path: Path) -> None:
    first = await _render(tmp_path / "a", "orbit around a neon sign, handheld", seed=11)
    second = await _render(tmp_path / "b", "orbit around a neon sign, handheld", seed=11)
    assert all(
        np.array_equal(a, b) for a, b in zip(_frames(first.path), _frames(second.path), strict=True)
    )
    assert first.path.read_bytes() == second.path.read_bytes()


async def test_the_negative_prompt_is_shown_on_the_caption_band_only(tmp_path: Path) -> None:
    plain = _frames((await _render(tmp_path / "plain", "a red kite", seed=2)).path)[0]
    negative = "blurry faces, watermark"
    avoided = _frames(
        (await _render(tmp_path / "avoid", "a red kite", seed=2, negative_prompt=negative)).path
    )[0]
    assert _difference(plain[:64], avoided[:64]) < 1  # the top half: the same picture
    assert _difference(plain[96:], avoided[96:]) > 10  # the band grew an "avoid: …" line


async def test_a_cancel_mid_render_fails_as_cancelled_and_leaves_no_file(tmp_path: Path) -> None:
    backend = AnimaticBackend()
    ctx: TaskContext

    async def cancel_on_first_report(fraction, eta_s, message) -> None:
        del fraction, eta_s, message
        ctx.cancel_requested.set()

    ctx = TaskContext("job-1", tmp_path, cancel_on_first_report, Recorder().submitted)
    spec = backend.validate(GenerationSpec(prompt="a long pan left", **SMALL))
    with pytest.raises(GenerationFailed) as failure:
        await backend.run(spec, ctx)
    assert failure.value.reason == "CANCELLED"
    assert not (tmp_path / "animatic.mp4").exists()


async def test_a_cancelled_task_leaves_no_file(tmp_path: Path) -> None:
    recorder = Recorder()
    task = asyncio.create_task(_render(tmp_path, "pan right", recorder, duration_s=3.0))
    while not recorder.reports:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not (tmp_path / "animatic.mp4").exists()


@pytest.mark.parametrize(
    ("fields", "field_name", "reason"),
    [
        ({"width": 1000, "height": 1000}, "spec.width", "UNSUPPORTED_SIZE"),
        ({"width": 2048, "height": 1024}, "spec.width", "UNSUPPORTED_SIZE"),
        ({"duration_s": 11.0}, "spec.duration_s", "UNSUPPORTED_DURATION"),
        ({"fps": 29.97}, "spec.fps", "UNSUPPORTED_FPS"),
        ({"prompt": "x" * 801}, "spec.prompt", "PROMPT_TOO_LONG"),
        ({"negative_prompt": "x" * 501}, "spec.negative_prompt", "PROMPT_TOO_LONG"),
        ({"prompt": "  "}, "spec.prompt", "EMPTY_PROMPT"),
        ({"model": "animatic-v2"}, "spec.model", "UNSUPPORTED_MODEL"),
    ],
)
def test_validate_refuses_what_the_model_does_not_accept(
    fields: dict, field_name: str, reason: str
) -> None:
    spec = GenerationSpec(**{"prompt": "a lighthouse", **fields})
    with pytest.raises(InvalidArgument) as refusal:
        AnimaticBackend().validate(spec)
    assert (refusal.value.field, refusal.value.reason) == (field_name, reason)


def test_validate_fills_the_defaults() -> None:
    spec = AnimaticBackend().validate(GenerationSpec(prompt="x" * 800))
    assert (spec.backend, spec.model) == ("animatic", "animatic-v1")
    assert (spec.width, spec.height, spec.duration_s, spec.fps) == (832, 480, 5.0, 24.0)


def test_the_backend_runs_locally_and_can_stop_a_running_render() -> None:
    backend = AnimaticBackend(max_concurrent=3)
    assert (backend.name, backend.default_model) == ("animatic", "animatic-v1")
    assert backend.cancels_running and backend.max_concurrent == 3
    assert AnimaticBackend().max_concurrent == 1
    with pytest.raises(ValueError, match="max_concurrent"):
        AnimaticBackend(max_concurrent=0)
