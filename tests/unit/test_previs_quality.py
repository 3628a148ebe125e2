"""Automatic clip checks: sharp, steady, smooth clips pass; blurred, flickering, jerky fail."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from clipmesh.demo.library import make_video
from clipmesh.previs.quality import (
    ClipScores,
    QualityThresholds,
    adjacent_frames,
    flicker,
    sample_frames,
    score_clip,
    smoothness,
    text_video_match,
)
from clipmesh.runtime.errors import InvalidArgument

SIZE = (160, 128)
FPS = 24


def decoded_frames(path: Path) -> Iterator[np.ndarray]:
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def write_video(path: Path, frames: Iterator[np.ndarray]) -> Path:
    """Writes RGB frames as an H.264 MP4 at `FPS`."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        stream.codec_context.time_base = Fraction(1, FPS)
        stream.codec_context.thread_count = 1
        stream.options = {"preset": "veryfast", "crf": "23"}
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame.reformat(format="yuv420p")))
        container.mux(stream.encode(None))
    return path


def demo_clip(path: Path, seed: int = 0) -> Path:
    return make_video(path, seed=seed, duration_s=2.0, fps=FPS, size=SIZE, shots=1).path


def blurred(frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    for rgb in frames:
        yield cv2.GaussianBlur(rgb, (0, 0), 3)


def flickering(frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    for index, rgb in enumerate(frames):
        shift = 20 if index % 2 else -20
        yield np.clip(rgb.astype(np.int16) + shift, 0, 255).astype(np.uint8)


def panned(*, jerky: bool = False, seed: int = 1) -> Iterator[np.ndarray]:
    """A detailed picture panned 2 px a frame, or shaken back and forth by up to 10 px."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (SIZE[1], 600, 3), dtype=np.uint8)
    texture = cv2.GaussianBlur(noise, (0, 0), 1)
    offset = 100
    for _ in range(2 * FPS):
        yield texture[:, offset : offset + SIZE[0]]
        offset += int(rng.integers(-8, 13)) if jerky else 2


def good_clip(path: Path) -> Path:
    return write_video(path, panned())


Transform = Callable[[Iterator[np.ndarray]], Iterator[np.ndarray]]


def bad_clip(tmp_path: Path, transform: Transform) -> Path:
    source = good_clip(tmp_path / "source.mp4")
    return write_video(tmp_path / "bad.mp4", transform(decoded_frames(source)))


def test_a_demo_clip_passes_every_check(tmp_path: Path) -> None:
    scores = score_clip(good_clip(tmp_path / "good.mp4"), text_match=0.3)
    assert QualityThresholds().passes(scores) == (True, [])


def test_a_blurred_clip_fails_on_sharpness(tmp_path: Path) -> None:
    passed, reasons = QualityThresholds().passes(score_clip(bad_clip(tmp_path, blurred)))
    assert not passed
    assert [r.split()[0] for r in reasons] == ["sharpness"]


def test_a_flickering_clip_fails_on_flicker(tmp_path: Path) -> None:
    scores = score_clip(bad_clip(tmp_path, flickering))
    passed, reasons = QualityThresholds().passes(scores)
    assert not passed
    assert [r.split()[0] for r in reasons] == ["flicker"]
    assert scores.flicker > 30  # alternating ±20 is a 40-level swing


def test_a_demo_clip_is_steady_and_smooth(tmp_path: Path) -> None:
    run = adjacent_frames(demo_clip(tmp_path / "demo.mp4"))
    thresholds = QualityThresholds()
    assert flicker(run) < thresholds.max_flicker
    assert smoothness(run) > thresholds.min_smoothness


def test_a_steady_fade_is_not_flicker() -> None:
    fade = [np.full((8, 8), level, np.uint8) for level in range(0, 160, 10)]
    assert flicker(fade) == pytest.approx(0.0)


def test_a_jerky_pan_scores_lower_smoothness_than_a_steady_one(tmp_path: Path) -> None:
    steady = write_video(tmp_path / "steady.mp4", panned())
    jerky = write_video(tmp_path / "jerky.mp4", panned(jerky=True))
    steady_score = smoothness(adjacent_frames(steady))
    jerky_score = smoothness(adjacent_frames(jerky))
    assert steady_score > QualityThresholds().min_smoothness > jerky_score


def test_sample_frames_spreads_over_the_clip_and_keeps_to_max_side(tmp_path: Path) -> None:
    frames = sample_frames(demo_clip(tmp_path / "demo.mp4"), max_frames=5, max_side=80)
    assert len(frames) == 5
    assert all(f.shape == (64, 80, 3) and f.dtype == np.uint8 for f in frames)


def test_an_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"not a video at all" * 100)
    with pytest.raises(InvalidArgument) as error:
        score_clip(path)
    assert error.value.reason in {"NOT_A_VIDEO", "CORRUPT_MEDIA"}
    assert "clip.mp4" in error.value.message


def test_text_match_is_the_mean_cosine_of_normalised_vectors() -> None:
    frames = [[2.0, 0.0], [0.0, 5.0], [3.0, 3.0]]
    assert text_video_match([1.0, 0.0], frames) == pytest.approx((1 + 0 + 2**-0.5) / 3)
    with pytest.raises(ValueError):
        text_video_match([1.0, 0.0, 0.0], frames)


def test_a_low_text_match_fails_and_a_missing_one_is_skipped() -> None:
    thresholds = QualityThresholds()
    assert thresholds.passes(ClipScores(100.0, 0.0, 1.0, 0.05))[1] == ["text match 0.05 < 0.2"]
    assert thresholds.passes(ClipScores(100.0, 0.0, 1.0, None)) == (True, [])
