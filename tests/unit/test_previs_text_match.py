"""Which text a previs clip's frames are matched against: the prompt in a language the
encoder's text tower was trained on, and when the shot's own words make the cosine unreliable;
and the project language previs reads from a script."""

from __future__ import annotations

import re

import pytest

from clipmesh.previs.checks import UNREAD_TEXT_NOTICE, match_text, unread_text_notice
from clipmesh.previs.planning import language_of, prompt_for, shots_of
from clipmesh.previs.records import ProjectSettings, QualityScores, Shot
from clipmesh.previs.script import parse_script
from clipmesh.previs.templates import TemplateLibrary

ZH_SCRIPT = """第一场 夜 外 街道
林夏撑着伞走过空荡荡的街道，路灯一盏盏亮起。
"""
EN_SCRIPT = """INT. KITCHEN - NIGHT

Mara opens the envelope slowly.
"""
HAN = re.compile(r"[\u3400-\u9fff]+")


@pytest.fixture(scope="module")
def library() -> TemplateLibrary:
    return TemplateLibrary.load()


def first_shot(script: str) -> Shot:
    _, shots = shots_of(parse_script(script))
    return shots[0]


def zh_prompt(library, *, notes=(), reference_title=""):
    return prompt_for(
        first_shot(ZH_SCRIPT),
        ProjectSettings(language="zh"),
        library,
        notes=list(notes),
        variant=0,
        reference_title=reference_title,
    )


def test_a_zh_prompt_on_an_english_tower_is_matched_in_english(library) -> None:
    shot = first_shot(ZH_SCRIPT)
    prompt = zh_prompt(library, notes=["更慢一些"], reference_title="harbour-dusk")
    match = match_text(prompt, library, ("en",))

    assert prompt.language == "zh" and HAN.search(prompt.prompt)
    assert match.language == "en" and match.text != prompt.prompt
    slots = prompt.lineage.slots
    for group, slot in (("moods", "mood"), ("sizes", "size"), ("lighting", "lighting")):
        assert library.get(group, slots[slot]).en.lower() in match.text.lower()
    assert "slow, unhurried motion" in match.text  # the note's rule, in English
    assert "reference footage “harbour-dusk”" in match.text
    assert "Setting: 街道, night" in match.text  # the heading's 夜 translated
    # What Chinese is left is the shot's own words, as the script wrote them.
    own_words = " ".join([shot.description, shot.location, *shot.characters])
    assert HAN.findall(match.text) and all(run in own_words for run in HAN.findall(match.text))
    assert match.unread_scripts == ("Han",)


def test_a_zh_prompt_on_a_multilingual_or_chinese_tower_is_matched_as_generated(library):
    prompt = zh_prompt(library, notes=["更慢一些"])
    for languages in (("multilingual",), ("zh", "en"), ("zh",)):
        match = match_text(prompt, library, languages)
        assert (match.text, match.language, match.unread_scripts) == (prompt.prompt, "zh", ())


def test_an_english_prompt_on_an_english_tower_is_matched_as_generated(library) -> None:
    prompt = prompt_for(
        first_shot(EN_SCRIPT), ProjectSettings(language="en"), library, notes=[], variant=0
    )
    match = match_text(prompt, library, ("en",))
    assert (match.text, match.language, match.unread_scripts) == (prompt.prompt, "en", ())


def test_a_chinese_note_on_an_english_prompt_makes_its_match_unreliable(library) -> None:
    prompt = prompt_for(
        first_shot(EN_SCRIPT),
        ProjectSettings(language="en"),
        library,
        notes=["让画面更有诗意"],  # no rule knows it: kept as free text
        variant=0,
    )
    match = match_text(prompt, library, ("en",))
    assert match.text == prompt.prompt and "让画面更有诗意" in match.text
    assert match.unread_scripts == ("Han",)


def test_the_notice_names_every_shot_matched_against_unread_text() -> None:
    scores = {
        "s001": QualityScores(text_match_unread_scripts=["Han"]),
        "s002": QualityScores(),
        "s003": QualityScores(text_match_unread_scripts=["Han"]),
    }
    notice = unread_text_notice(scores)
    assert notice.startswith(f"{UNREAD_TEXT_NOTICE}s001, s003: ")
    assert "Han script" in notice and "multilingual" in notice
    assert unread_text_notice({"s002": QualityScores()}) == ""


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("林夏推开咖啡馆的门，环顾四周。", "zh"),
        ("Mara opens the envelope slowly.", "en"),
        ("Lin 林 walks past the lanterns of the night market", "en"),  # a name, not the text
        ("在 Starbucks 门口等车", "zh"),
        ("", "en"),
    ],
)
def test_the_project_language_follows_the_script_letters(text, language) -> None:
    assert language_of(text) == language
