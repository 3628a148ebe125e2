"""Fuzzes video probing and decoding: what ingest does to an untrusted file before embedding.

Each input is written to a file under an allowed root and taken the way ingest takes it:
`resolve_media_path`, `probe`, then, for a file `probe` accepts, the analysis pass
(`analysis_frames` into `plan_segments`) and `frames_at` for the keyframes. Every step must
return or raise `InvalidArgument` (`NOT_A_VIDEO`, `CORRUPT_MEDIA`, `MEDIA_TOO_LARGE`) or
`PermissionDenied`; an `av` error escaping untranslated is a finding. The plan must tile
`[0, duration_s]` and every frame must come back within the requested size.

Run it through `fuzz/run.py`, or directly with libFuzzer flags and a scratch corpus first:
`python -m fuzz.fuzz_video_probe -runs=100 build/fuzz/video_probe/corpus fuzz/corpus/video_probe`.
"""

from __future__ import annotations

import itertools
import math
import tempfile
from pathlib import Path

import atheris

from fuzz.common import INSTRUMENTED, expect, fuzz

with atheris.instrument_imports(include=INSTRUMENTED):
    from clipmesh.media.frames import analysis_frames, frames_at
    from clipmesh.media.paths import resolve_media_path
    from clipmesh.media.probe import MediaLimits, probe
    from clipmesh.media.shots import plan_segments
    from clipmesh.runtime.errors import InvalidArgument, PermissionDenied

# Production limits but a short read timeout: the file is local and small.
LIMITS = MediaLimits(read_timeout_s=5.0)
MAX_ANALYSIS_FRAMES = 64
FRAME_SIDE = 64
# The allowed root; `fuzz/run.py` points TMPDIR into the harness's work folder.
ROOT = Path(tempfile.mkdtemp(prefix="media-"))
MEDIA = ROOT / "input.mp4"


def check(data: bytes) -> None:
    """Probes `data` as a video file and decodes what `probe` accepts."""
    MEDIA.write_bytes(data)
    path = resolve_media_path(str(MEDIA), [ROOT])
    info = probe(path, LIMITS)
    expect(info.duration_s > 0 and math.isfinite(info.duration_s), f"duration {info.duration_s}")
    expect(info.fps > 0 and math.isfinite(info.fps), f"fps {info.fps}")
    expect(0 < max(info.width, info.height) <= LIMITS.max_side, f"{info.width}x{info.height}")
    frames = itertools.islice(analysis_frames(path, limits=LIMITS), MAX_ANALYSIS_FRAMES)
    segments = plan_segments(frames, info.duration_s)
    expect(segments[0].start_s == 0 and segments[-1].end_s == info.duration_s, "plan gaps")
    for before, after in itertools.pairwise(segments):
        expect(before.end_s == after.start_s, f"segments {before} and {after} do not tile")
    for segment in segments:
        expect(segment.start_s <= segment.keyframe_s <= segment.end_s, f"keyframe {segment}")
    times_s = [segment.keyframe_s for segment in segments[:4]]
    for image in frames_at(path, times_s, max_side=FRAME_SIDE, limits=LIMITS):
        expect(max(image.size) <= FRAME_SIDE, f"frame of {image.size}")


if __name__ == "__main__":
    fuzz(check, domain_errors=(InvalidArgument, PermissionDenied))
