"""Which prompt previs matches a clip's frames against, over real meshes (encoder, index,
generator on the animatic backend, previs) whose encoders load saved checkpoints, so the text
match counts: the English-only `clipmesh-tiny` and the multilingual `clipmesh-tiny-xlm-roberta`
(tokenizer directory made here). A Chinese script on the English tower is matched in English,
and where the script's own Chinese words remain the match is not enforced and the project
says which shots; on the multilingual tower the Chinese prompt is matched as generated. The
timeline records the text each selected clip was matched against; matching that clip again
with that text gives the cosine the clip was scored with."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import opentimelineio as otio
import pytest
import pytest_asyncio
import torch

from clipmesh.encoder.client import EncoderClient
from clipmesh.encoder.model import load_model
from clipmesh.encoder.weights import WeightsSpec
from clipmesh.media.paths import path_from_uri
from clipmesh.previs.checks import UNREAD_TEXT_NOTICE, ClipChecker, MatchText
from clipmesh.previs.quality import QualityThresholds
from clipmesh.previs.templates import TemplateLibrary
from clipmesh.runtime.dependencies import DependencyChannels
from clipmesh_api.orchestrator.v1 import previs_pb2, previs_pb2_grpc
from clipmesh_client.wire import ChannelPolicy

pytestmark = pytest.mark.asyncio(loop_scope="module")
SIZE = {"width": 256, "height": 144, "fps": 12.0}
HAN = re.compile(r"[\u3400-\u9fff]+")
ZH_SCRIPT = """第一场 夜 外 街道
林夏撑着伞走过空荡荡的街道，路灯一盏盏亮起。

第二场 日 内 咖啡馆
她在窗边坐下，望着窗外的雨。
"""
EN_SCRIPT = """INT. KITCHEN - NIGHT

Mara opens the envelope slowly.
"""


def save_checkpoint(path: Path, model: str, tokenizer_dir: Path | None = None) -> Path:
    """A checkpoint of `model` (seeded weights saved to a file): the encoder serves it as
    trained weights, so previs enforces the text match."""
    seeded = load_model(
        model,
        WeightsSpec.parse("random:0"),
        device="cpu",
        precision="fp32",
        tokenizer_dir=tokenizer_dir,
    )
    torch.save({"state_dict": seeded.towers.model.state_dict()}, path)
    return path


@contextlib.asynccontextmanager
async def previs_mesh(mesh_factory, encoder_env: dict[str, str]):
    env = {
        "encoder": encoder_env,
        # Every clip passes: these tests are about which text is matched, not the floor.
        "previs": {"CLIPMESH_PREVIS_MIN_TEXT_MATCH": "-1"},
    }
    services = ("encoder", "index", "generator", "previs")
    async with mesh_factory.in_process(*services, env=env) as running:
        calls = ChannelPolicy(timeout_s=300, max_attempts=1)
        running.previs = running.stub("previs", previs_pb2_grpc.PrevisServiceStub, calls)
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def english_mesh(mesh_factory, tmp_path_factory):
    checkpoint = save_checkpoint(tmp_path_factory.mktemp("weights") / "tiny.pt", "clipmesh-tiny")
    weights = {"CLIPMESH_ENCODER_WEIGHTS": f"checkpoint:{checkpoint}"}
    async with previs_mesh(mesh_factory, weights) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def multilingual_mesh(mesh_factory, tmp_path_factory, xlm_roberta_dir):
    model = "clipmesh-tiny-xlm-roberta"
    path = tmp_path_factory.mktemp("weights") / "xlm.pt"
    checkpoint = save_checkpoint(path, model, xlm_roberta_dir)
    encoder = {
        "CLIPMESH_ENCODER_MODEL": model,
        "CLIPMESH_ENCODER_TOKENIZER": str(xlm_roberta_dir),
        "CLIPMESH_ENCODER_WEIGHTS": f"checkpoint:{checkpoint}",
    }
    async with previs_mesh(mesh_factory, encoder) as running:
        yield running


async def create(mesh, script: str) -> previs_pb2.Project:
    request = previs_pb2.CreateProjectRequest(title="Match", script=script, **SIZE)
    reports = [r.progress async for r in mesh.previs.CreateProject(request)]
    return reports[-1].project


def selected(shot: previs_pb2.Shot) -> previs_pb2.Clip:
    revision = shot.revisions[shot.current_revision - 1]
    return revision.clips[revision.selected_clip]


def matched(project: previs_pb2.Project) -> dict[str, dict]:
    """The check record of each shot's selected clip, as the cut's timeline keeps it."""
    timeline = otio.adapters.read_from_file(path_from_uri(project.cut.otio_uri))
    return {  # copied out: the timeline's dictionaries go with it
        clip.metadata["clipmesh"]["shot_id"]: dict(clip.metadata["clipmesh"]["scores"])
        for clip in timeline.find_clips()
    }


def template_slots(shot: previs_pb2.Shot) -> dict[str, str]:
    """Template id per slot, from the first revision's lineage ("template size=wide")."""
    lines = [line for line in shot.revisions[0].lineage if line.startswith("template ")]
    return dict(line.removeprefix("template ").split("=", 1) for line in lines)


async def match_again(mesh, clip: previs_pb2.Clip, text: str) -> float:
    """The cosine of `clip`'s frames with `text`, measured again through the mesh's encoder."""
    channels = DependencyChannels(mesh.configs["previs"])
    try:
        checker = ClipChecker(EncoderClient(channels, mesh.target("encoder")), QualityThresholds())
        vector = await checker.embed_text(text)
        path = Path(path_from_uri(clip.uri))
        scores = await checker.check(path, MatchText(text, "en"), vector, enforce_text_match=False)
    finally:
        await channels.close()
    return scores.text_match


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def zh_on_english(english_mesh):
    return await create(english_mesh, ZH_SCRIPT)


async def test_a_chinese_script_on_an_english_tower_is_matched_in_english(zh_on_english) -> None:
    project, library = zh_on_english, TemplateLibrary.load()
    records = matched(project)
    assert project.settings.language == "zh" and len(project.shots) == 2
    for shot in project.shots:
        clip, record = selected(shot), records[shot.shot_id]
        assert HAN.match(clip.prompt)  # generated from the Chinese prompt
        assert record["text_match_language"] == "en"
        text = record["text_match_text"]
        assert text != clip.prompt and "Setting: " in text
        slots = template_slots(shot)
        for group, slot in (("moods", "mood"), ("sizes", "size"), ("lighting", "lighting")):
            assert library.get(group, slots[slot]).en.lower() in text.lower(), (slot, text)
        assert re.search(r"Setting: [^.]*\b(night|day)\b", text)  # the heading's 夜 / 日
        own_words = " ".join([shot.description, shot.location, *shot.characters])
        assert all(run in own_words for run in HAN.findall(text)), text
        # The shot's own Chinese is left, which the English tower cannot read: not enforced.
        assert not record["text_match_enforced"] and not clip.scores.text_match_enforced
        # The API says the same as the cut's timeline.
        assert (clip.scores.text_match_language, clip.scores.text_match_text) == ("en", text)
        assert list(clip.scores.text_match_unread_scripts) == ["Han"]
        assert shot.state == previs_pb2.SHOT_STATE_READY


async def test_the_project_names_the_shots_whose_match_is_unreliable(zh_on_english) -> None:
    project = zh_on_english
    (notice,) = [n for n in project.notices if n.startswith(UNREAD_TEXT_NOTICE)]
    assert all(shot.shot_id in notice for shot in project.shots)
    assert "Han script" in notice and "multilingual" in notice
    assert not any("weights are random" in n for n in project.notices)


async def test_the_english_text_is_what_the_frames_were_matched_against(
    english_mesh, zh_on_english
) -> None:
    shot = zh_on_english.shots[0]
    clip, text = selected(shot), matched(zh_on_english)[shot.shot_id]["text_match_text"]
    assert await match_again(english_mesh, clip, text) == pytest.approx(
        clip.scores.text_match, abs=1e-4
    )
    assert await match_again(english_mesh, clip, clip.prompt) != pytest.approx(
        clip.scores.text_match, abs=1e-4
    )


async def test_an_english_script_on_an_english_tower_is_matched_as_generated(english_mesh):
    project = await create(english_mesh, EN_SCRIPT)
    (shot,) = project.shots
    clip, record = selected(shot), matched(project)[shot.shot_id]
    assert (record["text_match_language"], record["text_match_text"]) == ("en", clip.prompt)
    assert clip.scores.text_match_enforced and record["text_match_enforced"]
    assert not any(n.startswith(UNREAD_TEXT_NOTICE) for n in project.notices)


async def test_a_chinese_script_on_a_multilingual_tower_is_matched_as_generated(
    multilingual_mesh,
) -> None:
    project = await create(multilingual_mesh, ZH_SCRIPT)
    records = matched(project)
    for shot in project.shots:
        clip, record = selected(shot), records[shot.shot_id]
        assert HAN.match(clip.prompt)
        assert (record["text_match_language"], record["text_match_text"]) == ("zh", clip.prompt)
        assert (clip.scores.text_match_language, clip.scores.text_match_text) == (
            "zh",
            clip.prompt,
        )
        assert list(clip.scores.text_match_unread_scripts) == []
        assert clip.scores.text_match_enforced and record["text_match_enforced"]
    assert not any(n.startswith(UNREAD_TEXT_NOTICE) for n in project.notices)
    clip = selected(project.shots[0])
    assert await match_again(multilingual_mesh, clip, clip.prompt) == pytest.approx(
        clip.scores.text_match, abs=1e-4
    )
