"""The demo video library: real, deterministic H.264 files whose shots are known."""

from __future__ import annotations

import itertools
from pathlib import Path

import av
import numpy as np
import pytest

from clipmesh.demo.library import (
    VideoSpec,
    make_library,
    make_video,
    write_audio_only_mp4,
    write_not_a_video,
    write_truncated_mp4,
)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> VideoSpec:
    path = tmp_path_factory.mktemp("library") / "three-shots.mp4"
    return make_video(path, seed=3, duration_s=6.0, shots=3)


def _decode(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return list(container.decode(video=0))


def _difference(a: av.VideoFrame, b: av.VideoFrame) -> float:
    """Mean absolute difference of two frames' RGB values (0–255)."""
    first, second = (frame.to_ndarray(format="rgb24").astype(np.int16) for frame in (a, b))
    return float(np.abs(first - second).mean())


def test_a_video_is_an_h264_mp4_of_the_requested_size_rate_and_length(video: VideoSpec) -> None:
    with av.open(str(video.path)) as container:
        stream = container.streams.video[0]
        assert container.format.name.startswith("mov,mp4")
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert stream.average_rate == video.fps == 24
        assert (stream.codec_context.width, stream.codec_context.height) == video.size == (320, 180)
    assert len(_decode(video.path)) == round(video.duration_s * video.fps) == 144


def test_the_shots_tile_the_video_and_last_at_least_a_second(video: VideoSpec) -> None:
    assert len(video.shots) == 3
    assert video.shots[0].start_s == 0.0 and video.shots[-1].end_s == video.duration_s
    for previous, following in itertools.pairwise(video.shots):
        assert previous.end_s == following.start_s
    assert all(shot.end_s - shot.start_s >= 1.0 for shot in video.shots)
    assert video.cuts_s == [shot.start_s for shot in video.shots[1:]]


def test_shots_differ_a_lot_and_frames_inside_a_shot_a_little(video: VideoSpec) -> None:
    frames = _decode(video.path)
    first_frame = [round(shot.start_s * video.fps) for shot in video.shots]
    across = [_difference(frames[i - 1], frames[i]) for i in first_frame[1:]]
    within = [_difference(frames[i], frames[i + 1]) for i in first_frame]
    assert min(across) > 20
    assert 0 < max(within) < 10


def test_a_still_video_changes_only_by_compression_noise(tmp_path: Path) -> None:
    still = _decode(
        make_video(tmp_path / "s.mp4", seed=1, duration_s=2.0, shots=1, pan_per_s=0).path
    )
    panning = _decode(make_video(tmp_path / "p.mp4", seed=1, duration_s=2.0, shots=1).path)
    assert _difference(still[0], still[-1]) < 3
    assert _difference(panning[0], panning[-1]) > 5 * _difference(still[0], still[-1])


def test_keyframes_come_every_second(video: VideoSpec) -> None:
    with av.open(str(video.path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = "NONKEY"
        keyframes_s = [frame.time for frame in container.decode(stream)]
    assert keyframes_s[0] == 0.0
    assert all(b - a <= 1.0 + 1e-6 for a, b in itertools.pairwise(keyframes_s))


def test_the_same_seed_writes_the_same_bytes(tmp_path: Path) -> None:
    first = make_video(tmp_path / "a.mp4", seed=5, duration_s=2.0, shots=2, size=(96, 64))
    again = make_video(tmp_path / "b.mp4", seed=5, duration_s=2.0, shots=2, size=(96, 64))
    other = make_video(tmp_path / "c.mp4", seed=6, duration_s=2.0, shots=2, size=(96, 64))
    assert first.path.read_bytes() == again.path.read_bytes()
    assert first.shots == again.shots
    assert first.path.read_bytes() != other.path.read_bytes()


def test_odd_sizes_and_too_many_shots_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even"):
        make_video(tmp_path / "odd.mp4", seed=0, duration_s=1.0, size=(101, 64))
    with pytest.raises(ValueError, match="shots"):
        make_video(tmp_path / "crowded.mp4", seed=0, duration_s=2.0, shots=3)


def test_a_library_has_varied_titled_videos_and_is_reproducible(tmp_path: Path) -> None:
    specs = make_library(tmp_path / "lib", count=3, seed=4, size=(64, 36))
    assert [spec.path.name for spec in specs] == ["video-00.mp4", "video-01.mp4", "video-02.mp4"]
    assert all(spec.path.is_file() for spec in specs)
    assert all(6.0 <= spec.duration_s <= 20.0 and len(spec.shots) >= 2 for spec in specs)
    assert len({spec.title for spec in specs}) == 3
    again = make_library(tmp_path / "again", count=3, seed=4, size=(64, 36))
    assert [(s.title, s.shots) for s in again] == [(s.title, s.shots) for s in specs]


def test_broken_file_helpers(video: VideoSpec, tmp_path: Path) -> None:
    truncated = write_truncated_mp4(video.path, tmp_path / "cut.mp4", keep_fraction=0.5)
    assert truncated.read_bytes() == video.path.read_bytes()[: video.path.stat().st_size // 2]
    assert write_not_a_video(tmp_path / "notes.mp4").read_text().startswith("This is")
    with av.open(str(write_audio_only_mp4(tmp_path / "tone.mp4", duration_s=0.5))) as container:
        assert [stream.type for stream in container.streams] == ["audio"]
        assert container.duration / av.time_base == pytest.approx(0.5, abs=0.1)
