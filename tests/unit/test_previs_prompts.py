"""The previs prompt builder, its template library and the director's-note rules."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from clipmesh.previs.prompts import (
    ShotBrief,
    TemplateError,
    TemplateLibrary,
    build_prompt,
)
from clipmesh.previs.revisions import revise
from clipmesh.previs.templates import TEMPLATES_DIR


@pytest.fixture(scope="module")
def library() -> TemplateLibrary:
    return TemplateLibrary.load()


EN_NIGHT = ShotBrief(
    description="Lin runs through the rain, chased by a stranger",
    characters=("Lin",),
    location="narrow alley",
    time_of_day="NIGHT",
    camera_hints=("low angle", "push in"),
    duration_s=5.0,
    language="en",
)
ZH_DAY = ShotBrief(
    description="林走进茶馆，坐在窗边",
    characters=("林",),
    location="茶馆",
    time_of_day="日",
    camera_hints=("wide",),
    duration_s=4.0,
    language="zh",
)


def test_shipped_templates_load_and_validate(library):
    assert [t.id for t in library.group("sizes")][:2] == ["extreme_wide", "wide"]
    for group in ("sizes", "angles", "movements", "lighting", "colour", "style", "moods"):
        assert all(t.en and t.zh for t in library.group(group))
    assert library.get("style", "ink_wash").zh.startswith("中国水墨")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["style"][1].pop("zh"), "style.json: style[1] (id='anime'): missing"),
        (lambda d: d["style"].append(dict(d["style"][0])), "duplicate id 'cinematic'"),
    ],
)
def test_a_broken_template_file_names_file_and_entry(tmp_path, mutate, message):
    folder = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    data = json.loads((folder / "style.json").read_text(encoding="utf-8"))
    mutate(data)
    (folder / "style.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(TemplateError, match=re.escape(message)):
        TemplateLibrary.load(folder)


def test_a_rule_setting_an_unknown_template_is_rejected(tmp_path):
    folder = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    data = json.loads((folder / "revisions.json").read_text(encoding="utf-8"))
    data["rules"][0]["changes"] = [{"op": "set", "slot": "lighting", "id": "disco"}]
    (folder / "revisions.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(TemplateError, match=r"pace\.slower.*disco"):
        TemplateLibrary.load(folder)


def test_prompt_follows_mood_subject_environment_camera_tone_style(library):
    prompt = build_prompt(EN_NIGHT, library).prompt
    parts = [
        "Tense, suspenseful atmosphere",
        "Lin runs through the rain",
        "Setting: narrow alley, night",
        "low angle, slow push in",
        "night lighting",
        "cinematic realistic style",
    ]
    positions = [prompt.lower().find(p.lower()) for p in parts]
    assert -1 not in positions, prompt
    assert positions == sorted(positions)


def test_zh_brief_gives_zh_prompt_and_en_brief_gives_en(library):
    zh = build_prompt(ZH_DAY, library)
    assert zh.language == "zh"
    assert "远景" in zh.prompt and "日光" in zh.prompt and "水印" in zh.negative_prompt
    en = build_prompt(EN_NIGHT, library)
    assert en.language == "en" and "watermark" in en.negative_prompt
    assert "atmosphere" in build_prompt(ZH_DAY, library, language="en").prompt


def test_an_english_rendering_of_a_zh_shot_translates_its_time_of_day(library):
    en = build_prompt(ZH_DAY, library, language="en").prompt
    assert "Setting: 茶馆, day" in en and "日" not in en
    assert "场景：茶馆，日" in build_prompt(ZH_DAY, library).prompt


def test_camera_hints_and_night_reach_the_prompt(library):
    result = build_prompt(EN_NIGHT, library)
    assert "low angle" in result.prompt and "push in" in result.prompt
    assert result.lineage.slots["lighting"] == "night_moonlight"
    assert result.lineage.slots["angle"] == "low_angle"


def test_builds_are_deterministic_and_variants_differ_reproducibly(library):
    assert build_prompt(EN_NIGHT, library) == build_prompt(EN_NIGHT, library)
    variants = [build_prompt(EN_NIGHT, library, variant=v).prompt for v in (1, 2, 3)]
    assert len(set(variants)) == 3
    assert variants == [build_prompt(EN_NIGHT, library, variant=v).prompt for v in (1, 2, 3)]


def test_long_description_is_trimmed_to_the_limit_least_important_first(library):
    long_brief = ShotBrief(
        description=" ".join(["Lin walks slowly past the lanterns of the night market"] * 40),
        location="night market " * 20,
        time_of_day="NIGHT",
        camera_hints=("close-up",),
    )
    result = build_prompt(long_brief, library, max_chars=800)
    assert len(result.prompt) <= 800
    assert result.lineage.trimmed[:3] == ("environment", "mood", "subject")
    assert "close-up" in result.prompt.lower() and "Setting" not in result.prompt
    assert result.prompt.split(". ")[0].endswith(("…", "market", "lanterns"))


def test_zh_slower_note_slows_the_action(library):
    revised = revise(build_prompt(ZH_DAY, library), "更慢一些", library)
    assert "缓慢" in revised.prompt
    assert revised.lineage.revisions[0].rule_ids == ("pace.slower",)


def test_abrupt_entrance_note_changes_framing(library):
    brief = ShotBrief("Lin suddenly bursts into the room", ("Lin",), "study", "DAY")
    revised = revise(build_prompt(brief, library), "the character enters too abruptly", library)
    assert "enters gradually from the frame edge" in revised.prompt
    assert "suddenly" not in revised.prompt


def test_closer_tightens_one_shot_size(library):
    base = build_prompt(ZH_DAY, library)
    assert base.lineage.slots["size"] == "wide"
    closer = revise(base, "closer", library)
    assert closer.lineage.slots["size"] == "full"
    assert revise(closer, "拉远一点", library).lineage.slots["size"] == "wide"


@pytest.mark.parametrize("note", ["darker", "更暗"])
def test_darker_changes_the_lighting(library, note):
    revised = revise(build_prompt(ZH_DAY, library), note, library)
    assert revised.lineage.slots["lighting"] == "low_key"
    assert "低调布光" in revised.prompt


def test_unmatched_note_is_kept_as_free_text(library):
    revised = revise(build_prompt(EN_NIGHT, library), "make it feel like a dream", library)
    record = revised.lineage.revisions[-1]
    assert not record.matched and record.rule_ids == ()
    assert "make it feel like a dream" in revised.prompt


def test_every_revision_is_recorded_and_limits_still_hold(library):
    prompt = build_prompt(EN_NIGHT, library, max_chars=300)
    for note in ("closer", "warmer and slower", "closer"):
        prompt = revise(prompt, note, library)
        assert len(prompt.prompt) <= 300
    notes = [(r.note, r.rule_ids) for r in prompt.lineage.revisions]
    assert notes == [
        ("closer", ("camera.closer",)),
        ("warmer and slower", ("pace.slower", "colour.warmer")),
        ("closer", ("camera.closer",)),
    ]
    assert prompt.lineage.slots["size"] == "extreme_close_up"
