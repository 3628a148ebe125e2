"""Stitching a previs cut: one MP4 of every shot in order, one size and rate, and a timeline."""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np
import opentimelineio as otio
import pytest

from clipmesh.demo.library import make_video, write_not_a_video
from clipmesh.media.probe import probe
from clipmesh.previs.stitch import CutClip, stitch
from clipmesh.runtime.errors import InvalidArgument

FPS = 24
DURATIONS_S = (1.0, 2.5, 1.5)


def decoded_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def cut_clip(path: Path, index: int) -> CutClip:
    return CutClip(path, f"s{index:03d}", f"s{index:03d} · shot {index}", {"prompt": f"p{index}"})


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[CutClip]:
    """Three one-shot 160×96 clips of 1, 2.5 and 1.5 s at 24 fps."""
    folder = tmp_path_factory.mktemp("clips")
    return [
        cut_clip(
            make_video(
                folder / f"clip-{i}.mp4", seed=i, duration_s=d, fps=FPS, size=(160, 96), shots=1
            ).path,
            i + 1,
        )
        for i, d in enumerate(DURATIONS_S)
    ]


def test_the_cut_lasts_as_long_as_its_shots(clips: list[CutClip], tmp_path: Path) -> None:
    cut = stitch(clips, tmp_path / "out")

    assert cut.mp4 == tmp_path / "out" / "cut.mp4"
    assert cut.shot_frames == tuple(round(d * FPS) for d in DURATIONS_S) == (24, 60, 36)
    assert len(decoded_frames(cut.mp4)) == sum(cut.shot_frames)
    assert probe(cut.mp4).duration_s == pytest.approx(sum(cut.shot_frames) / FPS, abs=1e-3)
    assert cut.duration_s == pytest.approx(sum(DURATIONS_S), abs=len(clips) / FPS)
    assert (cut.width, cut.height, cut.fps) == (160, 96, FPS)


def test_clips_of_other_sizes_and_rates_join_at_the_first_ones(tmp_path: Path) -> None:
    wide = make_video(tmp_path / "wide.mp4", seed=1, duration_s=1.0, size=(160, 96), shots=1)
    square = make_video(
        tmp_path / "square.mp4", seed=2, duration_s=1.5, fps=12, size=(128, 128), shots=1
    )
    cut = stitch([cut_clip(wide.path, 1), cut_clip(square.path, 2)], tmp_path / "out")

    assert (cut.width, cut.height, cut.fps, cut.shot_frames) == (160, 96, 24, (24, 36))
    frames = decoded_frames(cut.mp4)
    assert len(frames) == 60
    assert {frame.shape for frame in frames} == {(96, 160, 3)}
    # The square shot is pillarboxed: black bars 32 px wide either side of a 96 × 96 picture.
    square_shot = np.stack(frames[24:])
    assert square_shot[:, :, :28].mean() < 20
    assert square_shot[:, :, -28:].mean() < 20
    assert square_shot[:, :, 36:124].mean() > 40


def test_explicit_size_and_rate_are_honoured(clips: list[CutClip], tmp_path: Path) -> None:
    cut = stitch(clips, tmp_path, width=128, height=72, fps=12)

    assert (cut.width, cut.height, cut.fps, cut.shot_frames) == (128, 72, 12, (12, 30, 18))
    info = probe(cut.mp4)
    assert (info.width, info.height, info.fps) == (128, 72, 12)
    frames = decoded_frames(cut.mp4)
    assert len(frames) == 60
    assert {frame.shape for frame in frames} == {(72, 128, 3)}


def test_resampling_shows_each_source_frame_from_its_own_time(tmp_path: Path) -> None:
    source = make_video(tmp_path / "three.mp4", seed=3, duration_s=3.0, fps=12, size=(128, 96))
    cut = stitch([cut_clip(source.path, 1)], tmp_path / "out", fps=30)

    frames = np.stack(decoded_frames(cut.mp4)).astype(np.int16)
    assert len(frames) == 90
    # The shots' cuts stay where they were: at frame 30 and 60, not at the nearest frame before.
    jumps = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))
    biggest = sorted(int(i) + 1 for i in np.argsort(jumps)[-len(source.cuts_s) :])
    assert biggest == [round(cut_s * 30) for cut_s in source.cuts_s] == [30, 60]


def test_the_timeline_lists_each_shot_against_its_source(
    clips: list[CutClip], tmp_path: Path
) -> None:
    script = {"script": "door.fountain"}
    cut = stitch(clips, tmp_path, name="act-1", title="Act one", timeline_metadata=script)

    assert cut.otio == tmp_path / "act-1.otio"
    timeline = otio.adapters.read_from_file(str(cut.otio))
    assert timeline.name == "Act one"
    assert dict(timeline.metadata["clipmesh"]) == {
        "script": "door.fountain",
        "mp4": "act-1.mp4",
        "width": 160,
        "height": 96,
        "fps": 24.0,
    }
    (track,) = timeline.tracks
    assert (track.name, track.kind) == ("previs", otio.schema.TrackKind.Video)
    assert [item.name for item in track] == [clip.name for clip in clips]
    assert [item.source_range.duration.to_frames() for item in track] == list(cut.shot_frames)
    assert track.duration().to_seconds() == pytest.approx(cut.duration_s)
    starts_s = [0.0, 1.0, 3.5]
    for item, clip, start_s, duration_s in zip(track, clips, starts_s, DURATIONS_S, strict=True):
        assert dict(item.metadata["clipmesh"]) == {
            "prompt": clip.metadata["prompt"],
            "shot_id": clip.shot_id,
            "cut_start_s": pytest.approx(start_s),
            "cut_duration_s": pytest.approx(duration_s),
        }
        reference = item.media_reference
        assert reference.target_url == clip.path.resolve().as_uri()
        assert reference.available_range.duration.to_seconds() == pytest.approx(duration_s)


def test_stitching_the_same_clips_gives_the_same_bytes(
    clips: list[CutClip], tmp_path: Path
) -> None:
    first = stitch(clips, tmp_path / "a")
    second = stitch(clips, tmp_path / "b")
    assert first.mp4.read_bytes() == second.mp4.read_bytes()
    assert first.otio.read_bytes() == second.otio.read_bytes()


def test_an_empty_cut_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument) as error:
        stitch([], tmp_path)
    assert error.value.reason == "EMPTY_CUT"


def good_cut_in(out_dir: Path, clips: list[CutClip]) -> dict[str, bytes]:
    stitch(clips[:1], out_dir)
    return {path.name: path.read_bytes() for path in out_dir.iterdir()}


def test_a_clip_that_is_no_video_fails_and_keeps_the_last_good_cut(
    clips: list[CutClip], tmp_path: Path
) -> None:
    out_dir = tmp_path / "out"
    before = good_cut_in(out_dir, clips)
    notes = cut_clip(write_not_a_video(tmp_path / "notes.mp4"), 9)

    with pytest.raises(InvalidArgument) as error:
        stitch([*clips, notes], out_dir)

    assert error.value.reason == "NOT_A_VIDEO"
    assert "notes.mp4" in error.value.message
    assert {path.name: path.read_bytes() for path in out_dir.iterdir()} == before


def test_a_failure_while_writing_keeps_the_last_good_cut_and_leaves_no_scratch(
    clips: list[CutClip], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out_dir = tmp_path / "out"
    before = good_cut_in(out_dir, clips)

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(otio.adapters, "write_to_file", disk_full)
    with pytest.raises(OSError, match="No space left"):
        stitch(clips, out_dir)

    assert {path.name: path.read_bytes() for path in out_dir.iterdir()} == before


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        ({"width": 161}, "UNSUPPORTED_SIZE"),
        ({"height": 0}, "UNSUPPORTED_SIZE"),
        ({"width": 4098}, "UNSUPPORTED_SIZE"),
        ({"fps": 0}, "UNSUPPORTED_FPS"),
        ({"fps": 121}, "UNSUPPORTED_FPS"),
        ({"fps": math.nan}, "UNSUPPORTED_FPS"),
        ({"name": "../cut"}, "INVALID_NAME"),
    ],
)
def test_bad_arguments_are_refused(
    clips: list[CutClip], tmp_path: Path, arguments: dict, reason: str
) -> None:
    with pytest.raises(InvalidArgument) as error:
        stitch(clips, tmp_path, **arguments)
    assert error.value.reason == reason
    assert list(tmp_path.iterdir()) == []
