"""Ingest's resource bounds on a video file: its size, the pixels a decoder may allocate for
one frame, and the wall time of all probing and decoding of the file."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clipmesh.demo.library import make_video
from clipmesh.media.frames import analysis_frames, frames_at
from clipmesh.media.probe import (
    DEFAULT_LIMITS,
    Deadline,
    MediaLimits,
    check_file_size,
    probe,
)
from clipmesh.runtime.errors import InvalidArgument
from tests.hostile.media import flat_png, write_png_video

BOMB_SIDE = 7000  # 49 million pixels: over the 36 million cap, under the 8192 side cap


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    return make_video(path, seed=3, duration_s=2.0, size=(320, 180), shots=1).path


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """PNG-in-MOV videos of 49-megapixel frames, 420 kB each on disk: one whose header says
    so, one whose header claims 64×64."""
    directory = tmp_path_factory.mktemp("bombs")
    picture = flat_png(BOMB_SIDE, BOMB_SIDE)
    return {
        "honest": write_png_video(
            directory / "honest.mov", picture, declared_size=(BOMB_SIDE, BOMB_SIDE), frames=3
        ),
        "lying": write_png_video(
            directory / "lying.mov", picture, declared_size=(64, 64), frames=3
        ),
    }


def _refusal(call, *args, **kwargs) -> InvalidArgument:
    """What `call` raises, running it to the end when it returns an iterator."""
    with pytest.raises(InvalidArgument) as caught:
        result = call(*args, **kwargs)
        if isinstance(result, Iterator):
            list(result)
    return caught.value


def test_the_defaults_fit_an_8k_video_of_four_hours() -> None:
    assert DEFAULT_LIMITS.max_frame_pixels >= 8192 * 4320
    assert DEFAULT_LIMITS.max_duration_s == 4 * 3600
    assert DEFAULT_LIMITS.max_decode_s >= 1800


def test_a_file_over_the_size_cap_is_refused_from_its_size_alone(tmp_path: Path) -> None:
    huge = tmp_path / "huge.mp4"
    with open(huge, "wb") as file:
        file.truncate(DEFAULT_LIMITS.max_file_bytes + 1)  # sparse: nothing is written
    started = time.monotonic()
    error = _refusal(check_file_size, huge)
    assert (error.reason, error.field) == ("MEDIA_TOO_LARGE", "uri")
    assert "huge.mp4" in error.message and "limit" in error.message
    assert _refusal(probe, huge).reason == "MEDIA_TOO_LARGE"
    assert time.monotonic() - started < 1  # never read


def test_frames_over_the_pixel_cap_are_refused(clip: Path) -> None:
    error = _refusal(probe, clip, MediaLimits(max_frame_pixels=320 * 180 - 1))
    assert error.reason == "MEDIA_TOO_LARGE"
    assert error.message == "clip.mp4: 320×180 pixels; the limit is 57,599 pixels a frame"
    assert probe(clip, MediaLimits(max_frame_pixels=320 * 180)).width == 320


@pytest.mark.parametrize("header", ["honest", "lying"])
def test_a_decompression_bomb_video_is_refused_by_every_pass(
    bombs: dict[str, Path], header: str
) -> None:
    path = bombs[header]
    first = _refusal(probe, path)
    assert first.reason == "CORRUPT_MEDIA"
    assert "frames over 36,000,000 pixels are refused unread" in first.message
    # The decoders refuse the frames themselves, should a caller skip the probe.
    for error in (
        _refusal(analysis_frames, path),
        _refusal(frames_at, path, [0.5], max_side=64),
    ):
        assert (error.reason, error.field) == ("CORRUPT_MEDIA", "uri")
        assert "decoding failed" in error.message


def test_a_decompression_bomb_video_never_has_its_frames_allocated(
    bombs: dict[str, Path],
) -> None:
    # A fresh process, so its peak memory is this check's alone.
    script = textwrap.dedent(
        """
        import resource, sys
        from pathlib import Path
        from clipmesh.media.frames import analysis_frames, frames_at
        from clipmesh.media.probe import probe
        from clipmesh.runtime.errors import InvalidArgument

        for path in map(Path, sys.argv[1:]):
            for attempt in (
                lambda: probe(path),
                lambda: list(analysis_frames(path)),
                lambda: frames_at(path, [0.5], max_side=64),
            ):
                try:
                    attempt()
                except InvalidArgument:
                    pass
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
        """
    )
    baseline = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    measured = subprocess.run(
        [sys.executable, "-c", script, *map(str, bombs.values())],
        capture_output=True,
        text=True,
        check=True,
    )
    frame_mb = BOMB_SIDE * BOMB_SIDE * 3 / 1e6  # 147 MB a frame, if ever decoded
    assert int(measured.stdout) - int(baseline.stdout) < frame_mb / 3


def test_an_exhausted_deadline_stops_opening_with_a_clear_reason(clip: Path) -> None:
    error = _refusal(probe, clip, deadline=Deadline(clip, 0.0))
    assert (error.reason, error.field) == ("MEDIA_TOO_SLOW", "uri")
    assert error.message == "clip.mp4: reading and decoding took longer than the 0 s limit per file"


def test_decoding_that_outlasts_the_deadline_stops_within_a_packet(tmp_path: Path) -> None:
    # 40 frames of 9 megapixels: about 0.1 s each to decode, seconds for the whole file.
    slow = write_png_video(
        tmp_path / "slow.mov", flat_png(3000, 3000), declared_size=(3000, 3000), frames=40, fps=8
    )
    deadline = Deadline(slow, 0.5)
    decoded = []
    started = time.monotonic()
    with pytest.raises(InvalidArgument) as caught:
        for frame in analysis_frames(slow, deadline=deadline, keyframes_only=False):
            decoded.append(frame)
    assert caught.value.reason == "MEDIA_TOO_SLOW"
    assert len(decoded) < 40
    assert time.monotonic() - started < 0.5 + 2.0  # the limit, plus one slow frame at most
