"""Editor exports of a previs cut: its timeline as Final Cut Pro 7 XML, FCPXML or a CMX 3600 EDL.

The cut's OpenTimelineIO timeline (`cut.otio`, written by stitch.py) is the one source. An export
is made from it as it is at the call, by OpenTimelineIO's own adapters (`fcp_xml`, `fcpx_xml`,
`cmx_3600`), and written beside it (`cut.xml`, `cut.fcpxml`, `cut.edl`) through a scratch file
renamed into place, so a reader never sees half a file. Nothing is kept for reuse: exports are
small, and one kept from before a re-stitch would describe the old cut.

What each format needs is decided here rather than left to the adapters' defaults:

- Rate. Editors cut at timecode rates: SMPTE timecode (the EDL, FCP 7 XML) has 24, 25, 30, 48,
  50 and 60 and their NTSC forms; the FCPXML adapter writes 24, 25, 30, 50 and 60. A previs cut
  may run at 12 or 16 fps. An export runs at the cut's own rate where its format has it, else at
  the format's lowest rate that is a whole multiple of it (12 → 24, 16 → 48), so each cut frame
  is a whole number of frames; where there is none (16 fps in FCPXML), at the next whole rate
  above it (the highest above them all), every cut point on the nearest frame.
- Reels. CMX 3600 gives a reel eight characters, and the adapter would make one from the clip's
  file name (`c24-0.mp4` → `c240mp4`), cut short until two clips may share it. Each shot's reel
  is its shot id (`s001` → `S001`): unique within the cut, and it names the shot. The XML
  formats carry the same reel.
- Names. An EDL is 7-bit ASCII: its clip names are the shot id and the ASCII words of the
  description, and its title the project's, ASCII too. The FCPXML adapter finds an asset by
  name inside an XPath predicate, which a straight quote would end, so names there use ’.
- Media. The XML formats name each source clip by its file:// URL; the EDL by its path, as
  people and conform tools read its comments without decoding URL escapes.
- Metadata, where the format has a place for it: FCP 7 XML's master comments (description,
  prompt, note, and shot, scene, revision and scores); FCPXML's note (the prompt) and its reel,
  scene and description metadata; an EDL comment naming shot, scene, revision and variant.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio
from opentimelineio.opentime import RationalTime, TimeRange

from clipmesh.media.paths import path_from_uri
from clipmesh.previs.records import ExportFormat
from clipmesh.runtime.errors import FailedPrecondition

_NTSC = [Fraction(rate * 1000, 1001) for rate in (24, 30, 48, 60)]
TIMECODE_RATES = tuple(sorted([Fraction(rate) for rate in (24, 25, 30, 48, 50, 60)] + _NTSC))
"""Rates SMPTE timecode has (as OpenTimelineIO writes it): the EDL's and FCP 7 XML's."""
FCPXML_RATES = tuple(Fraction(rate) for rate in (24, 25, 30, 50, 60))
"""Rates the FCPXML adapter writes a frame duration for."""
EDL_NAME_CHARS = 60
"""Longest clip name or title in an EDL, so each stays one short comment line."""
REEL_CHARS = 8
"""A CMX 3600 reel name's width."""

_ADAPTERS = {
    ExportFormat.FCP7_XML: "fcp_xml",
    ExportFormat.FCPXML: "fcpx_xml",
    ExportFormat.CMX3600_EDL: "cmx_3600",
}


def editorial_rate(fps: Fraction, rates: Sequence[Fraction]) -> Fraction:
    """The rate an export of a cut at `fps` runs at, of `rates` (ascending); see above."""
    if fps in rates:
        return fps
    multiples = [rate for rate in rates if (rate / fps).denominator == 1]
    if multiples:
        return multiples[0]
    whole = [rate for rate in rates if rate.denominator == 1]  # not an NTSC rate for 7 fps
    return next((rate for rate in whole if rate > fps), whole[-1])


def export_timeline(timeline_path: Path, format: ExportFormat) -> Path:
    """Writes the timeline at `timeline_path` in `format` beside it; returns the file.

    OpenTimelineIO is the timeline itself: its path comes back as it is. Synchronous (it reads
    and writes files): run it in a worker thread.

    Raises:
        FailedPrecondition: `TIMELINE_MISSING` when the timeline file is gone or unreadable.
    """
    if format is ExportFormat.OTIO:
        return timeline_path
    try:
        timeline = otio.adapters.read_from_file(str(timeline_path), adapter_name="otio_json")
    except (OSError, otio.exceptions.OTIOError, ValueError) as error:
        raise FailedPrecondition(
            f"the cut's timeline {timeline_path.name} cannot be read ({error}); review a shot "
            "to stitch the cut again",
            reason="TIMELINE_MISSING",
        ) from error
    exported, rate = editorial_timeline(timeline, format)
    options: dict[str, Any] = {}
    if format is ExportFormat.CMX3600_EDL:
        options = {"rate": float(rate), "style": "avid", "reelname_len": REEL_CHARS}
    target = timeline_path.with_suffix(f".{format.value}")
    # Inside the cut's folder, so the rename below stays on one file system and is atomic.
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}-") as scratch:
        written = Path(scratch) / target.name
        otio.adapters.write_to_file(
            exported, str(written), adapter_name=_ADAPTERS[format], **options
        )
        os.replace(written, target)
    return target


def editorial_timeline(
    timeline: otio.schema.Timeline, format: ExportFormat
) -> tuple[otio.schema.Timeline, Fraction]:
    """The stitched timeline's clips at the export's rate, named and annotated for `format`."""
    clips = list(timeline.find_clips())
    if not clips:
        raise FailedPrecondition("the cut's timeline has no clips", reason="TIMELINE_MISSING")
    fps = Fraction(clips[0].source_range.duration.rate).limit_denominator(1001)
    rate = editorial_rate(fps, FCPXML_RATES if format is ExportFormat.FCPXML else TIMECODE_RATES)
    about = dict(timeline.metadata.get("clipmesh", {}))
    exported = otio.schema.Timeline(name=timeline.name, metadata={"clipmesh": about})
    if format is ExportFormat.CMX3600_EDL:
        exported.name = _ascii(timeline.name) or str(about.get("project_id", "previs"))
    track = otio.schema.Track(name="previs", kind=otio.schema.TrackKind.Video)
    exported.tracks.append(track)
    cut_frame, placed = 0, 0  # where the next clip starts, in cut frames and in export frames
    for clip, reel in zip(clips, _reels(clips), strict=True):
        cut_frame += round(clip.source_range.duration.value)
        frames = max(1, _on_frame(cut_frame, fps, rate) - placed)
        placed += frames
        track.append(_clip_at(clip, frames, rate, reel, _ANNOTATE[format]))
    return exported, rate


def _on_frame(cut_frame: int, fps: Fraction, rate: Fraction) -> int:
    """The frame at `rate` nearest to cut frame `cut_frame` at `fps` (halves round up)."""
    return math.floor(cut_frame * rate / fps + Fraction(1, 2))


def _clip_at(
    clip: otio.schema.Clip,
    frames: int,
    rate: Fraction,
    reel: str,
    annotate: Callable[[otio.schema.Clip, Mapping[str, Any], str], None],
) -> otio.schema.Clip:
    """`clip` as `frames` frames at `rate` from its media's start, its media at `rate` too."""
    rate_fps = float(rate)
    media = clip.media_reference
    media_frames = round(media.available_range.duration.to_seconds() * rate_fps)
    facts = dict(clip.metadata.get("clipmesh", {}))
    exported = otio.schema.Clip(
        name=clip.name,
        media_reference=otio.schema.ExternalReference(
            target_url=media.target_url,
            available_range=TimeRange(
                RationalTime(0, rate_fps), RationalTime(max(frames, media_frames), rate_fps)
            ),
        ),
        source_range=TimeRange(RationalTime(0, rate_fps), RationalTime(frames, rate_fps)),
        metadata={"clipmesh": facts},
    )
    annotate(exported, facts, reel)
    return exported


def _reels(clips: Sequence[otio.schema.Clip]) -> list[str]:
    """One reel name per clip: its shot id in capitals (`S001`), else `SHOT` and its place."""
    reels: list[str] = []
    for number, clip in enumerate(clips, start=1):
        shot_id = str(clip.metadata.get("clipmesh", {}).get("shot_id", ""))
        reel = re.sub(r"[^A-Z0-9]", "", shot_id.upper())[:REEL_CHARS]
        if not reel or reel in reels:
            reel = f"SHOT{number:04d}"[:REEL_CHARS]
        reels.append(reel)
    return reels


def _ascii(text: str, limit: int = EDL_NAME_CHARS) -> str:
    """`text`'s ASCII letters, digits and punctuation, accents dropped, spaces collapsed."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    printable = "".join(c if c.isprintable() else " " for c in folded)
    return " ".join(printable.split())[:limit].rstrip()


def _summary(facts: Mapping[str, Any]) -> str:
    """Shot, scene, revision, variant, seed and checks in one line."""
    scores = facts.get("scores", {})
    checks = "passed" if scores.get("passed") else "below threshold"
    return (
        f"shot {facts.get('shot_id', '')}; scene {facts.get('scene_id', '')}; "
        f"revision {facts.get('revision', '')}; variant {facts.get('variant', '')}; "
        f"seed {facts.get('seed', '')}; checks {checks} (sharpness "
        f"{scores.get('sharpness', 0):.0f}, flicker {scores.get('flicker', 0):.2f}, smoothness "
        f"{scores.get('smoothness', 0):.2f}, text match {scores.get('text_match', 0):.2f})"
    )


def _annotate_fcp7(clip: otio.schema.Clip, facts: Mapping[str, Any], reel: str) -> None:
    clip.metadata["fcp_xml"] = {
        "comments": {
            "mastercomment1": str(facts.get("description", "")),
            "mastercomment2": str(facts.get("prompt", "")),
            "mastercomment3": str(facts.get("note", "")),
            "mastercomment4": _summary(facts),
        }
    }
    clip.media_reference.metadata["fcp_xml"] = {"timecode": {"reel": {"name": reel}}}


def _annotate_fcpx(clip: otio.schema.Clip, facts: Mapping[str, Any], reel: str) -> None:
    clip.name = clip.name.replace("'", "’")
    clip.media_reference.metadata["fcpx"] = {
        "note": str(facts.get("prompt", "")),
        "metadata": [
            {"com.apple.proapps.studio.reel": reel},
            {"com.apple.proapps.studio.scene": str(facts.get("scene_id", ""))},
            {"com.apple.proapps.spotlight.kMDItemDescription": str(facts.get("description", ""))},
        ],
    }


def _annotate_edl(clip: otio.schema.Clip, facts: Mapping[str, Any], reel: str) -> None:
    shot_id = _ascii(str(facts.get("shot_id", "")))
    description = _ascii(str(facts.get("description", "")))
    clip.name = _ascii(f"{shot_id} {description}") or reel
    clip.media_reference.target_url = path_from_uri(clip.media_reference.target_url)
    about = (
        f"CLIPMESH SHOT {shot_id} SCENE {_ascii(str(facts.get('scene_id', '')))} "
        f"REVISION {facts.get('revision', '')} VARIANT {facts.get('variant', '')}"
    )
    clip.metadata["cmx_3600"] = {"reel": reel, "comments": [about]}


_ANNOTATE: dict[ExportFormat, Callable[[otio.schema.Clip, Mapping[str, Any], str], None]] = {
    ExportFormat.FCP7_XML: _annotate_fcp7,
    ExportFormat.FCPXML: _annotate_fcpx,
    ExportFormat.CMX3600_EDL: _annotate_edl,
}
