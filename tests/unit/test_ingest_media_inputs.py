"""Ingest's media inputs (services/clipmesh/media/): where files may come from — paths and
file URIs resolved inside the allowed roots, everything else refused — and what is a video:
probing good files, and refusing corrupt, non-video, playlist and oversized ones. Frames and
shots are in test_ingest_media_frames.py; the `videos` fixture is in conftest.py."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from clipmesh.demo.library import (
    VideoSpec,
    write_audio_only_mp4,
    write_not_a_video,
    write_truncated_mp4,
)
from clipmesh.media.analysis import keyframes, plan_video
from clipmesh.media.paths import resolve_media_path, sha256_file
from clipmesh.media.probe import DEFAULT_LIMITS, Deadline, MediaLimits, probe
from clipmesh.runtime.errors import InvalidArgument, NotFound, PermissionDenied
from tests.media import encode, free_box, gradient_image, mp4_relaid

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


# Valid MP4 layouts: where `moov` sits and what padding comes before it is the muxer's choice.
# 6 MB of padding is more than FFmpeg's probe size (5 MB), so `moov` is found past it.
_PADDING = 6_000_000


@pytest.mark.parametrize(
    "layout",
    [
        [b"ftyp", free_box(_PADDING), b"moov", b"mdat"],
        [b"ftyp", b"mdat", free_box(_PADDING), b"moov"],
        [b"ftyp", free_box(_PADDING), b"mdat", b"moov"],
        [free_box(_PADDING), b"ftyp", b"moov", b"mdat"],
        [b"ftyp", free_box(_PADDING, large=True), b"moov", b"mdat"],
        [b"ftyp", free_box(_PADDING, kind=b"skip"), b"moov", free_box(64), b"mdat"],
    ],
    ids=[
        "moov-after-large-free",
        "moov-last-after-large-free",
        "mdat-between",
        "free-before-ftyp",
        "64-bit-free-size",
        "skip-and-free",
    ],
)
def test_valid_layouts_with_large_free_boxes_are_read_like_the_original(
    layout: list[bytes], videos: dict[str, VideoSpec], tmp_path: Path
) -> None:
    spec = videos["cuts"]
    relaid = tmp_path / "relaid.mp4"
    relaid.write_bytes(mp4_relaid(spec.path.read_bytes(), layout))
    original, copy = probe(spec.path), probe(relaid)
    assert copy.size_bytes > _PADDING
    assert (copy.duration_s, copy.fps, copy.width, copy.height) == (
        original.duration_s,
        original.fps,
        original.width,
        original.height,
    )
    limits, deadline = DEFAULT_LIMITS, Deadline(relaid, 60)
    plan = plan_video(relaid, limits, deadline, max_window_s=10)
    expected = plan_video(spec.path, limits, Deadline(spec.path, 60), max_window_s=10)
    assert plan.segments == expected.segments
    assert len(keyframes(relaid, plan, limits, deadline)) == len(plan.segments)


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
