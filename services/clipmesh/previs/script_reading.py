"""Reading a script's text into scenes of beats, before they are cut into shots.

The text is cleaned, then read as Fountain (by `screenplain`) or as plain Chinese or English
prose (by the heading and speaker patterns below): split into scenes at their headings, each
scene's lines sorted into action, dialogue and transitions in script order.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from screenplain import types as ftypes
from screenplain.parsers import fountain

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
# Times of day a Chinese heading names, in English for prompts rendered in English.
ZH_TIMES_OF_DAY = {
    "日": "day", "夜": "night", "白天": "daytime", "夜晚": "night", "清晨": "early morning",
    "早晨": "morning", "黎明": "dawn", "凌晨": "before dawn", "上午": "morning",
    "中午": "noon", "午后": "afternoon", "下午": "afternoon", "黄昏": "dusk",
    "傍晚": "evening", "日落": "sunset", "晚上": "evening", "深夜": "late night",
    "日景": "day", "夜景": "night",
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


@dataclass
class SceneDraft:
    """One scene as read from the text, before it is cut into shots.

    Attributes:
        heading: The heading as written; for plain text without one, its first line.
        location: From the heading or a `地点：` line; empty when unknown.
        time_of_day: From the heading or a `时间：` line; empty when unknown.
        beats: ("action", text, "") / ("dialogue", line, speaker) / ("hint", text, "") in
            script order; a hint is a transition that shapes the next shot.
        cast: Speakers and listed characters, first seen first.
    """

    heading: str
    location: str = ""
    time_of_day: str = ""
    beats: list[tuple[str, str, str]] = field(default_factory=list)
    cast: list[str] = field(default_factory=list)


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
    times = [word for word in words if word in ZH_TIMES_OF_DAY]
    places = [w for w in words if w not in ZH_TIMES_OF_DAY and w not in _ZH_PLACE_WORDS and w]
    return " ".join(places), " ".join(times)


def fountain_scenes(text: str) -> list[SceneDraft]:
    """Reads a cleaned Fountain screenplay into scenes; the first holds what precedes a slug."""
    screenplay = fountain.parse_lines(text.split("\n"))
    scenes = [SceneDraft(heading="")]
    for paragraph in screenplay:
        if isinstance(paragraph, ftypes.Slug):
            heading = str(paragraph.line).strip()
            scenes.append(SceneDraft(heading, *parse_heading(heading)))
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


def _add_fountain_dialog(scene: SceneDraft, dialog: ftypes.Dialog) -> None:
    cue = _CUE_EXTENSION_RE.sub("", str(dialog.character)).strip()
    spoken = [str(text).strip() for parenthetical, text in dialog.blocks if not parenthetical]
    if camera_hints(cue):
        # "WIDE SHOT" above an action line reads as a character cue in Fountain: it is action.
        scene.beats.append(("action", " ".join([f"{cue}.", *spoken]), ""))
        return
    scene.cast.append(cue)
    scene.beats.append(("dialogue", " ".join(spoken), cue))


def plain_scenes(text: str) -> list[SceneDraft]:
    """Reads cleaned plain prose into scenes, split at headings or else at blank lines."""
    lines = text.split("\n")
    has_headings = any(_is_plain_heading(line) for line in lines)
    scenes = [SceneDraft(heading="")]
    for line in lines:
        if not line:
            # Without headings, blank-line-separated blocks are the scenes.
            if not has_headings and scenes[-1].beats:
                scenes.append(SceneDraft(heading=""))
            continue
        if _is_plain_heading(line):
            scenes.append(SceneDraft(line, *parse_heading(line)))
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
    return bool(words & (_ZH_PLACE_WORDS | ZH_TIMES_OF_DAY.keys()))


def _add_plain_line(scene: SceneDraft, line: str) -> None:
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
