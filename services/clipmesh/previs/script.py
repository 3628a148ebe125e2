"""Script in, scenes and shots out: the first stage of the previs pipeline.

A script is plain prose (Chinese or English) or a Fountain screenplay, read into scenes by
`script_reading`. Each action paragraph starts a shot; the dialogue after it joins that shot
while it fits, and otherwise starts a dialogue-only shot. `shot_timing` estimates durations
and cuts text longer than a shot; a shot lasts the sum of its action and dialogue, and at
least `MIN_SHOT_S`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from clipmesh.previs.script_reading import (
    SceneDraft,
    camera_hints,
    clean_text,
    detect_format,
    fountain_scenes,
    plain_scenes,
)
from clipmesh.previs.shot_timing import estimate_s, split_to_fit

__all__ = [
    "FORMATS",
    "MAX_SCRIPT_CHARS",
    "MIN_SHOT_S",
    "DialogueLine",
    "Scene",
    "Script",
    "ScriptError",
    "Shot",
    "estimate_s",
    "parse_script",
]

MAX_SCRIPT_CHARS = 200_000
MIN_SHOT_S = 2.0
FORMATS = ("auto", "plain", "fountain")

# The only characters that `re`'s case-insensitive matching equates with ASCII letters but
# `str.lower` does not lower to them.
_ASCII_FOLD = str.maketrans({"İ": "i", "ı": "i", "ſ": "s"})
_NAME_WORD_RE = re.compile(r"\w+")


class ScriptError(ValueError):
    """The script cannot be turned into shots (empty, too long, or nothing to shoot)."""


@dataclass(frozen=True)
class DialogueLine:
    """One spoken line: who says it and what they say."""

    speaker: str
    line: str


@dataclass
class Shot:
    """One shot of at most `max_shot_s` seconds.

    Attributes:
        index: Position in the whole script, from 0.
        scene_index: Index of the scene it belongs to.
        description: Its action text; for a dialogue-only shot, the lines as `NAME: line`.
        duration_s: Planned duration from the reading-rate model.
        dialogue: Lines spoken in the shot, in order.
        characters: Speakers and known characters named in the action, first seen first.
        location: From the scene heading ("KITCHEN"); empty when unknown.
        time_of_day: From the scene heading ("NIGHT", "夜"); empty when unknown.
        camera_hints: Normalised camera language found in the text ("close-up", "push in").
    """

    index: int
    scene_index: int
    description: str
    duration_s: float
    dialogue: list[DialogueLine] = field(default_factory=list)
    characters: list[str] = field(default_factory=list)
    location: str = ""
    time_of_day: str = ""
    camera_hints: list[str] = field(default_factory=list)


@dataclass
class Scene:
    """One scene: its heading, where and when it happens, and its shots."""

    index: int
    heading: str
    location: str = ""
    time_of_day: str = ""
    shots: list[Shot] = field(default_factory=list)


@dataclass
class Script:
    """A parsed script: its detected format and its scenes, in order."""

    format: str
    scenes: list[Scene]

    @property
    def shots(self) -> list[Shot]:
        """Every shot of every scene, in script order."""
        return [shot for scene in self.scenes for shot in scene.shots]

    @property
    def duration_s(self) -> float:
        """Planned length of the whole cut."""
        return round(sum(shot.duration_s for shot in self.shots), 3)


def parse_script(text: str, *, format: str = "auto", max_shot_s: float = 10.0) -> Script:
    """Parses a script into scenes and shots of at most `max_shot_s` seconds each.

    Args:
        text: Plain Chinese/English prose or a Fountain screenplay.
        format: "plain", "fountain", or "auto" to detect it from the text.
        max_shot_s: Longest allowed shot; at least `MIN_SHOT_S`.

    Returns:
        The scenes in script order, each with its shots; shot indices run across scenes.

    Raises:
        ScriptError: The script is empty, longer than `MAX_SCRIPT_CHARS`, or has nothing
            to shoot.
        ValueError: `format` or `max_shot_s` is not valid.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, not {format!r}")
    if max_shot_s < MIN_SHOT_S:
        raise ValueError(f"max_shot_s must be at least {MIN_SHOT_S} s, not {max_shot_s}")
    if not text:
        raise ScriptError("script is empty")
    if len(text) > MAX_SCRIPT_CHARS:
        raise ScriptError(
            f"script has {len(text):,} characters, more than the {MAX_SCRIPT_CHARS:,} allowed"
        )
    cleaned = clean_text(text)
    if not cleaned:
        raise ScriptError("script has only whitespace or control characters")
    if format == "auto":
        format = detect_format(cleaned)
    drafts = fountain_scenes(cleaned) if format == "fountain" else plain_scenes(cleaned)
    script = _build(format, drafts, max_shot_s)
    if not script.shots:
        raise ScriptError("script has no action or dialogue to turn into shots")
    return script


def _build(format: str, drafts: list[SceneDraft], max_s: float) -> Script:
    cast = _Cast(dict.fromkeys(name for draft in drafts for name in draft.cast))
    scenes: list[Scene] = []
    index = 0
    for draft in drafts:
        if not draft.beats and not draft.heading:
            continue
        scene = Scene(len(scenes), draft.heading, draft.location, draft.time_of_day)
        for description, dialogue, hints in _group(draft.beats, max_s):
            text = description or " / ".join(f"{d.speaker}: {d.line}" for d in dialogue)
            seconds = estimate_s(description) + sum(
                estimate_s(d.line, speech=True) for d in dialogue
            )
            scene.shots.append(
                Shot(
                    index=index,
                    scene_index=scene.index,
                    description=text,
                    duration_s=min(max_s, round(max(MIN_SHOT_S, seconds), 1)),
                    dialogue=dialogue,
                    characters=_characters(description, dialogue, cast),
                    location=scene.location,
                    time_of_day=scene.time_of_day,
                    camera_hints=camera_hints(" ".join([hints, description])),
                )
            )
            index += 1
        scenes.append(scene)
    return Script(format=format, scenes=scenes)


def _group(
    beats: list[tuple[str, str, str]], max_s: float
) -> list[tuple[str, list[DialogueLine], str]]:
    """Groups beats into shots: (action text, dialogue lines, hint text carried in)."""
    shots: list[tuple[str, list[DialogueLine], str]] = []
    pending_hints = ""
    used_s = max_s  # no open shot yet
    for kind, text, speaker in beats:
        if kind == "hint":
            pending_hints += " " + text  # a transition ("PAN TO:") shapes the next shot
        elif kind == "action":
            for chunk in split_to_fit(text, speech=False, max_s=max_s):
                shots.append((chunk, [], pending_hints.strip()))
                pending_hints, used_s = "", estimate_s(chunk)
        else:
            for piece in split_to_fit(text, speech=True, max_s=max_s):
                piece_s = estimate_s(piece, speech=True)
                if not shots or used_s + piece_s > max_s:  # a silent "…" line takes 0 s
                    shots.append(("", [], pending_hints.strip()))
                    pending_hints, used_s = "", 0.0
                shots[-1][1].append(DialogueLine(speaker, piece))
                used_s += piece_s
    return shots


class _Cast:
    """The script's characters, each with its pattern compiled once (a long cast would overflow
    `re`'s cache), indexed so that a shot tests only the names it could mention: looking for
    every name in every shot made a 200 K script naming tens of thousands of characters take
    half a minute.

    Latin names match whole words in any case ("ANNA" cue, "Anna" in action), so they are
    indexed by their first word: a match holds that word as a whole word of the text. Other
    names match as written and are indexed by their first two characters.
    """

    def __init__(self, names: Iterable[str]) -> None:
        self._by_word: dict[str, list[tuple[str, re.Pattern[str]]]] = defaultdict(list)
        self._by_start: dict[str, list[tuple[str, re.Pattern[str]]]] = defaultdict(list)
        self._always: list[tuple[str, re.Pattern[str]]] = []  # Latin names without a word
        for name in names:
            if name.isascii():
                entry = (name, re.compile(rf"(?i:\b{re.escape(name)}\b)"))
                words = _NAME_WORD_RE.findall(name.lower())
                (self._by_word[words[0]] if words else self._always).append(entry)
            else:
                self._by_start[name[:2]].append((name, re.compile(re.escape(name))))

    def named_in(self, description: str) -> list[str]:
        """The characters `description` names, in the order it first names them."""
        # `lowered` keeps every case-insensitive match of a Latin name (see `_ASCII_FOLD`).
        lowered = description.translate(_ASCII_FOLD).lower()
        # Every one- and two-character run: a one-character name is its own start.
        starts = set(description) | {description[i : i + 2] for i in range(len(description))}
        candidates = [
            *self._always,
            *(
                e
                for word in set(_NAME_WORD_RE.findall(lowered))
                for e in self._by_word.get(word, ())
            ),
            *(e for start in starts for e in self._by_start.get(start, ())),
        ]
        found = []
        for name, pattern in candidates:
            match = pattern.search(description)
            if match:
                found.append((match.start(), name))
        return [name for _, name in sorted(found)]


def _characters(description: str, dialogue: list[DialogueLine], cast: _Cast) -> list[str]:
    speakers = [d.speaker for d in dialogue if d.speaker]
    return list(dict.fromkeys([*speakers, *cast.named_in(description)]))
