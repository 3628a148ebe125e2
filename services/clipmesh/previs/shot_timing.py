"""How long text takes on screen, and cutting text into pieces that each fit a shot.

The camera needs time to show action and the actors time to say lines, counted per English
word or CJK character. Text longer than a shot is cut at sentence ends, then at clause ends,
and as a last resort between words or CJK characters, so every piece fits however the text
is written.
"""

from __future__ import annotations

import itertools
import re

# Reading rates: how fast the camera shows action, and the actors say lines.
ACTION_WORDS_PER_S, ACTION_CJK_PER_S = 2.5, 5.0
SPEECH_WORDS_PER_S, SPEECH_CJK_PER_S = 3.0, 4.0

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_CJK_RE = re.compile(f"[{_CJK}]")
_WORD_RE = re.compile(r"[A-Za-z0-9]+(?:['’-][A-Za-z0-9]+)*")
# Last-resort cuts go before each word or CJK character, the units `estimate_s` counts, so
# the pieces' durations add up ("0.0.0…" is one run of text but many words).
_TOKEN_RE = re.compile(rf"[{_CJK}]|[A-Za-z0-9]+(?:['’-][A-Za-z0-9]+)*")
# (?<!\.): a run of dots is tried from its first dot only, else a long run is quadratic.
_SENTENCE_END_RE = re.compile(r"(?:[。！？!?…]+|(?<!\.)\.+(?=\s|$))[\"”」』’)）]*\s*")
_CLAUSE_END_RE = re.compile(r"[，,；;、：:]\s*")


def estimate_s(text: str, *, speech: bool = False) -> float:
    """Seconds needed to show `text` as action, or to say it when `speech` is true."""
    cjk = len(_CJK_RE.findall(text))
    words = len(_WORD_RE.findall(_CJK_RE.sub(" ", text)))
    if speech:
        return cjk / SPEECH_CJK_PER_S + words / SPEECH_WORDS_PER_S
    return cjk / ACTION_CJK_PER_S + words / ACTION_WORDS_PER_S


def split_to_fit(text: str, *, speech: bool, max_s: float) -> list[str]:
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
