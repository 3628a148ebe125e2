"""Fuzzes previs script parsing: plain zh/en prose and Fountain, as CreateProject takes them.

Input layout (`fuzz/make_corpus.py` writes seeds in it):

- byte 0: bits 0-1 the format (auto, plain, fountain, auto), bits 2-3 `max_shot_s`
  (2, 5, 10 or 30 s), bits 4-5 a run exponent `e`, bits 6-7 both set to make the run;
- byte 1: the run's unit length, 1 to 8 characters;
- the rest: the script, UTF-8 (undecodable bytes become U+FFFD, as the API's strings hold
  only valid Unicode).

With bits 6-7 set, the script's last few characters are repeated until it is
`4**e * 256` characters long (256, 1024, 4096 or 16384): long runs of one character or phrase
are where regular expressions go quadratic, and libFuzzer's inputs are otherwise a few KB at
most. A quarter of the inputs make a run, so the harness stays fast; `fuzz/run.py` gives it a
short per-input timeout, under which a quadratic 16 K-character run fails.

`parse_script` must return or raise `ScriptError`; its scenes and shots must be numbered in
order, and every shot must last from `MIN_SHOT_S` to `max_shot_s` by the reading-rate model,
since splitting text "so every shot fits however the text is written" is what it promises.
"""

from __future__ import annotations

import atheris

from fuzz.common import INSTRUMENTED, expect, fuzz

with atheris.instrument_imports(include=INSTRUMENTED):
    from clipmesh.previs.planning import shots_of
    from clipmesh.previs.script import (
        MIN_SHOT_S,
        Script,
        ScriptError,
        Shot,
        estimate_s,
        parse_script,
    )

FORMATS = ("auto", "plain", "fountain", "auto")
MAX_SHOT_S = (2.0, 5.0, 10.0, 30.0)
# Sums of per-piece estimates may pass `max_shot_s` by a float's hair.
SLACK_S = 0.05


def decode(data: bytes) -> tuple[str, str, float]:
    """(text, format, max_shot_s) from one input, as laid out in the module docstring."""
    options = data[0] if data else 0
    unit_chars = (data[1] % 8 + 1) if len(data) > 1 else 1
    text = data[2:].decode("utf-8", errors="replace")
    if options >> 6 == 3 and text:
        unit = text[-unit_chars:]
        target = 256 << 2 * ((options >> 4) & 3)
        text += unit * max(0, (target - len(text)) // len(unit))
    return text, FORMATS[options & 3], MAX_SHOT_S[(options >> 2) & 3]


def _action_of(shot: Shot) -> str:
    """The shot's action text: its description, unless that only repeats its dialogue."""
    spoken = " / ".join(f"{line.speaker}: {line.line}" for line in shot.dialogue)
    return "" if shot.dialogue and shot.description == spoken else shot.description


def check_script(script: Script, format: str, max_shot_s: float) -> None:
    """The invariants of a parsed script."""
    expect(script.format in ("plain", "fountain"), f"format {script.format!r}")
    expect(format in ("auto", script.format), f"{format} parsed as {script.format}")
    expect(bool(script.shots), "a script without shots was accepted")
    for index, scene in enumerate(script.scenes):
        expect(scene.index == index, f"scene {index} numbered {scene.index}")
        expect(all(shot.scene_index == index for shot in scene.shots), f"scene {index}'s shots")
    for index, shot in enumerate(script.shots):
        expect(shot.index == index, f"shot {index} numbered {shot.index}")
        expect(MIN_SHOT_S <= shot.duration_s <= max_shot_s, f"shot {index}: {shot.duration_s} s")
        needed_s = estimate_s(_action_of(shot)) + sum(
            estimate_s(line.line, speech=True) for line in shot.dialogue
        )
        expect(
            needed_s <= max_shot_s + SLACK_S,
            f"shot {index} needs {needed_s:.1f} s, more than {max_shot_s} s",
        )


def check(data: bytes) -> None:
    """Parses `data` as a script and checks what comes out."""
    text, format, max_shot_s = decode(data)
    script = parse_script(text, format=format, max_shot_s=max_shot_s)
    check_script(script, format, max_shot_s)
    scenes, shots = shots_of(script)
    expect(len(shots) == len(script.shots) and len(scenes) == len(script.scenes), "shots_of")


if __name__ == "__main__":
    fuzz(check, domain_errors=(ScriptError,))
