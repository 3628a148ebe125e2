"""Script in, scenes and shots out: the first stage of the previs pipeline.

A script is plain prose (Chinese or English) or a Fountain screenplay. It is cleaned, split
into scenes at their headings, and each scene's action and dialogue is cut into shots of at
most `max_shot_s` seconds. Fountain is parsed by `screenplain`; plain text by the heading and
speaker patterns below.

Duration model (how long the camera needs to show the action, or the actors to say a line):

* action: 2.5 English words/s, 5 CJK characters/s;
* dialogue: 3 English words/s, 4 CJK characters/s;
* a shot lasts the sum of its action and dialogue, and at least `MIN_SHOT_S`.

Each action paragraph starts a shot; the dialogue after it joins that shot while it fits, and
otherwise starts a dialogue-only shot. Text longer than a shot is split at sentence ends
(。！？.!?), then at commas, and as a last resort between words or CJK characters, so every shot
fits however the text is written.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from screenplain import types as ftypes
from screenplain.parsers import fountain

MAX_SCRIPT_CHARS = 200_000
MIN_SHOT_S = 2.0
ACTION_WORDS_PER_S, ACTION_CJK_PER_S = 2.5, 5.0
SPEECH_WORDS_PER_S, SPEECH_CJK_PER_S = 3.0, 4.0
FORMATS = ("auto", "plain", "fountain")

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_CJK_RE = re.compile(f"[{_CJK}]")
_WORD_RE = re.compile(r"[A-Za-z0-9]+(?:['’-][A-Za-z0-9]+)*")
# Last-resort cuts go before each word or CJK character, the units `estimate_s` counts, so
# the pieces' durations add up ("0.0.0…" is one run of text but many words).
_TOKEN_RE = re.compile(rf"[{_CJK}]|[A-Za-z0-9]+(?:['’-][A-Za-z0-9]+)*")
# (?<!\.): a run of dots is tried from its first dot only, else a long run is quadratic.
_SENTENCE_END_RE = re.compile(r"(?:[。！？!?…]+|(?<!\.)\.+(?=\s|$))[\"”」』’)）]*\s*")
_CLAUSE_END_RE = re.compile(r"[，,；;、：:]\s*")

# Camera language → normalised hint. Ambiguous English words ("pan", "wide") only count in
# capitals, the way screenplays write camera directions; phrases count in any case.
_CAMERA_HINTS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), hint)
    for pattern, hint in (
        (r"(?i:\bclose[- ]?ups?\b|\bclose on\b)|\bE?CU\b|大?特写", "close-up"),
        (r"近景", "medium close-up"),
        (r"(?i:\bmedium shot\b)|\bMS\b|中景", "medium"),
        (
            r"(?i:\bwide shot\b|\bwide on\b|\blong shot\b|\bestablishing\b)|\bWIDE\b|远景|全景",
            "wide",
        ),
        (r"(?i:\bpans? (?:to|across|over|left|right)\b)|\bPANS?\b|摇镜头|横摇", "pan"),
        (r"(?i:\bangle on\b)", "angle on"),
        (r"\bPOV\b|(?i:\bpoint of view\b)|主观镜头|主观视角", "pov"),
        (r"(?i:\bpush(?:es)? in\b|\bdolly in\b)|推镜头|推近|镜头推", "push in"),
        (r"(?i:\bpull(?:s)? (?:back|out)\b|\bdolly out\b)|拉镜头|拉远", "pull out"),
        (r"(?i:\bzoom(?:s)? in\b)", "zoom in"),
        (r"(?i:\bhigh angle\b|\boverhead\b|\bbird'?s[- ]eye\b)|俯拍|俯视|俯瞰", "high angle"),
        (r"(?i:\blow angle\b)|仰拍|仰视", "low angle"),
        (r"(?i:\btracking shot\b|\btracks with\b)|\bTRACKING\b|跟拍|跟镜头", "tracking"),
        (r"(?i:\baerial shot\b|\bdrone shot\b)|\bAERIAL\b|航拍", "aerial"),
        (r"(?i:\bover the shoulder\b)|\bOTS\b|过肩", "over-the-shoulder"),
        (r"(?i:\bhandheld\b|\bhand-held\b)|手持", "handheld"),
    )
)

# Plain-text scene headings: 第一场 / 场景一 / Scene 1 / INT. … / "1. 咖啡馆 内 夜".
_NUM = r"[0-9一二三四五六七八九十百零〇两]+"
_ZH_HEADING_RE = re.compile(
    rf"^(?:第{_NUM}[场幕]|场景?{_NUM}(?=[\s:：.、]|$))[\s:：.、]*(?P<rest>.*)$"
)
_EN_HEADING_RE = re.compile(r"^(?i:scene)\s+(?:\d+|[IVXLC]+)\b[\s:.\-–—]*(?P<rest>.*)$")
_SLUG_RE = re.compile(r"^(?i:int\.?/ext|i/e|int|ext|est)[.\s]\s*(?P<rest>.*)$")
_NUMBERED_HEADING_RE = re.compile(r"^\d+[.、]\s*(?P<rest>\S.{0,40})$")
_ZH_PLACE_WORDS = {"内", "外", "内外", "室内", "室外", "内景", "外景"}
_ZH_TIME_WORDS = {
    "日", "夜", "白天", "夜晚", "清晨", "早晨", "黎明", "凌晨", "上午", "中午", "午后", "下午",
    "黄昏", "傍晚", "日落", "晚上", "深夜", "日景", "夜景",
}  # fmt: skip

# Plain-text speech: `林夏：…`, `林夏（轻声）：…`, `ANNA: …`; quoted “…” / "…" / 「…」.
_SPEAKER_RE = re.compile(
    r"^(?P<name>[\u4e00-\u9fff·]{1,8}|[A-Z][A-Za-z.'-]*(?: [A-Z][A-Za-z.'-]*){0,2})"
    r"\s*(?:[（(][^）)]*[）)])?\s*[：:]\s*(?P<line>\S.*)$"
)
_QUOTE_RE = re.compile(
    r"(?:(?P<name>[\u4e00-\u9fff]{1,4})(?:低声|轻声|大声)?(?:说|问|道|喊|答|叫道)[：:，,]?)?"
    # An opening mark ends the search for a close: "“" * n would otherwise be quadratic.
    r"(?:“(?P<a>[^“”]+)”|\"(?P<b>[^\"]+)\"|「(?P<c>[^「」]+)」)"
)
_META_KEYS = {"人物", "角色", "出场人物", "时间", "地点", "场景", "Characters", "Cast"}
_FOUNTAIN_HINT_RE = re.compile(
    r"^(?:(?i:int\.?/ext|i/e|int|ext|est)[.\s]|\.[^.\s]"
    r"|(?:Title|Credit|Author|Authors|Source|Draft date|Contact)\s*:|[A-Z ]+TO:$)",
    re.MULTILINE,
)
_CUE_EXTENSION_RE = re.compile(r"\s*\([^)]*\)|\s*\^$|^@")
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


@dataclass
class _SceneDraft:
    heading: str
    location: str = ""
    time_of_day: str = ""
    # ("action", text, "") / ("dialogue", line, speaker) / ("hint", text, "") in script order.
    beats: list[tuple[str, str, str]] = field(default_factory=list)
    cast: list[str] = field(default_factory=list)


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
    drafts = _fountain_scenes(cleaned) if format == "fountain" else _plain_scenes(cleaned)
    script = _build(format, drafts, max_shot_s)
    if not script.shots:
        raise ScriptError("script has no action or dialogue to turn into shots")
    return script


def clean_text(text: str) -> str:
    """Strips BOM and control characters, half-widths full-width ASCII, tidies whitespace.

    Chinese punctuation (，。！？：) stays full-width: it marks the sentence and speaker
    boundaries the splitter relies on. Spaces around it are dropped.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    chars = []
    for char in text:
        code = ord(char)
        if char in {"\n", " "}:
            chars.append(char)
        elif code == 0x3000 or unicodedata.category(char) == "Zs":
            chars.append(" ")
        elif unicodedata.category(char)[0] == "C":
            continue  # BOM, zero-width and control characters
        elif 0xFF10 <= code <= 0xFF19 or 0xFF21 <= code <= 0xFF3A or 0xFF41 <= code <= 0xFF5A:
            chars.append(unicodedata.normalize("NFKC", char))
        elif code == 0xFF0E:  # full-width full stop, as in "１．咖啡馆"
            chars.append(".")
        else:
            chars.append(char)
    lines = [re.sub(r" {2,}", " ", line).strip() for line in "".join(chars).split("\n")]
    lines = [re.sub(r" ?([，。！？；：、“”「」]) ?", r"\1", line) for line in lines]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def detect_format(text: str) -> str:
    """Returns "fountain" when the text has scene headings, title-page keys or transitions."""
    return "fountain" if _FOUNTAIN_HINT_RE.search(text) else "plain"


def estimate_s(text: str, *, speech: bool = False) -> float:
    """Seconds needed to show `text` as action, or to say it when `speech` is true."""
    cjk = len(_CJK_RE.findall(text))
    words = len(_WORD_RE.findall(_CJK_RE.sub(" ", text)))
    if speech:
        return cjk / SPEECH_CJK_PER_S + words / SPEECH_WORDS_PER_S
    return cjk / ACTION_CJK_PER_S + words / ACTION_WORDS_PER_S


def camera_hints(text: str) -> list[str]:
    """Normalised camera hints in `text`, in the order they first appear."""
    found = []
    for pattern, hint in _CAMERA_HINTS:
        match = pattern.search(text)
        if match:
            found.append((match.start(), hint))
    return list(dict.fromkeys(hint for _, hint in sorted(found)))


def parse_heading(heading: str) -> tuple[str, str]:
    """Splits a scene heading into (location, time of day); either may be empty."""
    for pattern in (_SLUG_RE, _ZH_HEADING_RE, _EN_HEADING_RE, _NUMBERED_HEADING_RE):
        match = pattern.match(heading)
        if match:
            heading = match["rest"]
            break
    if " - " in heading or re.search(r"\s[-–—]\s", heading):
        location, _, time_of_day = re.split(r"\s([-–—])\s", heading, maxsplit=1)
        return location.strip(" .").upper() if location.isascii() else location, time_of_day
    words = re.split(r"[\s/，,·]+", heading.strip())
    times = [word for word in words if word in _ZH_TIME_WORDS]
    places = [w for w in words if w not in _ZH_TIME_WORDS and w not in _ZH_PLACE_WORDS and w]
    return " ".join(places), " ".join(times)


def _fit(text: str, *, speech: bool, max_s: float) -> list[str]:
    """Cuts `text` into consecutive pieces that each take at most `max_s` seconds."""
    if estimate_s(text, speech=speech) <= max_s:
        return [text]
    pieces = []
    for sentence in _split_after(text, _SENTENCE_END_RE):
        if estimate_s(sentence, speech=speech) <= max_s:
            pieces.append(sentence)
            continue
        for clause in _split_after(sentence, _CLAUSE_END_RE):
            if estimate_s(clause, speech=speech) <= max_s:
                pieces.append(clause)
            else:  # one over-long clause: cut between words or CJK characters
                starts = [m.start() for m in _TOKEN_RE.finditer(clause)][1:]
                pieces.extend(_slices(clause, starts))
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if current and estimate_s(current + piece, speech=speech) > max_s:
            chunks.append(current.strip())
            current = ""
        current += piece
    chunks.append(current.strip())
    return [chunk for chunk in chunks if chunk]


def _split_after(text: str, boundary: re.Pattern[str]) -> list[str]:
    return _slices(text, [m.end() for m in boundary.finditer(text)])


def _slices(text: str, cuts: list[int]) -> list[str]:
    bounds = [0, *(cut for cut in cuts if 0 < cut < len(text)), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds) if a < b]


def _fountain_scenes(text: str) -> list[_SceneDraft]:
    screenplay = fountain.parse_lines(text.split("\n"))
    scenes = [_SceneDraft(heading="")]
    for paragraph in screenplay:
        if isinstance(paragraph, ftypes.Slug):
            heading = str(paragraph.line).strip()
            scenes.append(_SceneDraft(heading, *parse_heading(heading)))
        elif isinstance(paragraph, ftypes.Action):
            lines = " ".join(str(line).strip() for line in paragraph.lines)
            scenes[-1].beats.append(("action", lines.strip(), ""))
        elif isinstance(paragraph, ftypes.Transition):
            scenes[-1].beats.append(("hint", str(paragraph.line), ""))
        elif isinstance(paragraph, (ftypes.Dialog, ftypes.DualDialog)):
            pair = [paragraph] if isinstance(paragraph, ftypes.Dialog) else [
                paragraph.left, paragraph.right]  # fmt: skip
            for dialog in pair:
                _add_fountain_dialog(scenes[-1], dialog)
    return scenes


def _add_fountain_dialog(scene: _SceneDraft, dialog: ftypes.Dialog) -> None:
    cue = _CUE_EXTENSION_RE.sub("", str(dialog.character)).strip()
    spoken = [str(text).strip() for parenthetical, text in dialog.blocks if not parenthetical]
    if camera_hints(cue):
        # "WIDE SHOT" above an action line reads as a character cue in Fountain: it is action.
        scene.beats.append(("action", " ".join([f"{cue}.", *spoken]), ""))
        return
    scene.cast.append(cue)
    scene.beats.append(("dialogue", " ".join(spoken), cue))


def _plain_scenes(text: str) -> list[_SceneDraft]:
    lines = text.split("\n")
    has_headings = any(_is_plain_heading(line) for line in lines)
    scenes = [_SceneDraft(heading="")]
    for line in lines:
        if not line:
            # Without headings, blank-line-separated blocks are the scenes.
            if not has_headings and scenes[-1].beats:
                scenes.append(_SceneDraft(heading=""))
            continue
        if _is_plain_heading(line):
            scenes.append(_SceneDraft(line, *parse_heading(line)))
            continue
        scene = scenes[-1]
        scene.heading = scene.heading or line
        _add_plain_line(scene, line)
    return scenes


def _is_plain_heading(line: str) -> bool:
    if any(p.match(line) for p in (_ZH_HEADING_RE, _EN_HEADING_RE, _SLUG_RE)):
        return True
    numbered = _NUMBERED_HEADING_RE.match(line)
    words = set(re.split(r"[\s/，,·]+", numbered["rest"])) if numbered else set()
    return bool(words & (_ZH_PLACE_WORDS | _ZH_TIME_WORDS))


def _add_plain_line(scene: _SceneDraft, line: str) -> None:
    match = _SPEAKER_RE.match(line)
    name = match["name"] if match else ""
    if match and name in _META_KEYS:
        value = match["line"]
        if name in {"人物", "角色", "出场人物", "Characters", "Cast"}:
            scene.cast.extend(n for n in re.split(r"[、，,\s]+", value) if n)
        elif name == "时间":
            scene.time_of_day = scene.time_of_day or value
        else:
            scene.location = scene.location or value
        return
    if match and not camera_hints(name):
        line_text = match["line"].strip('“”"「」')
        scene.cast.append(name)
        scene.beats.append(("dialogue", line_text, name))
        return
    # Quoted speech leaves the action; the action comes first, then what is said in it.
    quotes = list(_QUOTE_RE.finditer(line))
    action = re.sub(r"\s+", " ", _QUOTE_RE.sub(" ", line)).strip(" ，,：:")
    if action:
        scene.beats.append(("action", action, ""))
    for quote in quotes:
        speaker = quote["name"] or ""
        scene.cast.extend([speaker] if speaker else [])
        scene.beats.append(("dialogue", quote["a"] or quote["b"] or quote["c"], speaker))


def _build(format: str, drafts: list[_SceneDraft], max_s: float) -> Script:
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
            for chunk in _fit(text, speech=False, max_s=max_s):
                shots.append((chunk, [], pending_hints.strip()))
                pending_hints, used_s = "", estimate_s(chunk)
        else:
            for piece in _fit(text, speech=True, max_s=max_s):
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
