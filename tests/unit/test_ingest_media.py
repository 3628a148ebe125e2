"""Ingest's media side: where files may come from, what is a video, shots, and keyframes."""

from __future__ import annotations

import hashlib
import itertools
import os
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from clipmesh.demo.library import (
    VideoSpec,
    make_video,
    write_audio_only_mp4,
    write_not_a_video,
    write_truncated_mp4,
)
from clipmesh.media.frames import AnalysisFrame, analysis_frames, frames_at
from clipmesh.media.paths import resolve_media_path, sha256_file
from clipmesh.media.probe import DEFAULT_LIMITS, MediaLimits, probe
from clipmesh.media.shots import PlannedSegment, plan_segments
from clipmesh.runtime.errors import InvalidArgument, NotFound, PermissionDenied
from tests.media import encode, gradient_image


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, VideoSpec]:
    """Small generated videos, made once for the module."""
    root = tmp_path_factory.mktemp("videos")
    return {
        "cuts": make_video(root / "cuts.mp4", seed=7, duration_s=8.0, shots=3),
        "long": make_video(root / "long.mp4", seed=8, duration_s=24.0, shots=1, size=(160, 90)),
        "static": make_video(
            root / "static.mp4", seed=9, duration_s=24.0, shots=1, size=(160, 90), pan_per_s=0
        ),
        "rotated": make_video(
            root / "rotated.mp4", seed=10, duration_s=1.0, shots=1, size=(64, 32), rotation_deg=90
        ),
    }


# Paths


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "media"
    root.mkdir()
    (root / "clip one.mp4").write_bytes(b"\x00")
    return root


def test_paths_and_file_uris_inside_a_root_resolve_to_the_real_file(root: Path) -> None:
    real = root / "clip one.mp4"
    (root / "link.mp4").symlink_to(real)
    for uri in (
        str(real),
        f"{root}/sub/../clip one.mp4",
        f"file://{root}/clip%20one.mp4",
        f"file://localhost{root}/clip%20one.mp4",
        f"file:{root}/clip%20one.mp4",
        str(root / "link.mp4"),
    ):
        (root / "sub").mkdir(exist_ok=True)
        assert resolve_media_path(uri, [root]) == real, uri


def test_a_root_given_through_a_symlink_works(root: Path, tmp_path: Path) -> None:
    (tmp_path / "alias").symlink_to(root)
    assert resolve_media_path(str(root / "clip one.mp4"), [tmp_path / "alias"]).exists()


@pytest.mark.parametrize("kind", ["outside", "dotdot", "symlink", "symlinked dir", "no roots"])
def test_paths_that_escape_the_roots_are_refused_without_naming_the_roots(
    kind: str, root: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(b"\x00")
    (root / "escape.mp4").symlink_to(secret)
    (root / "elsewhere").symlink_to(tmp_path)
    uri, roots = {
        "outside": (str(secret), [root]),
        "dotdot": (f"{root}/../secret.mp4", [root]),
        "symlink": (str(root / "escape.mp4"), [root]),
        "symlinked dir": (str(root / "elsewhere" / "secret.mp4"), [root]),
        "no roots": (str(root / "clip one.mp4"), []),
    }[kind]
    with pytest.raises(PermissionDenied) as caught:
        resolve_media_path(uri, roots)
    assert caught.value.reason == "OUTSIDE_ALLOWED_ROOTS"
    assert caught.value.message == f"{uri!r} is outside the directories this server may read"


def test_a_missing_file_outside_the_roots_does_not_reveal_that_it_is_missing(root: Path) -> None:
    with pytest.raises(PermissionDenied):
        resolve_media_path("/nonexistent/clip.mp4", [root])


@pytest.mark.parametrize(
    "uri",
    [
        "http://example.com/clip.mp4",
        "https://example.com/clip.mp4",
        "rtsp://camera.local/stream",
        "hls+http://example.com/index.m3u8",
        "concat:/etc/passwd|/etc/hosts",
        "pipe:0",
        "data:video/mp4;base64,AAAA",
        "HTTP://EXAMPLE.COM/clip.mp4",
        "file://fileserver/share/clip.mp4",
    ],
)
def test_remote_and_ffmpeg_protocol_uris_are_refused(uri: str, root: Path) -> None:
    with pytest.raises(PermissionDenied) as caught:
        resolve_media_path(uri, [root])
    assert caught.value.reason == "UNSUPPORTED_URI_SCHEME"


def test_a_missing_file_is_not_found(root: Path) -> None:
    with pytest.raises(NotFound) as caught:
        resolve_media_path(str(root / "gone.mp4"), [root])
    assert caught.value.reason == "FILE_NOT_FOUND"


def test_a_directory_is_not_a_file(root: Path) -> None:
    (root / "folder.mp4").mkdir()
    with pytest.raises(InvalidArgument) as caught:
        resolve_media_path(str(root / "folder.mp4"), [root])
    assert caught.value.reason == "NOT_A_FILE"


@pytest.mark.parametrize(
    ("make_uri", "reason"),
    [
        (lambda root: f"{root}/clip\x00.mp4", "INVALID_PATH"),
        (lambda root: f"file://{root}/clip%00.mp4", "INVALID_PATH"),
        (lambda root: f"{root}/{'a' * 5000}.mp4", "INVALID_PATH"),
        (lambda root: "x" * 20_000, "INVALID_PATH"),
        (lambda root: "   ", "INVALID_PATH"),
        (lambda root: "media/clip one.mp4", "RELATIVE_PATH"),
        (lambda root: "subfile,,start,0,end,10,,:/etc/passwd", "RELATIVE_PATH"),
        (lambda root: f"file://{root}/clip.mp4?raw=1", "INVALID_URI"),
    ],
)
def test_malformed_paths_are_invalid(make_uri, reason: str, root: Path) -> None:
    with pytest.raises(InvalidArgument) as caught:
        resolve_media_path(make_uri(root), [root])
    assert caught.value.reason == reason
    assert len(caught.value.message) < 300


def test_sha256_file_streams_the_whole_file(tmp_path: Path) -> None:
    data = os.urandom(3_000_000)
    (tmp_path / "blob").write_bytes(data)
    assert sha256_file(tmp_path / "blob") == hashlib.sha256(data).hexdigest()


# Probing


def test_probe_reads_a_good_mp4(videos: dict[str, VideoSpec]) -> None:
    spec = videos["cuts"]
    info = probe(spec.path)
    assert abs(info.duration_s - spec.duration_s) <= 1 / spec.fps
    assert info.fps == pytest.approx(spec.fps)
    assert (info.width, info.height) == spec.size
    assert info.codec == "h264"
    assert info.frame_count_estimate == round(spec.duration_s * spec.fps)
    assert info.size_bytes == spec.path.stat().st_size


def test_probe_reports_the_displayed_size_of_a_rotated_video(
    videos: dict[str, VideoSpec],
) -> None:
    info = probe(videos["rotated"].path)
    assert (info.width, info.height) == (32, 64)


def _refusal(path: Path, limits: MediaLimits = DEFAULT_LIMITS) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as caught:
        probe(path, limits)
    assert caught.value.message.startswith(f"{path.name}: ")
    return caught.value


@pytest.mark.parametrize("keep_fraction", [0.5, 0.999, 0.01])
def test_a_truncated_mp4_is_corrupt(
    keep_fraction: float, videos: dict[str, VideoSpec], tmp_path: Path
) -> None:
    cut = write_truncated_mp4(
        videos["cuts"].path, tmp_path / "cut.mp4", keep_fraction=keep_fraction
    )
    assert _refusal(cut).reason == "CORRUPT_MEDIA"


def test_a_text_file_named_mp4_is_not_a_video(tmp_path: Path) -> None:
    assert _refusal(write_not_a_video(tmp_path / "notes.mp4")).reason == "NOT_A_VIDEO"


def test_an_empty_file_is_not_a_video(tmp_path: Path) -> None:
    (tmp_path / "empty.mp4").touch()
    assert _refusal(tmp_path / "empty.mp4").reason == "NOT_A_VIDEO"


def test_an_audio_only_mp4_has_no_video_stream(tmp_path: Path) -> None:
    error = _refusal(write_audio_only_mp4(tmp_path / "song.mp4"))
    assert error.reason == "NOT_A_VIDEO"
    assert error.message == "song.mp4: no video stream"


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "GIF"])
def test_an_image_is_not_a_video(image_format: str, tmp_path: Path) -> None:
    path = tmp_path / f"still.{image_format.lower()}"
    path.write_bytes(encode(gradient_image(64, 48), image_format))
    assert _refusal(path).reason == "NOT_A_VIDEO"


def test_playlists_are_not_followed_to_other_files(
    videos: dict[str, VideoSpec], tmp_path: Path
) -> None:
    target = videos["cuts"].path
    hls = tmp_path / "index.m3u8"
    hls.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile://{target}\n")
    concat = tmp_path / "list.ffconcat"
    concat.write_text(f"ffconcat version 1.0\nfile '{target}'\n")
    assert _refusal(hls).reason == "NOT_A_VIDEO"
    assert _refusal(concat).reason == "NOT_A_VIDEO"


def test_videos_over_the_limits_are_refused(videos: dict[str, VideoSpec]) -> None:
    path = videos["cuts"].path
    assert _refusal(path, MediaLimits(max_duration_s=5)).reason == "MEDIA_TOO_LARGE"
    assert _refusal(path, MediaLimits(max_side=256)).reason == "MEDIA_TOO_LARGE"


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
