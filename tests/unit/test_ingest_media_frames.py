"""Ingest's frames and shots (services/clipmesh/media/): frames decoded exactly at requested
times in any container, downscaled and upright; the small analysis pass and its keyframes-only
mode; and shot planning — segments at cuts, long shots windowed, near-duplicates merged,
always tiling the video. Paths and probing are in test_ingest_media_inputs.py; the `videos`
fixture is in conftest.py."""

from __future__ import annotations

import itertools
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from clipmesh.demo.library import VideoSpec
from clipmesh.media.frames import AnalysisFrame, analysis_frames, frames_at
from clipmesh.media.probe import probe
from clipmesh.media.shots import PlannedSegment, plan_segments
from clipmesh.runtime.errors import InvalidArgument

# Frames


def _decode_all(path: Path) -> list[tuple[float, np.ndarray]]:
    """Every frame, decoded front to back without seeking: the reference."""
    with av.open(str(path)) as container:
        return [
            (frame.time, frame.to_ndarray(format="rgb24", interpolation="AREA", threads=1))
            for frame in container.decode(video=0)
        ]


def test_frames_at_returns_the_frames_shown_at_the_requested_times(
    videos: dict[str, VideoSpec],
) -> None:
    spec = videos["cuts"]
    reference = _decode_all(spec.path)
    times_s = [7.9, 0.0, 3.33, 3.34, 0.52, 5.0, 1.01, 6.2, 6.21]  # unsorted, some close
    images = frames_at(spec.path, times_s, max_side=max(spec.size))
    for time_s, image in zip(times_s, images, strict=True):
        shown_s, expected = min(reference, key=lambda item: abs(item[0] - time_s))
        assert np.array_equal(np.asarray(image), expected), (time_s, shown_s)


def _remux(src: Path, dst: Path, container_format: str) -> Path:
    """The same H.264 packets in another container."""
    with av.open(str(src)) as source, av.open(str(dst), "w", format=container_format) as target:
        stream = target.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(video=0):
            if packet.dts is not None:
                packet.stream = stream
                target.mux(packet)
    return dst


@pytest.mark.parametrize(("container_format", "suffix"), [("matroska", "mkv"), ("mpegts", "ts")])
def test_other_containers_probe_and_seek_exactly(
    container_format: str, suffix: str, videos: dict[str, VideoSpec], tmp_path: Path
) -> None:
    # MPEG-TS starts at a non-zero time and has no index: seeks land on the keyframe after the
    # target, so the decoder must step back. Matroska's index appears only after a seek.
    spec = videos["cuts"]
    path = _remux(spec.path, tmp_path / f"cuts.{suffix}", container_format)
    assert probe(path).duration_s == pytest.approx(spec.duration_s, abs=1 / spec.fps)
    reference = _decode_all(spec.path)
    times_s = [0.0, 0.99, 1.0, 2.41, 4.96, 7.3, 7.95]
    for time_s in times_s:  # one at a time, so every one is a fresh seek
        (image,) = frames_at(path, [time_s], max_side=max(spec.size))
        expected = min(reference, key=lambda item: abs(item[0] - time_s))[1]
        assert np.array_equal(np.asarray(image), expected), time_s


def test_frames_at_downscales_to_max_side_keeping_the_aspect(
    videos: dict[str, VideoSpec],
) -> None:
    images = frames_at(videos["cuts"].path, [1.0, 2.0], max_side=100)
    assert [image.size for image in images] == [(100, 56), (100, 56)]
    assert all(image.mode == "RGB" for image in images)


def _difference(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).mean())


def test_frames_at_shows_each_shot_on_its_side_of_a_cut(videos: dict[str, VideoSpec]) -> None:
    spec = videos["cuts"]
    cut_s = spec.cuts_s[0]
    before, after, inside = frames_at(
        spec.path, [cut_s - 0.1, cut_s + 0.1, cut_s + 0.3], max_side=80
    )
    assert _difference(before, after) > 5 * _difference(after, inside)


def test_frames_at_past_the_end_gives_the_last_frame(videos: dict[str, VideoSpec]) -> None:
    spec = videos["cuts"]
    last = _decode_all(spec.path)[-1][1]
    (image,) = frames_at(spec.path, [spec.duration_s + 5], max_side=max(spec.size))
    assert np.array_equal(np.asarray(image), last)


def test_frames_at_refuses_negative_times(videos: dict[str, VideoSpec]) -> None:
    with pytest.raises(InvalidArgument) as caught:
        frames_at(videos["cuts"].path, [1.0, -0.5], max_side=64)
    assert caught.value.reason == "TIME_OUT_OF_RANGE"


def test_frames_come_out_as_displayed_for_a_rotated_video(videos: dict[str, VideoSpec]) -> None:
    path = videos["rotated"].path
    (image,) = frames_at(path, [0.5], max_side=64)
    assert image.size == (32, 64)
    assert next(iter(analysis_frames(path))).rgb.shape == (64, 32, 3)


def test_the_analysis_pass_is_small_at_most_8_per_second_and_covers_the_video(
    videos: dict[str, VideoSpec],
) -> None:
    spec = videos["cuts"]
    frames = list(analysis_frames(spec.path, frame_rate=8.0, max_side=160))
    times_s = [frame.time_s for frame in frames]
    assert all(frame.rgb.shape == (90, 160, 3) and frame.rgb.dtype == np.uint8 for frame in frames)
    assert times_s[0] == 0.0 and times_s[-1] > spec.duration_s - 0.5
    assert len({int(time_s * 8 + 1e-6) for time_s in times_s}) == len(times_s)  # ≤ 1 per 1/8 s
    assert len(frames) >= 0.75 * 8 * spec.duration_s


def test_the_analysis_pass_can_decode_keyframes_only(videos: dict[str, VideoSpec]) -> None:
    path = videos["cuts"].path
    with av.open(str(path)) as container:
        keyframes_s = {frame.time for frame in container.decode(video=0) if frame.key_frame}
    times_s = [frame.time_s for frame in analysis_frames(path, keyframes_only=True)]
    assert set(times_s) == keyframes_s


# Shots


def _assert_tiles(segments: list[PlannedSegment], duration_s: float) -> None:
    assert segments[0].start_s == 0.0
    assert segments[-1].end_s == pytest.approx(duration_s)
    for segment in segments:
        assert segment.start_s < segment.end_s
        assert segment.start_s <= segment.keyframe_s <= segment.end_s
    for previous, following in itertools.pairwise(segments):
        assert previous.end_s == following.start_s


def test_segments_follow_the_generated_cuts(videos: dict[str, VideoSpec]) -> None:
    spec = videos["cuts"]
    segments = plan_segments(analysis_frames(spec.path), probe(spec.path).duration_s)
    _assert_tiles(segments, spec.duration_s)
    found_s = [segment.start_s for segment in segments[1:]]
    assert len(found_s) == len(spec.cuts_s)
    for found, cut in zip(found_s, spec.cuts_s, strict=True):
        assert abs(found - cut) <= 0.5


def test_a_long_moving_shot_is_split_into_equal_windows(videos: dict[str, VideoSpec]) -> None:
    spec = videos["long"]
    segments = plan_segments(analysis_frames(spec.path), spec.duration_s, max_window_s=10.0)
    _assert_tiles(segments, spec.duration_s)
    assert [round(s.end_s - s.start_s, 6) for s in segments] == [8.0, 8.0, 8.0]


def test_a_static_video_collapses_into_one_segment(videos: dict[str, VideoSpec]) -> None:
    spec = videos["static"]
    segments = plan_segments(analysis_frames(spec.path), spec.duration_s, max_window_s=10.0)
    assert segments == [PlannedSegment(0.0, spec.duration_s, segments[0].keyframe_s)]
    unmerged = plan_segments(analysis_frames(spec.path), spec.duration_s, duplicate_threshold=0)
    assert len(unmerged) == 3


def _flat(time_s: float, level: int) -> AnalysisFrame:
    return AnalysisFrame(time_s, np.full((18, 32, 3), level, np.uint8))


def test_a_slow_fade_does_not_drift_into_one_segment() -> None:
    # Brightness rises 4 levels every 10 s window: each window is a near-duplicate of the next
    # (threshold 6), but a run is compared with its first keyframe, so it stops after 2 windows.
    frames = [_flat(i / 4, 40 + i // 10) for i in range(240)]
    segments = plan_segments(frames, 60.0, max_window_s=10.0, duplicate_threshold=6.0)
    _assert_tiles(segments, 60.0)
    assert [s.end_s - s.start_s for s in segments] == [20.0, 20.0, 20.0]


def test_no_segment_is_shorter_than_the_minimum() -> None:
    # Cuts at 5 s and 5.25 s: the quarter-second shot between them is not a segment of its own.
    frames = [_flat(i / 8, 30 if i < 40 else (120 if i < 42 else 220)) for i in range(96)]
    segments = plan_segments(frames, 12.0, min_segment_s=0.5)
    _assert_tiles(segments, 12.0)
    assert len(segments) == 2
    assert all(s.end_s - s.start_s >= 0.5 for s in segments)


def test_segments_tile_even_without_analysis_frames() -> None:
    segments = plan_segments([], 25.0, max_window_s=10.0)
    _assert_tiles(segments, 25.0)
    assert len(segments) == 3
