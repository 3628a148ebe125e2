"""Editor exports of a previs cut: each format is read back by its own OpenTimelineIO adapter
with the cut's shots in order, their lengths, their source clips and the metadata the format
has room for; rates editors can cut at; EDL reels and names; files replaced whole."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest

from clipmesh.demo.library import make_video
from clipmesh.media.paths import path_from_uri
from clipmesh.previs.exports import (
    FCPXML_RATES,
    TIMECODE_RATES,
    editorial_rate,
    export_timeline,
)
from clipmesh.previs.records import ExportFormat
from clipmesh.previs.stitch import CutClip, StitchedCut, stitch
from clipmesh.runtime.errors import FailedPrecondition

ADAPTERS = {
    ExportFormat.FCP7_XML: "fcp_xml",
    ExportFormat.FCPXML: "fcpx_xml",
    ExportFormat.CMX3600_EDL: "cmx_3600",
}
# 17 and 19 frames at 16 fps: odd counts, which 24 fps cannot hold whole.
DURATIONS_S = (17 / 16, 2.5, 19 / 16)
DESCRIPTIONS = ("林夏推开咖啡馆的门", "Mara's letter, close-up", "Café at dawn")
# The rate each format's timeline runs at, by the cut's fps.
EXPECTED_RATES = {
    (ExportFormat.FCP7_XML, 24): 24,
    (ExportFormat.FCP7_XML, 12): 24,
    (ExportFormat.FCP7_XML, 16): 48,
    (ExportFormat.FCPXML, 24): 24,
    (ExportFormat.FCPXML, 12): 24,
    (ExportFormat.FCPXML, 16): 24,
    (ExportFormat.CMX3600_EDL, 24): 24,
    (ExportFormat.CMX3600_EDL, 12): 24,
    (ExportFormat.CMX3600_EDL, 16): 48,
}


def shot_facts(number: int) -> dict:
    """The metadata selection.cut_clip gives a shot."""
    return {
        "scene_id": f"sc0{number}",
        "description": DESCRIPTIONS[number - 1],
        "revision": 2,
        "note": "slower",
        "prompt": f"slow push in, shot {number}",
        "seed": 40 + number,
        "variant": 0,
        "scores": {"sharpness": 120.0, "flicker": 0.01, "smoothness": 0.9, "passed": True},
    }


def stitched(folder: Path, fps: int) -> tuple[StitchedCut, list[CutClip]]:
    clips = []
    for number, duration_s in enumerate(DURATIONS_S, start=1):
        video = make_video(
            folder / f"clip {number}.mp4", seed=number, duration_s=duration_s, fps=fps,
            size=(64, 48), shots=1,
        )  # fmt: skip
        name = f"s00{number} · {DESCRIPTIONS[number - 1]}"
        clips.append(CutClip(video.path, f"s00{number}", name, shot_facts(number)))
    cut = stitch(
        clips, folder / "cut", title="雨中咖啡馆 Rain", timeline_metadata={"project_id": "p1"}
    )
    return cut, clips


@pytest.fixture(scope="module", params=[24, 12, 16], ids=lambda fps: f"{fps}fps")
def cut(request, tmp_path_factory) -> tuple[StitchedCut, list[CutClip]]:
    return stitched(tmp_path_factory.mktemp(f"cut{request.param}"), request.param)


def read_back(path: Path, format: ExportFormat, rate: float) -> otio.schema.Timeline:
    options = {"rate": rate} if format is ExportFormat.CMX3600_EDL else {}
    return otio.adapters.read_from_file(str(path), adapter_name=ADAPTERS[format], **options)


@pytest.mark.parametrize("format", list(ADAPTERS), ids=lambda f: f.value)
def test_each_export_reads_back_with_the_cuts_shots_lengths_and_sources(cut, format) -> None:
    stitched_cut, clips = cut
    fps = round(stitched_cut.fps)
    rate = EXPECTED_RATES[format, fps]

    path = export_timeline(stitched_cut.otio, format)

    assert path == stitched_cut.otio.with_suffix(f".{format.value}")
    timeline = read_back(path, format, rate)
    items = list(timeline.find_clips())
    assert len(items) == len(clips)
    assert {item.source_range.duration.rate for item in items} == {rate}
    in_cut_frames = [item.source_range.duration.rescaled_to(fps).value for item in items]
    assert [round(frames) for frames in in_cut_frames] == list(stitched_cut.shot_frames)
    if (rate / fps).is_integer():  # a whole multiple of the cut's rate holds every frame exactly
        assert in_cut_frames == list(stitched_cut.shot_frames)
    sources = [item.media_reference.target_url for item in items]
    if format is ExportFormat.CMX3600_EDL:  # a path, for people and conform tools
        assert sources == [str(clip.path.resolve()) for clip in clips]
    else:
        assert sources == [clip.path.resolve().as_uri() for clip in clips]
        assert [path_from_uri(url) for url in sources] == [str(c.path.resolve()) for c in clips]
    assert timeline.duration().to_seconds() == pytest.approx(stitched_cut.duration_s, abs=0.05)


def test_an_edl_is_ascii_with_one_eight_character_reel_per_shot(cut) -> None:
    stitched_cut, _ = cut
    path = export_timeline(stitched_cut.otio, ExportFormat.CMX3600_EDL)
    text = path.read_text(encoding="utf-8")
    text.encode("ascii")  # raises on any other character

    assert text.startswith("TITLE: Rain\n")
    rate = EXPECTED_RATES[ExportFormat.CMX3600_EDL, round(stitched_cut.fps)]
    items = list(read_back(path, ExportFormat.CMX3600_EDL, rate).find_clips())
    assert [item.metadata["cmx_3600"]["reel"] for item in items] == ["S001", "S002", "S003"]
    assert [item.name for item in items] == [
        "s001",  # the Chinese description has no ASCII to keep
        "s002 Mara's letter, close-up",
        "s003 Cafe at dawn",
    ]
    assert "* CLIPMESH SHOT s002 SCENE sc02 REVISION 2 VARIANT 0" in text


def test_fcp7_xml_keeps_description_prompt_note_and_reel(cut) -> None:
    stitched_cut, clips = cut
    path = export_timeline(stitched_cut.otio, ExportFormat.FCP7_XML)
    rate = EXPECTED_RATES[ExportFormat.FCP7_XML, round(stitched_cut.fps)]

    items = list(read_back(path, ExportFormat.FCP7_XML, rate).find_clips())
    assert [item.name for item in items] == [clip.name for clip in clips]
    second = items[1]
    comments = second.metadata["fcp_xml"]["comments"]
    assert comments["mastercomment1"] == "Mara's letter, close-up"
    assert comments["mastercomment2"] == "slow push in, shot 2"
    assert comments["mastercomment3"] == "slower"
    assert comments["mastercomment4"].startswith("shot s002; scene sc02; revision 2; variant 0")
    assert second.media_reference.metadata["fcp_xml"]["timecode"]["reel"]["name"] == "S002"


def test_fcpxml_keeps_prompt_reel_scene_and_description_and_quotes_in_names(cut) -> None:
    stitched_cut, _ = cut
    path = export_timeline(stitched_cut.otio, ExportFormat.FCPXML)

    items = list(read_back(path, ExportFormat.FCPXML, 24).find_clips())
    # The adapter finds assets by name in an XPath predicate: a straight quote would end it.
    assert items[1].name == "s002 · Mara’s letter, close-up"
    about = items[1].media_reference.metadata["fcpx"]
    assert about["note"] == "slow push in, shot 2"
    assert {key: value for md in about["metadata"] for key, value in md.items()} == {
        "com.apple.proapps.studio.reel": "S002",
        "com.apple.proapps.studio.scene": "sc02",
        "com.apple.proapps.spotlight.kMDItemDescription": "Mara's letter, close-up",
    }


@pytest.mark.parametrize(
    ("fps", "rates", "expected"),
    [
        (24, TIMECODE_RATES, 24),
        (25, TIMECODE_RATES, 25),
        (30, FCPXML_RATES, 30),
        (Fraction(24000, 1001), TIMECODE_RATES, Fraction(24000, 1001)),
        (12, TIMECODE_RATES, 24),
        (15, TIMECODE_RATES, 30),
        (16, TIMECODE_RATES, 48),
        (16, FCPXML_RATES, 24),  # no whole multiple: the next rate above
        (20, FCPXML_RATES, 60),
        (7, TIMECODE_RATES, 24),
        (100, TIMECODE_RATES, 60),  # above every rate: the highest
    ],
)
def test_exports_run_at_the_cuts_rate_or_one_editors_cut_at(fps, rates, expected) -> None:
    assert editorial_rate(Fraction(fps), rates) == expected


def test_opentimelineio_is_the_timeline_itself(cut) -> None:
    stitched_cut, _ = cut
    assert export_timeline(stitched_cut.otio, ExportFormat.OTIO) == stitched_cut.otio


def test_an_export_is_written_afresh_beside_the_cut_and_leaves_no_scratch(cut) -> None:
    stitched_cut, _ = cut
    folder = stitched_cut.otio.parent
    first = export_timeline(stitched_cut.otio, ExportFormat.CMX3600_EDL).read_text()
    first_path = folder / "cut.edl"
    first_path.write_text("stale")

    again = export_timeline(stitched_cut.otio, ExportFormat.CMX3600_EDL)

    assert again.read_text() == first
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_a_missing_timeline_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(FailedPrecondition) as refused:
        export_timeline(tmp_path / "cut.otio", ExportFormat.FCPXML)
    assert refused.value.reason == "TIMELINE_MISSING"
    assert list(tmp_path.iterdir()) == []
