"""What the fuzz harnesses found (fuzz/README.md), each fed to the code exactly as it crashed it.

Each input used to escape as something other than the documented domain error, break a
promised invariant, or take minutes; now it is refused with `InvalidArgument`, or handled.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest

from clipmesh.encoder.images import ImageLimits, decode_image
from clipmesh.index.filters import parse_filter
from clipmesh.media.frames import analysis_frames, frames_at
from clipmesh.media.images import MAX_ASPECT_RATIO
from clipmesh.media.probe import probe
from clipmesh.media.shots import plan_segments
from clipmesh.previs.compliance import CompliancePolicy
from clipmesh.previs.script import (
    MAX_SCRIPT_CHARS,
    MIN_SHOT_S,
    estimate_s,
    parse_script,
)
from clipmesh.runtime.errors import InvalidArgument
from clipmesh_api.common.v1 import common_pb2
from tests.media import encode, gradient_image

REGRESSIONS = Path(__file__).resolve().parents[2] / "fuzz" / "regressions"


# -- script parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "format"),
    [
        ("ANNA: ...", "plain"),
        ("“…”", "plain"),
        ("INT. ROOM - DAY\n\nANNA\n...\n", "fountain"),
    ],
)
def test_a_line_that_takes_no_time_to_say_is_a_shot_not_an_index_error(
    text: str, format: str
) -> None:
    """A first line of dialogue with no words ("...") once indexed an empty list of shots."""
    script = parse_script(text, format=format)
    assert [shot.duration_s for shot in script.shots] == [MIN_SHOT_S]
    assert script.shots[0].dialogue[0].line in {"...", "…"}


def test_text_without_spaces_is_still_cut_into_shots_that_fit() -> None:
    """ "0.0.0…" is one run of text but hundreds of words: it was one shot needing 182 s."""
    crash = base64.b64decode(
        "SAFTaGUgd2Fp////////////EP////////////////////////////////////////////////////8GAAAAAAAA"
        "AP////////////////////////////////////////////////////90cyAuIC4wLg=="
    )
    text = crash[2:].decode("utf-8", errors="replace") + "0." * 455
    script = parse_script(text, format="auto", max_shot_s=10.0)
    assert len(script.shots) > 1
    for shot in script.shots:
        assert estimate_s(shot.description) <= 10.0 + 0.05


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("She waits " + "." * (MAX_SCRIPT_CHARS - 10), id="a run of dots"),
        pytest.param("林夏说：" + "“" * (MAX_SCRIPT_CHARS - 4), id="unclosed quotes"),
        pytest.param("「" * MAX_SCRIPT_CHARS, id="unclosed corner brackets"),
    ],
)
def test_the_longest_script_parses_in_seconds_whatever_it_repeats(text: str) -> None:
    """Each of these took minutes (the regular expressions were quadratic in the run)."""
    started = time.monotonic()
    parse_script(text, format="plain")
    assert time.monotonic() - started < 10.0


def test_a_cast_of_thousands_parses_in_seconds() -> None:
    """Every shot looked for every character by a regex compiled anew: 2000 names took 11 s."""
    names = [
        f"A{chr(97 + i % 26)}{chr(97 + i // 26 % 26)}{chr(97 + i // 676)}" for i in range(2000)
    ]
    lines = [f"{name}: hello there." for name in names]
    started = time.monotonic()
    script = parse_script("\n".join([*lines, f"{names[1]} waits."]), format="plain")
    assert time.monotonic() - started < 5.0
    assert script.shots[-1].characters == [names[1]]


def test_case_insensitive_names_still_match_the_letters_re_folds() -> None:
    """The substring test in front of the name search keeps what `re` matches: ſ is s."""
    script = parse_script("Cast: Sam\nSam: Hi.\n\nſam waits by the door.", format="plain")
    assert script.shots[-1].characters == ["Sam"]


# -- metadata filters -------------------------------------------------------------------------


def test_a_label_key_ending_in_a_newline_is_refused() -> None:
    """`$` matched before a trailing newline, so the key "lan\\n" passed the key check."""
    message = common_pb2.MetadataFilter.FromString(b"\n\x11\n\x0blabels.lan\n\x12\x02zh")
    with pytest.raises(InvalidArgument) as raised:
        parse_filter(message)
    assert raised.value.reason == "BAD_FILTER"
    assert raised.value.field == "filter.clauses[0]"


# -- image intake -----------------------------------------------------------------------------


def test_a_thin_strip_is_refused_before_preprocessing_scales_it_up() -> None:
    """A 1x4000 PNG (93 bytes) became a 224x896000 picture: 0.9 GB and 2.6 s per image."""
    data = encode(gradient_image(1, 4000), "PNG")
    with pytest.raises(InvalidArgument) as raised:
        decode_image(data, 3, ImageLimits(max_bytes=16 << 20, max_pixels=40_000_000), 224)
    assert raised.value.reason == "IMAGE_ASPECT_RATIO_TOO_LARGE"
    assert raised.value.field == "images[3]"


def test_a_strip_within_the_aspect_ratio_still_decodes() -> None:
    data = encode(gradient_image(8, 8 * MAX_ASPECT_RATIO), "PNG")
    image = decode_image(data, 0, ImageLimits(max_bytes=16 << 20, max_pixels=40_000_000), 224)
    assert image.size == (8, 8 * MAX_ASPECT_RATIO)


# -- video probing ----------------------------------------------------------------------------


def test_a_video_whose_frame_size_changes_midway_plans_shots() -> None:
    """FLV frames from 32x32 to 33x47 made PySceneDetect assert (INTERNAL, not a plan)."""
    path = REGRESSIONS / "video_probe" / "flv-frame-size-change.flv"
    info = probe(path)
    segments = plan_segments(analysis_frames(path), info.duration_s)
    assert segments[0].start_s == 0 and segments[-1].end_s == info.duration_s


def test_a_video_stream_no_decoder_reads_is_corrupt_media() -> None:
    """An MP4 whose video codec FFmpeg does not know has no codec context: AttributeError."""
    path = REGRESSIONS / "video_probe" / "mp4-unknown-codec.mp4"
    with pytest.raises(InvalidArgument) as raised:
        probe(path)
    assert raised.value.reason == "CORRUPT_MEDIA"
    assert "no decoder" in raised.value.message


def test_a_stream_that_appears_partway_through_is_corrupt_media() -> None:
    """FLV can add a stream midway; after a seek PyAV's demux raised IndexError on its packet."""
    path = REGRESSIONS / "video_probe" / "flv-stream-added-midway.flv"
    info = probe(path)
    with pytest.raises(InvalidArgument) as raised:
        frames_at(path, [info.duration_s / 2], max_side=64)
    assert raised.value.reason == "CORRUPT_MEDIA"


def test_a_frame_larger_than_its_header_said_is_refused_once_decoded() -> None:
    """An MPEG-PS whose header passes the size check but whose first frame decodes 32x8224,
    over the 8192-pixel side: probe accepted it."""
    path = REGRESSIONS / "video_probe" / "mpeg-frame-taller-than-header.mpg"
    with pytest.raises(InvalidArgument) as raised:
        probe(path)
    assert raised.value.reason == "MEDIA_TOO_LARGE"
    assert "32×8224" in raised.value.message


def test_a_tall_animated_webp_reference_image_is_refused_before_face_detection() -> None:
    """42x458753 pixels, under the pixel cap: face detection at full size took 1 GB (OOM)."""
    data = (REGRESSIONS / "images" / "webp-animated-42x458753.webp").read_bytes()
    with pytest.raises(InvalidArgument) as refused:
        CompliancePolicy({}).check_reference_image(data, field="references[0].image")
    assert refused.value.reason == "IMAGE_ASPECT_RATIO_TOO_LARGE"
    assert "42x458753" in refused.value.message and refused.value.field == "references[0].image"
