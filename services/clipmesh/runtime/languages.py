"""Which writing systems a text uses, and which languages a text tower was trained on.

A CLIP text tower only understands the languages of the captions it was trained on: OpenAI's
and LAION-2B-en's ViT models read English, LAION-5B's xlm-roberta towers read about a hundred
languages. A byte-level tokenizer never fails on other scripts, so a Chinese query on an
English-only model is silently ranked by byte fragments. The encoder compares the scripts of
each text with the scripts of the languages the operator declared (`text_languages`) and warns
when a text is written in one the model was not trained on; evaluation and previs ask the same
questions through this module, so there is one rule for "this text is Chinese".

Only letters count (`str.isalpha`): digits, punctuation and emoji belong to every language. A
script counts when it holds at least a tenth of a text's letters, so a brand name in Latin
letters inside a Chinese sentence does not make it English, nor the reverse.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import regex

# Declared for a text tower trained on many languages: no text is warned about.
MULTILINGUAL = "multilingual"

# The scripts told apart. Han covers Chinese characters and Japanese kanji; fullwidth Latin
# letters (ＡＢＣ) are Latin.
SCRIPTS = (
    "Latin",
    "Han",
    "Hiragana",
    "Katakana",
    "Hangul",
    "Cyrillic",
    "Arabic",
    "Devanagari",
    "Thai",
    "Greek",
    "Hebrew",
)
# Letters (\p{L}) of each script, counted by one C-level scan per script.
_SCRIPT_LETTERS = {name: regex.compile(rf"(?=\p{{L}})\p{{Script={name}}}") for name in SCRIPTS}

_LATIN_LANGUAGES = (  # noqa: SIM905 (one line of codes reads better than 34)
    "en fr de es it pt nl sv da no fi is pl cs sk sl hr ro hu tr vi id ms tl sw et lv lt ca eu "
    "ga cy af sq"
).split()
# ISO 639-1 code → the scripts its text is written in.
LANGUAGE_SCRIPTS: dict[str, frozenset[str]] = {
    **{code: frozenset({"Latin"}) for code in _LATIN_LANGUAGES},
    "zh": frozenset({"Han"}),
    "ja": frozenset({"Han", "Hiragana", "Katakana"}),
    "ko": frozenset({"Hangul", "Han"}),
    **{code: frozenset({"Cyrillic"}) for code in ("ru", "uk", "bg", "sr", "be", "mk", "kk")},
    **{code: frozenset({"Arabic"}) for code in ("ar", "fa", "ur")},
    **{code: frozenset({"Devanagari"}) for code in ("hi", "mr", "ne")},
    "th": frozenset({"Thai"}),
    "el": frozenset({"Greek"}),
    "he": frozenset({"Hebrew"}),
}
# A script counts in a text when at least this share of its letters is written in it.
MIN_SHARE = 0.1


def parse_languages(value: str) -> tuple[str, ...]:
    """Parses a comma-separated list of ISO 639-1 codes, or `multilingual`.

    Raises:
        ValueError: empty, an unknown code, or `multilingual` mixed with codes.
    """
    codes = tuple(dict.fromkeys(part.strip().lower() for part in value.split(",") if part.strip()))
    if not codes:
        raise ValueError("no language given")
    if MULTILINGUAL in codes:
        if len(codes) > 1:
            raise ValueError(f"{MULTILINGUAL!r} stands alone; it cannot be mixed with codes")
        return codes
    unknown = [code for code in codes if code not in LANGUAGE_SCRIPTS]
    if unknown:
        raise ValueError(
            f"unknown language code(s) {', '.join(unknown)}; use ISO 639-1 codes "
            f"({', '.join(sorted(LANGUAGE_SCRIPTS))}) or {MULTILINGUAL!r}"
        )
    return codes


def script_counts(text: str) -> Counter[str]:
    """Letters of `text` per script told apart (letters in other scripts are not counted)."""
    counts: Counter[str] = Counter()
    for name, pattern in _SCRIPT_LETTERS.items():
        found = len(pattern.findall(text))
        if found:
            counts[name] = found
    return counts


def scripts_of(text: str) -> list[str]:
    """The scripts holding at least a tenth of `text`'s letters, most letters first."""
    if text.isascii():  # most queries: no scan needed, ASCII letters are Latin
        return ["Latin"] if any(char.isalpha() for char in text) else []
    counts = script_counts(text)
    letters = sum(1 for char in text if char.isalpha())
    return [name for name, count in counts.most_common() if count >= MIN_SHARE * letters]


def scripts_read_by(languages: Iterable[str]) -> frozenset[str]:
    """The scripts the declared `languages` are written in (every script for `multilingual`)."""
    declared = tuple(languages)
    if MULTILINGUAL in declared:
        return frozenset(SCRIPTS)
    return frozenset().union(*(LANGUAGE_SCRIPTS.get(code, frozenset()) for code in declared))


def unsupported_scripts(text: str, languages: Iterable[str]) -> list[str]:
    """The scripts of `text` that none of `languages` is written in ([] for `multilingual`)."""
    declared = tuple(languages)
    if MULTILINGUAL in declared:
        return []
    known = scripts_read_by(declared)
    return [name for name in scripts_of(text) if name not in known]


def language_warning(index: int, text: str, languages: Iterable[str]) -> str | None:
    """A warning naming `texts[index]` when it is written in a script the text tower was not
    trained on, else None."""
    declared = tuple(languages)
    foreign = unsupported_scripts(text, declared)
    if not foreign:
        return None
    return (
        f"texts[{index}] is written in {' and '.join(foreign)} script, but the text tower was "
        f"trained on {', '.join(declared)} only: its vector is unreliable. Mount multilingual "
        f"weights (docs/languages.md) or query in {declared[0]}."
    )


def likely_language(text: str) -> str:
    """A best guess at `text`'s language from its scripts: zh, ja, ko, ru, ar, hi, th, el, he,
    or en for Latin letters (and for text without letters)."""
    scripts = set(scripts_of(text))
    if scripts & {"Hiragana", "Katakana"}:
        return "ja"
    if "Hangul" in scripts:
        return "ko"
    if "Han" in scripts:
        return "zh"
    for script, code in (
        ("Cyrillic", "ru"),
        ("Arabic", "ar"),
        ("Devanagari", "hi"),
        ("Thai", "th"),
        ("Greek", "el"),
        ("Hebrew", "he"),
    ):
        if script in scripts:
            return code
    return "en"
