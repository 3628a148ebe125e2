"""Reads a prompt's camera language, framing and colour/mood words (English and Chinese).

The animatic backend draws what this finds, and the previs pipeline can plan shots from it;
both want the same answer for the same words, so the reading is one pure function,
`read_shot_language`. It is keyword-based on purpose: predictable, instant and testable,
which is what a storyboard needs, not understanding.

Matching is case-insensitive. English phrases match as whole words (so "static" is not found
in "ecstatic") with a space or a hyphen between words ("push-in"); Chinese keywords match as
substrings. When a prompt names several moves or framings, the one written first wins, and
at the same position the longer phrase wins ("pan left" over "pan", "左摇" before "摇镜").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar


class CameraMove(StrEnum):
    """How the simulated camera moves over the clip."""

    PUSH_IN = "push in"
    PULL_OUT = "pull out"
    PAN_LEFT = "pan left"
    PAN_RIGHT = "pan right"
    TILT_UP = "tilt up"
    TILT_DOWN = "tilt down"
    CRANE_UP = "crane up"
    TRACKING = "tracking"
    ORBIT = "orbit"
    STATIC = "static"
    HANDHELD = "handheld"


class Framing(StrEnum):
    """How the shot is framed: sets the starting scale, angle and overlays of the animatic."""

    MEDIUM = "medium"
    CLOSE_UP = "close-up"
    WIDE = "wide"
    LOW_ANGLE = "low angle"
    HIGH_ANGLE = "high angle"
    OVER_THE_SHOULDER = "over the shoulder"
    FISHEYE = "fisheye"


class Palette(StrEnum):
    """The colour scheme a prompt's colour and mood words ask for."""

    NEUTRAL = "neutral"
    WARM = "warm"
    COLD = "cold"
    NIGHT = "night"
    GREEN = "green"
    NEON = "neon"
    GREY = "grey"
    ROMANTIC = "romantic"
    TENSE = "tense"


DEFAULT_MOVE = CameraMove.PUSH_IN
"""A gentle push in: what the animatic does when the prompt names no move (a still looks
broken in a player; a slow push reads as an intentional shot)."""


@dataclass(frozen=True)
class ShotLanguage:
    """What a prompt says about its shot.

    Attributes:
        move: The camera move; `DEFAULT_MOVE` when the prompt names none.
        framing: The framing; `Framing.MEDIUM` when the prompt names none.
        palette: The colour scheme of the mood words (`Palette.NEUTRAL` without any).
        mood_words: The colour/mood keywords found, lower-cased, in prompt order.
        move_named: Whether the prompt named the move (False when it is the default).
        framing_named: Whether the prompt named the framing.
    """

    move: CameraMove
    framing: Framing
    palette: Palette
    mood_words: tuple[str, ...]
    move_named: bool
    framing_named: bool

    @property
    def label(self) -> str:
        """The storyboard label, framing then move: "CLOSE-UP · PUSH IN"."""
        return f"{self.framing.upper()} · {self.move.upper()}"


# English entries are regular expressions over lower-cased text, with " " meaning a space or
# a hyphen; entries with CJK characters are plain substrings.
_MOVES: dict[CameraMove, tuple[str, ...]] = {
    CameraMove.PUSH_IN: (
        r"push(?:es|ing)? in",
        r"dolly(?:ing)? in",
        r"dollies in",
        r"zoom(?:s|ing)? in",
        r"slow push",
        "推进",
        "推镜",
        "推近",
    ),
    CameraMove.PULL_OUT: (
        r"pull(?:s|ing)? (?:out|back)",
        r"dolly(?:ing)? (?:out|back)",
        r"dollies (?:out|back)",
        r"zoom(?:s|ing)? out",
        "拉远",
        "拉镜",
    ),
    CameraMove.PAN_LEFT: (r"pan(?:s|ning)? (?:to the )?left", "左摇"),
    # A bare pan goes right, as the eye reads.
    CameraMove.PAN_RIGHT: (
        r"pan(?:s|ning)? (?:to the )?right",
        r"pan(?:s|ning)?",
        r"pan shot",
        "右摇",
        "摇镜",
    ),
    CameraMove.TILT_UP: (r"tilt(?:s|ing)? up", r"tilt(?:s|ing)?", "上摇"),
    CameraMove.TILT_DOWN: (r"tilt(?:s|ing)? down", "下摇"),
    # "crane" alone is too often the bird, so the move needs a camera word with it.
    CameraMove.CRANE_UP: (
        r"crane(?:s|d)? (?:up|shot|move|rises)",
        r"craning(?: up)?",
        r"jib(?:s)? up",
        "升降",
        "升镜",
    ),
    # Likewise "truck" alone is usually the vehicle.
    CameraMove.TRACKING: (
        r"tracking(?: shot)?",
        r"track(?:s)? (?:left|right|alongside|with)",
        r"truck(?:s|ing)? (?:left|right)",
        r"trucking(?: shot)?",
        r"dolly(?:ing)? (?:left|right|alongside)",
        "跟拍",
        "移镜",
        "跟镜",
    ),
    CameraMove.ORBIT: (
        r"orbit(?:s|ing)?",
        r"arc(?:s|ing)? (?:shot|around)",
        r"circles? around",
        r"360(?:°| degree)",
        "环绕",
        "环拍",
    ),
    CameraMove.STATIC: (
        r"static(?: shot| camera)?",
        r"locked off",
        r"still camera",
        r"tripod shot",
        r"no camera (?:move|movement|motion)",
        "固定镜头",
        "固定机位",
    ),
    CameraMove.HANDHELD: (r"hand[\s-]*held", r"shaky[\s-]*cam", "手持"),
}

_FRAMINGS: dict[Framing, tuple[str, ...]] = {
    Framing.CLOSE_UP: (r"(?:extreme )?close[\s-]*up", r"macro", "特写", "近景"),
    Framing.WIDE: (
        r"wide(?: shot| angle)",
        r"establishing shot",
        r"long shot",
        r"extreme wide",
        "远景",
        "全景",
    ),
    Framing.MEDIUM: (r"medium(?: close up)? shot", r"mid shot", "中景"),
    # 仰拍 is the low-angle *framing*, not a tilt: the camera is placed low and looks up.
    Framing.LOW_ANGLE: (r"low angle", r"worm'?s eye", "仰拍", "仰视"),
    Framing.HIGH_ANGLE: (r"high angle", r"bird'?s eye", r"top down", "俯拍", "俯视", "鸟瞰"),
    Framing.OVER_THE_SHOULDER: (r"over the shoulder", "过肩"),
    Framing.FISHEYE: (r"fish[\s-]*eye", "鱼眼"),
}

_PALETTES: dict[Palette, tuple[str, ...]] = {
    Palette.WARM: (
        r"warm(?:th)?",
        r"golden(?: hour)?",
        r"gold",
        r"sunset",
        r"sunrise",
        r"amber",
        "暖",
        "金色",
        "黄昏",
        "夕阳",
        "日落",
    ),
    Palette.COLD: (
        r"cold",
        r"blue",
        r"winter(?:y)?",
        r"icy",
        r"frost(?:y)?",
        r"snow(?:y)?",
        "冷",
        "蓝",
        "冬",
        "雪",
    ),
    Palette.NIGHT: (
        r"night(?:time)?",
        r"midnight",
        r"dark(?:ness)?",
        r"noir",
        r"moonlit",
        "夜",
        "黑暗",
    ),
    Palette.GREEN: (r"green(?:ery)?", r"forest", r"jungle", r"meadow", "森林", "绿", "草地"),
    Palette.NEON: (r"neon", r"cyberpunk", r"synthwave", "霓虹", "赛博"),
    Palette.GREY: (
        r"desaturated",
        r"gr[ae]y",
        r"overcast",
        r"muted",
        r"monochrome",
        "灰",
        "阴天",
    ),
    Palette.ROMANTIC: (r"romantic", r"romance", r"pink", "粉", "浪漫"),
    Palette.TENSE: (
        r"tense",
        r"tension",
        r"suspense(?:ful)?",
        r"thriller",
        r"ominous",
        "紧张",
        "悬疑",
        "惊悚",
    ),
}


_Key = TypeVar("_Key", CameraMove, Framing, Palette)


def _compile(keyword: str) -> re.Pattern[str]:
    if re.search(r"[\u3000-\u9fff]", keyword):
        return re.compile(re.escape(keyword))
    return re.compile(r"(?<![a-z0-9])" + keyword.replace(" ", r"[\s-]+") + r"(?![a-z0-9])")


def _table(entries: dict[_Key, tuple[str, ...]]) -> tuple[tuple[_Key, re.Pattern[str]], ...]:
    return tuple((key, _compile(word)) for key, words in entries.items() for word in words)


_MOVE_PATTERNS = _table(_MOVES)
_FRAMING_PATTERNS = _table(_FRAMINGS)
_PALETTE_PATTERNS = _table(_PALETTES)


def _hits(
    text: str, table: tuple[tuple[_Key, re.Pattern[str]], ...]
) -> list[tuple[int, int, _Key, str]]:
    """Every keyword match as (start, -length, key, matched text), in prompt order."""
    return sorted(
        (match.start(), -len(match.group()), key, match.group())
        for key, pattern in table
        for match in pattern.finditer(text)
    )


def read_shot_language(prompt: str) -> ShotLanguage:
    """What `prompt` says about its camera move, framing and palette.

    Args:
        prompt: The generation prompt, in English, Chinese or both.

    Returns:
        The first-named move and framing (defaults when none is named) and the palette with
        the most mood words (ties go to the one named first).
    """
    text = prompt.lower()
    moves = _hits(text, _MOVE_PATTERNS)
    framings = _hits(text, _FRAMING_PATTERNS)
    moods = _hits(text, _PALETTE_PATTERNS)
    palette = Palette.NEUTRAL
    if moods:
        counts: dict[Palette, int] = {}
        for _, _, key, _ in moods:  # dict order = order of first mention, which breaks ties
            counts[key] = counts.get(key, 0) + 1
        palette = max(counts, key=lambda key: counts[key])
    return ShotLanguage(
        move=moves[0][2] if moves else DEFAULT_MOVE,
        framing=framings[0][2] if framings else Framing.MEDIUM,
        palette=palette,
        mood_words=tuple(word for _, _, _, word in moods),
        move_named=bool(moves),
        framing_named=bool(framings),
    )
