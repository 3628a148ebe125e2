"""Shot brief in, text-to-video prompt out: the previs prompt builder.

A prompt follows one pattern, in this order:

    mood + subject action + environment + camera language + lighting/colour + style

Every phrase outside the shot's own text comes from the template library
(`templates/*.json`, loaded by :class:`TemplateLibrary`), in Chinese or English, so the
builder is deterministic and the lineage can name the template id behind each slot.

Camera defaults, used only where the shot's camera hints say nothing:

* size: wide when no character is named (an establishing shot); close-up under 3 s;
  wide from 8 s; medium otherwise;
* angle: eye level;
* movement: static under 3 s, slow push in under 6 s, smooth dolly from 6 s.

Lighting: a practical source named in the description (candles, neon) wins, then the time
of day (NIGHT → moonlit night, DAY/日 → soft daylight, dusk → golden hour), then any
lighting keyword in the description, else soft daylight. Colour is the lighting's default.

A prompt renders in either language from the same state, so the text–video check can read a
Chinese shot's prompt in English (``render(replace(state, language="en"), ...)``): the
template phrases and the heading's time of day are translated; the shot's own words (action,
place, names, free-text notes) stay as the script wrote them.

Providers cap prompt length, so :func:`render` never exceeds ``max_chars``: it drops the
environment, then the mood, then shortens the subject at a word boundary, and records
what it trimmed in the lineage. Director's notes are applied by
:func:`clipmesh.previs.revisions.revise`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from clipmesh.previs.script_reading import ZH_TIMES_OF_DAY
from clipmesh.previs.templates import (
    Template,
    TemplateError,
    TemplateLibrary,
    best_match,
)

__all__ = [
    "Language",
    "Lineage",
    "PromptState",
    "RevisionRecord",
    "ShotBrief",
    "ShotPrompt",
    "Template",
    "TemplateError",
    "TemplateLibrary",
    "build_prompt",
    "render",
]

Language = Literal["zh", "en"]  # also in templates; a Literal is only a type

# Movements a variant may swap in when the shot's hints leave the movement open.
VARIANT_MOVEMENTS = ("push_in", "dolly", "tracking", "orbit", "static", "crane_up")
_SEP = {"en": ", ", "zh": "，"}
_END = {"en": ". ", "zh": "。"}
_TRIM_PUNCT = " ,，。、;；.:："


@dataclass(frozen=True)
class ShotBrief:
    """What the prompt builder needs to know about one shot.

    Attributes:
        description: The action in the shot, in the shot's language.
        characters: Names of the characters on screen.
        location: Where the shot takes place.
        time_of_day: As written in the script ("NIGHT", "日", "dusk"...).
        camera_hints: Camera words from the script ("close-up", "push in", "俯拍"...).
        duration_s: Planned length of the shot in seconds.
        language: Language of the prompt, "zh" or "en".
    """

    description: str
    characters: tuple[str, ...] = ()
    location: str = ""
    time_of_day: str = ""
    camera_hints: tuple[str, ...] = ()
    duration_s: float = 4.0
    language: Language = "en"


@dataclass(frozen=True)
class PromptState:
    """The structured choices a prompt is rendered from; revisions edit these, not text."""

    language: Language
    subject: str
    characters: tuple[str, ...]
    location: str
    time_of_day: str
    slots: tuple[tuple[str, str], ...]  # (slot, template id): mood, size, angle, movement...
    pace: tuple[str, str] | None = None  # (en, zh) phrase set by a pace rule
    directions: tuple[tuple[str, str], ...] = ()  # (en, zh) phrases from rules
    notes: tuple[str, ...] = ()  # free-text notes no rule understood
    max_chars: int = 800
    variant: int = 0

    def slot(self, name: str) -> str:
        """Returns the template id chosen for ``name``."""
        return dict(self.slots)[name]

    def with_slot(self, name: str, template_id: str) -> PromptState:
        """Returns a copy with slot ``name`` set to ``template_id``."""
        slots = dict(self.slots)
        slots[name] = template_id
        return dataclasses.replace(self, slots=tuple(slots.items()))


@dataclass(frozen=True)
class RevisionRecord:
    """One director's note and what it did.

    Attributes:
        note: The note as given.
        rule_ids: Ids of the rules in revisions.json that matched; empty when none did.
        changes: Human-readable changes ("size: wide → full").
    """

    note: str
    rule_ids: tuple[str, ...]
    changes: tuple[str, ...]

    @property
    def matched(self) -> bool:
        """Whether any rule understood the note (else it was kept as free text)."""
        return bool(self.rule_ids)


@dataclass(frozen=True)
class Lineage:
    """Where a prompt came from.

    Attributes:
        slots: Template id used for each slot (mood, size, angle, movement, lighting...).
        revisions: Director's notes applied, oldest first.
        trimmed: Parts dropped or shortened to fit ``max_chars`` ("environment", "mood"...).
        variant: The variant number the prompt was built with.
    """

    slots: dict[str, str]
    revisions: tuple[RevisionRecord, ...] = ()
    trimmed: tuple[str, ...] = ()
    variant: int = 0

    @property
    def was_trimmed(self) -> bool:
        """Whether anything was cut to keep within the provider's limit."""
        return bool(self.trimmed)


@dataclass(frozen=True)
class ShotPrompt:
    """A rendered prompt with its negative prompt, lineage and the state to revise it."""

    prompt: str
    negative_prompt: str
    language: Language
    lineage: Lineage
    state: PromptState = field(repr=False)


def build_prompt(
    brief: ShotBrief,
    library: TemplateLibrary,
    *,
    style: str = "cinematic",
    variant: int = 0,
    language: Language | None = None,
    max_chars: int = 800,
) -> ShotPrompt:
    """Builds the prompt for one shot.

    Args:
        brief: The shot.
        library: Loaded templates.
        style: Style template id or keyword ("cinematic", "anime", "水墨"...).
        variant: 0 for the base prompt; 1..N rotate style, colour and any movement the
            hints leave open, so each variant differs from the others and is reproducible.
        language: Forces "zh" or "en"; defaults to the brief's language.
        max_chars: Provider limit on prompt length.

    Returns:
        The rendered prompt.

    Raises:
        ValueError: If ``style`` names no style template or ``variant`` is negative.
    """
    if variant < 0:
        raise ValueError(f"variant must be >= 0, got {variant}")
    base_style = _find(library, "style", style)
    if base_style is None:
        known = ", ".join(t.id for t in library.group("style"))
        raise ValueError(f"unknown style {style!r}; known: {known}")
    lighting = _choose_lighting(brief, library)
    slots = {
        "mood": (library.match("moods", brief.description) or library.get("moods", "calm")).id,
        **_choose_camera(brief, library, variant),
        "lighting": lighting.id,
        "colour": _rotate(library, "colour", lighting.extra.get("colour", "natural"), variant),
        "style": _rotate(library, "style", base_style.id, variant),
    }
    state = PromptState(
        language=language or brief.language,
        subject=brief.description.strip(),
        characters=tuple(brief.characters),
        location=brief.location.strip(),
        time_of_day=brief.time_of_day.strip(),
        slots=tuple(slots.items()),
        max_chars=max_chars,
        variant=variant,
    )
    return render(state, library)


def render(
    state: PromptState, library: TemplateLibrary, revisions: tuple[RevisionRecord, ...] = ()
) -> ShotPrompt:
    """Renders ``state`` to text within ``state.max_chars``, trimming least important first."""
    lang = state.language
    sep = _SEP[lang]
    segments = _segments(state, library)
    trimmed: list[str] = []
    for name in ("environment", "mood"):
        if len(_join(segments, lang)) <= state.max_chars:
            break
        if name not in dict(segments):
            continue
        segments = [(n, s) for n, s in segments if n != name]
        trimmed.append(name)
    for name in ("subject", "notes"):
        excess = len(_join(segments, lang)) - state.max_chars
        if excess <= 0:
            break
        if name not in dict(segments):
            continue
        segments = [(n, _shorten(s, len(s) - excess) if n == name else s) for n, s in segments]
        trimmed.append(name)
    text = _join(segments, lang)
    if len(text) > state.max_chars:  # only camera/tone/style left and still too long
        text = _shorten(text, state.max_chars)
        trimmed.append("prompt")
    negative = sep.join(t.text(lang) for t in library.group("negative"))
    lineage = Lineage(dict(state.slots), revisions, tuple(trimmed), state.variant)
    return ShotPrompt(text, negative, lang, lineage, state)


def _segments(state: PromptState, library: TemplateLibrary) -> list[tuple[str, str]]:
    lang, sep = state.language, _SEP[state.language]

    def phrase(group: str, slot: str) -> str:
        return library.get(group, state.slot(slot)).text(lang)

    subject = state.subject.rstrip(_TRIM_PUNCT)
    missing = [c for c in state.characters if c and c not in subject]
    if missing:
        names = ("、" if lang == "zh" else " and ").join(missing)
        subject += f"（人物：{names}）" if lang == "zh" else f" (featuring {names})"
    extras = [p[0] if lang == "en" else p[1] for p in (state.pace, *state.directions) if p]
    subject = sep.join([subject, *extras]) if subject else sep.join(extras)
    place = sep.join(p for p in (state.location, _time_of_day(state.time_of_day, lang)) if p)
    environment = (f"场景：{place}" if lang == "zh" else f"Setting: {place}") if place else ""
    camera = sep.join(
        phrase("sizes", "size") if n == "size" else phrase(f"{n}s", n)
        for n in ("size", "angle", "movement")
    )
    tone = sep.join((phrase("lighting", "lighting"), phrase("colour", "colour")))
    notes = sep.join(state.notes)
    notes = (f"导演要求：{notes}" if lang == "zh" else f"Director's note: {notes}") if notes else ""
    segments = [
        ("mood", phrase("moods", "mood")),
        ("subject", subject),
        ("environment", environment),
        ("camera", camera),
        ("tone", tone),
        ("style", phrase("style", "style")),
        ("notes", notes),
    ]
    return [(n, s) for n, s in segments if s]


def _time_of_day(time_of_day: str, lang: Language) -> str:
    """The script's time of day; in English, a Chinese heading's time words translated."""
    if lang == "zh":
        return time_of_day.lower()
    return " ".join(ZH_TIMES_OF_DAY.get(word, word) for word in time_of_day.lower().split())


def _join(segments: list[tuple[str, str]], lang: Language) -> str:
    parts = [s.rstrip(_TRIM_PUNCT) for _, s in segments if s.rstrip(_TRIM_PUNCT)]
    if not parts:
        return ""
    if lang == "en":  # each segment reads as a sentence
        parts = [p[0].upper() + p[1:] for p in parts]
    text = _END[lang].join(parts)
    return text + ("." if lang == "en" else "。")


def _shorten(text: str, limit: int) -> str:
    """Cuts ``text`` to at most ``limit`` chars at a word or clause boundary, adding '…'."""
    if len(text) <= limit:
        return text
    if limit <= 1:
        return ""
    cut = text[: limit - 1]
    boundary = max(cut.rfind(c) for c in _TRIM_PUNCT)
    # Chinese has no spaces: between two characters is a fair cut when no clause ends nearby.
    if boundary >= limit // 2:
        cut = cut[:boundary]
    return cut.rstrip(_TRIM_PUNCT) + "…"


def _find(library: TemplateLibrary, group: str, key: str) -> Template | None:
    by_id = {t.id: t for t in library.group(group)}
    return by_id.get(key) or library.match(group, key)


def _rotate(library: TemplateLibrary, group: str, base_id: str, steps: int) -> str:
    ids = [t.id for t in library.group(group)]
    return ids[(ids.index(base_id) + steps) % len(ids)]


def _choose_camera(brief: ShotBrief, library: TemplateLibrary, variant: int) -> dict[str, str]:
    hints = " | ".join(brief.camera_hints)
    size, angle, movement = (library.match(g, hints) for g in ("sizes", "angles", "movements"))
    if size is None:
        if not brief.characters:
            size_id = "wide"
        elif brief.duration_s < 3:
            size_id = "close_up"
        else:
            size_id = "wide" if brief.duration_s >= 8 else "medium"
    else:
        size_id = size.id
    if movement is None:
        base = "static" if brief.duration_s < 3 else "push_in" if brief.duration_s < 6 else "dolly"
        index = VARIANT_MOVEMENTS.index(base) + variant
        movement_id = VARIANT_MOVEMENTS[index % len(VARIANT_MOVEMENTS)]
    else:
        movement_id = movement.id
    return {
        "size": size_id,
        "angle": angle.id if angle else "eye_level",
        "movement": movement_id,
    }


def _choose_lighting(brief: ShotBrief, library: TemplateLibrary) -> Template:
    lights = library.group("lighting")
    practical = best_match([t for t in lights if t.extra.get("practical")], brief.description)
    by_time = best_match(lights, brief.time_of_day, "times")
    by_text = library.match("lighting", brief.description)
    return practical or by_time or by_text or library.get("lighting", "soft_daylight")
