"""Script parsing: scenes and shots of at most 10 s from Chinese prose and English Fountain."""

from __future__ import annotations

import pytest

from clipmesh.previs.script import (
    MAX_SCRIPT_CHARS,
    MIN_SHOT_S,
    DialogueLine,
    ScriptError,
    Shot,
    parse_script,
)
from clipmesh.previs.script_reading import clean_text, detect_format

LONG_ACTION_ZH = (
    "推镜头，林夏望向窗外，雨水顺着玻璃流下，街上的霓虹灯在水汽中变得模糊，一辆出租车缓缓驶过，"
    "溅起的水花打在路边的广告牌上，广告牌上的女人微笑着，仿佛在嘲笑这座城市里所有等待的人，"
    "林夏想起十年前的那个夏天，她和老陈在这里喝下第一杯咖啡，那时候窗外还没有这些霓虹灯，"
    "只有一棵老槐树和一只总在午后打盹的黑猫。"
)

ZH_SCRIPT = f"""\ufeff第一场　咖啡馆　内　夜

人物：林夏、老陈

雨夜，咖啡馆里只剩下一盏灯。特写：林夏的手指轻轻敲着杯沿 。

林夏：你还记得这家店吗？
老陈：记得，我们第一次见面就在这里。

{LONG_ACTION_ZH}

第二场 街道 外 日

远景，老陈独自走在街上。他停下脚步，回头看了一眼。

第三场 屋顶 外 黄昏

俯拍，两人并肩站在屋顶。林夏说：“我们走吧。”
"""

EN_FOUNTAIN = """Title: The Last Train
Author: Test

INT. KITCHEN - NIGHT

CLOSE ON a kettle. Steam rises.

ANNA
(quietly)
Is he gone?

MARK (O.S.)
Not yet. He is waiting downstairs, and he will not leave until you talk to him.

CUT TO:

EXT. ROOFTOP - DAY

WIDE SHOT
The city sprawls below. Anna walks to the edge.

ANNA
We should go.
"""


def _assert_well_formed(shots: list[Shot], max_shot_s: float = 10.0) -> None:
    assert [shot.index for shot in shots] == list(range(len(shots)))
    assert [shot.scene_index for shot in shots] == sorted(shot.scene_index for shot in shots)
    for shot in shots:
        assert MIN_SHOT_S <= shot.duration_s <= max_shot_s
        assert shot.description


def test_chinese_plain_script_gives_scenes_and_short_shots() -> None:
    script = parse_script(ZH_SCRIPT)

    assert script.format == "plain"
    assert [(s.heading, s.location, s.time_of_day) for s in script.scenes] == [
        ("第一场 咖啡馆 内 夜", "咖啡馆", "夜"),
        ("第二场 街道 外 日", "街道", "日"),
        ("第三场 屋顶 外 黄昏", "屋顶", "黄昏"),
    ]
    shots = script.shots
    _assert_well_formed(shots)
    first = shots[0]
    assert first.description == "雨夜，咖啡馆里只剩下一盏灯。特写：林夏的手指轻轻敲着杯沿。"
    assert first.camera_hints == ["close-up"]
    assert first.dialogue == [DialogueLine("林夏", "你还记得这家店吗？")]
    assert (first.location, first.time_of_day) == ("咖啡馆", "夜")
    assert any(DialogueLine("老陈", "记得，我们第一次见面就在这里。") in s.dialogue for s in shots)

    # The long action is split at commas into several shots that keep every character, in order.
    long_shots = [s for s in shots if s.description and s.description in LONG_ACTION_ZH]
    assert len(long_shots) >= 3
    assert "".join(s.description for s in long_shots) == LONG_ACTION_ZH
    assert long_shots[0].camera_hints == ["push in"]
    assert "老陈" in long_shots[2].characters

    last = shots[-1]
    assert last.scene_index == 2
    assert last.description == "俯拍，两人并肩站在屋顶。"
    assert last.camera_hints == ["high angle"]
    assert last.dialogue == [DialogueLine("林夏", "我们走吧。")]
    assert next(s for s in shots if s.scene_index == 1).camera_hints == ["wide"]
    # 5 CJK characters a second of action, 4 of dialogue.
    assert last.duration_s == pytest.approx(10 / 5 + 4 / 4)


def test_english_fountain_script_gives_scenes_dialogue_and_hints() -> None:
    script = parse_script(EN_FOUNTAIN)

    assert script.format == "fountain"
    assert [(s.location, s.time_of_day) for s in script.scenes] == [
        ("KITCHEN", "NIGHT"),
        ("ROOFTOP", "DAY"),
    ]
    shots = script.shots
    _assert_well_formed(shots)
    kitchen, roof = shots[0], shots[-1]
    assert kitchen.description == "CLOSE ON a kettle. Steam rises."
    assert kitchen.camera_hints == ["close-up"]
    assert kitchen.dialogue[0] == DialogueLine("ANNA", "Is he gone?")  # parenthetical dropped
    assert kitchen.dialogue[1].speaker == "MARK"  # cue extension (O.S.) dropped
    assert kitchen.characters == ["ANNA", "MARK"]
    # "WIDE SHOT" above an action line is camera language, not a character named WIDE SHOT.
    assert roof.camera_hints == ["wide"]
    assert "The city sprawls below." in roof.description
    assert roof.characters == ["ANNA"]
    assert (roof.location, roof.time_of_day, roof.scene_index) == ("ROOFTOP", "DAY", 1)
    # 2.5 words a second of action, 3 of dialogue.
    assert kitchen.duration_s == pytest.approx(round(6 / 2.5 + 3 / 3 + 16 / 3, 1))


def test_long_dialogue_spills_into_dialogue_only_shots() -> None:
    line = "This is a line that keeps going. " * 12
    script = parse_script(f"INT. HALL - DAY\n\nAnna waits.\n\nANNA\n{line}\n")

    shots = script.shots
    _assert_well_formed(shots)
    assert len(shots) >= 3
    assert all(s.dialogue[0].speaker == "ANNA" for s in shots[1:])
    assert shots[1].description.startswith("ANNA: ")


@pytest.mark.parametrize(
    "sentence",
    ["雨" * 2000, " ".join(["word"] * 400), "字" * 1000 + "," + "word " * 200],
    ids=["cjk", "english", "mixed"],
)
def test_single_over_long_sentence_is_split_into_shots_of_at_most_10_s(sentence: str) -> None:
    shots = parse_script(sentence).shots

    _assert_well_formed(shots)
    assert len(shots) > 1
    assert "".join(s.description for s in shots).replace(" ", "") == sentence.replace(" ", "")


def test_shorter_max_shot_is_respected() -> None:
    shots = parse_script(ZH_SCRIPT, max_shot_s=4.0).shots

    _assert_well_formed(shots, max_shot_s=4.0)


def test_clean_text_normalises_width_whitespace_and_control_characters() -> None:
    dirty = (
        "\ufeff  ＡＢＣ１２３\u3000走进\u200b咖啡馆 ，  他说 ！\x07\r\n\r\n\r\n\r\n下一段\t\t结束"
    )

    assert clean_text(dirty) == "ABC123 走进咖啡馆，他说！\n\n下一段 结束"


def test_plain_text_without_headings_splits_scenes_at_blank_lines() -> None:
    script = parse_script("A man walks in.\n\nHe sits down.\nBOB: Coffee, please.")

    assert [s.heading for s in script.scenes] == ["A man walks in.", "He sits down."]
    assert script.shots[-1].dialogue == [DialogueLine("BOB", "Coffee, please.")]
    assert script.shots[-1].characters == ["BOB"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("INT. KITCHEN - NIGHT\n\nShe cooks.", "fountain"),
        ("int. garage - day\n\nHe waits.", "fountain"),
        (".FLASHBACK\n\nRain.", "fountain"),
        ("Title: Draft\n\nRain falls.", "fountain"),
        ("第一场 咖啡馆 内 夜\n\n林夏：你好。", "plain"),
        ("1. 咖啡馆 内 夜\n\n林夏坐下。", "plain"),
        ("Scene 1\n\nA man walks in. He orders a coffee.", "plain"),
    ],
)
def test_format_detection(text: str, expected: str) -> None:
    assert detect_format(clean_text(text)) == expected
    assert parse_script(text).format == expected


def test_numbered_chinese_heading_gives_location_and_time() -> None:
    scene = parse_script("1. 咖啡馆 内 夜\n\n林夏坐下。").scenes[0]

    assert (scene.location, scene.time_of_day) == ("咖啡馆", "夜")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   \n\t\u3000\ufeff\n  ", "only whitespace"),
        ("x" * (MAX_SCRIPT_CHARS + 1), "more than the 200,000 allowed"),
        ("Title: Nothing\nAuthor: Nobody\n", "no action or dialogue"),
    ],
    ids=["empty", "whitespace", "oversized", "no-content"],
)
def test_unusable_scripts_raise_script_error(text: str, message: str) -> None:
    with pytest.raises(ScriptError, match=message):
        parse_script(text)


def test_invalid_arguments_raise_value_error() -> None:
    with pytest.raises(ValueError, match="format"):
        parse_script("Rain.", format="docx")
    with pytest.raises(ValueError, match="max_shot_s"):
        parse_script("Rain.", max_shot_s=1.0)


def test_parsing_is_deterministic() -> None:
    assert parse_script(ZH_SCRIPT) == parse_script(ZH_SCRIPT)
    assert parse_script(EN_FOUNTAIN) == parse_script(EN_FOUNTAIN)


def test_chinese_fountain_uses_forced_character_cues() -> None:
    # Fountain only reads upper-case cues as characters; Chinese names need the `@` prefix.
    shot = parse_script("INT. 咖啡馆 - 夜\n\n林夏坐下。\n\n@林夏\n你好。\n").shots[0]

    assert (shot.location, shot.time_of_day) == ("咖啡馆", "夜")
    assert shot.dialogue == [DialogueLine("林夏", "你好。")]
    assert shot.characters == ["林夏"]
