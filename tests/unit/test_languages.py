"""Which scripts a text is written in, and which languages a text tower declares."""

from __future__ import annotations

import pytest

from clipmesh.runtime.languages import (
    MULTILINGUAL,
    language_warning,
    likely_language,
    parse_languages,
    script_counts,
    scripts_of,
    scripts_read_by,
    unsupported_scripts,
)


@pytest.mark.parametrize(
    ("text", "scripts", "language"),
    [
        ("龙舟竞渡", ["Han"], "zh"),
        ("穿汉服的女孩在樱花树下", ["Han"], "zh"),
        ("a dog runs on the beach", ["Latin"], "en"),
        ("東京の夜 カメラ", ["Han", "Katakana", "Hiragana"], "ja"),
        ("서울의 밤", ["Hangul"], "ko"),
        ("Москва ночью", ["Cyrillic"], "ru"),
        ("ＡＢＣ ｄｅｆ", ["Latin"], "en"),  # fullwidth letters are Latin
        ("😀 123 !?", [], "en"),  # no letters: nothing to judge
    ],
)
def test_scripts_and_likely_language(text: str, scripts: list[str], language: str) -> None:
    assert scripts_of(text) == scripts
    assert likely_language(text) == language


def test_only_letters_count_and_a_script_needs_a_tenth_of_them() -> None:
    assert script_counts("iPhone 拍摄的龙舟 2024!") == {"Latin": 6, "Han": 5}
    # One Latin letter among eleven Han ones is under a tenth: a Chinese sentence.
    assert scripts_of("一辆红色的汽车在街上行驶x") == ["Han"]
    assert scripts_of("一辆红色的汽车在街上行驶xy") == ["Han", "Latin"]


def test_unsupported_scripts_follow_the_declared_languages() -> None:
    assert unsupported_scripts("龙舟竞渡 at dawn", ["en"]) == ["Han"]
    assert unsupported_scripts("龙舟竞渡 at dawn", ["en", "zh"]) == []
    assert unsupported_scripts("東京の夜", ["zh"]) == ["Hiragana"]
    assert unsupported_scripts("東京の夜", ["ja"]) == []
    assert unsupported_scripts("Москва ночью", [MULTILINGUAL]) == []


def test_the_warning_names_the_text_its_script_and_the_languages() -> None:
    warning = language_warning(2, "穿汉服的女孩", ["en"])
    assert warning is not None
    assert warning.startswith("texts[2] is written in Han script")
    assert "trained on en only" in warning
    assert language_warning(0, "a girl in hanfu", ["en"]) is None
    assert language_warning(0, "穿汉服的女孩", [MULTILINGUAL]) is None


def test_declared_languages_are_parsed_and_checked() -> None:
    assert parse_languages(" EN, zh ,en") == ("en", "zh")
    assert parse_languages("multilingual") == (MULTILINGUAL,)
    with pytest.raises(ValueError, match="unknown language code"):
        parse_languages("en,klingon")
    with pytest.raises(ValueError, match="stands alone"):
        parse_languages("multilingual,en")
    with pytest.raises(ValueError, match="no language"):
        parse_languages(" , ")


def test_scripts_read_by_declared_languages() -> None:
    assert scripts_read_by(["en", "zh"]) == {"Latin", "Han"}
    assert scripts_read_by(["ja"]) == {"Han", "Hiragana", "Katakana"}
    assert scripts_read_by([MULTILINGUAL]) >= {"Latin", "Han", "Hangul", "Cyrillic"}
    assert scripts_of("123 !?") == []  # ASCII without letters: nothing to judge
