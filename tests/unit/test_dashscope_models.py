"""DashScope's Wan models: what each accepts is checked before any provider call, the request
body carries shot type and soundtrack only to the models that take them, and the cache and the
idempotency digest tell a multi-shot or silent request from a default one."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from clipmesh.generator.backends.animatic import AnimaticBackend
from clipmesh.generator.backends.dashscope import DashScopeBackend
from clipmesh.generator.backends.dashscope_api import request_body
from clipmesh.generator.cache import cache_key
from clipmesh.generator.jobs import GenerationSpec, ShotType, request_digest
from clipmesh.runtime.errors import InvalidArgument
from tests.fakes.dashscope_tasks import Refusal, check_submission

# Only validates: it never calls out.
DASHSCOPE = DashScopeBackend(base_url="http://127.0.0.1:9/api/v1", api_key="sk-unit")


def checked(model: str, **fields) -> GenerationSpec:
    fields = {"prompt": "a fox in fresh snow", **fields}
    return DASHSCOPE.validate(GenerationSpec(model=model, **fields))


def refusal(model: str, **fields) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as refused:
        checked(model, **fields)
    return refused.value


@pytest.mark.parametrize(
    ("model", "defaults"),
    [
        ("wan2.6-t2v", (1920, 1080, 5.0, 30.0)),
        ("wan2.5-t2v-preview", (1920, 1080, 5.0, 24.0)),
        ("wan2.2-t2v-plus", (1920, 1080, 5.0, 30.0)),
    ],
)
def test_each_model_fills_its_own_defaults(model, defaults) -> None:
    filled = checked(model)
    assert (filled.width, filled.height, filled.duration_s, filled.fps) == defaults
    assert (filled.shot_type, filled.generate_audio) == (None, None)  # the model's own


def test_wan26_takes_1080p_and_any_whole_second_from_2_to_15() -> None:
    for (width, height), seconds in itertools.product(
        [(1920, 1080), (1080, 1920), (1440, 1440), (1280, 720)], range(2, 16)
    ):
        assert checked("wan2.6-t2v", width=width, height=height, duration_s=seconds).duration_s


@pytest.mark.parametrize(
    ("model", "fields", "field", "reason", "mentions"),
    [
        ("wan2.6-t2v", {"width": 832, "height": 480}, "spec.width", "UNSUPPORTED_SIZE", "1280x720"),
        ("wan2.6-t2v", {"duration_s": 1}, "spec.duration_s", "UNSUPPORTED_DURATION", "2 s, 3 s"),
        ("wan2.6-t2v", {"duration_s": 16}, "spec.duration_s", "UNSUPPORTED_DURATION", "15 s"),
        ("wan2.6-t2v", {"duration_s": 7.5}, "spec.duration_s", "UNSUPPORTED_DURATION", "7 s"),
        ("wan2.6-t2v", {"fps": 24}, "spec.fps", "UNSUPPORTED_FPS", "allowed: 30"),
        ("wan2.6-t2v", {"prompt": "x" * 1501}, "spec.prompt", "PROMPT_TOO_LONG", "at most 1500"),
        ("wan2.5-t2v-preview", {"duration_s": 15}, "spec.duration_s", "", "allowed: 5 s, 10 s"),
        ("wan2.5-t2v-preview", {"prompt": "x" * 2001}, "spec.prompt", "", "at most 2000"),
        ("wan2.2-t2v-plus", {"prompt": "x" * 801}, "spec.prompt", "", "at most 800"),
    ],
)
def test_what_a_model_does_not_offer_is_refused_naming_the_field_and_the_choices(
    model, fields, field, reason, mentions
) -> None:
    refused = refusal(model, **fields)
    assert refused.field == field
    assert not reason or refused.reason == reason
    assert mentions in refused.message


def test_a_prompt_at_a_models_limit_is_accepted() -> None:
    assert checked("wan2.6-t2v", prompt="x" * 1500).prompt
    assert checked("wan2.5-t2v-preview", prompt="x" * 2000).prompt


@pytest.mark.parametrize("model", ["wan2.5-t2v-preview", "wan2.2-t2v-plus", "wanx2.1-t2v-plus"])
def test_multi_shot_is_refused_by_models_that_make_single_shots(model) -> None:
    refused = refusal(model, shot_type=ShotType.MULTI)
    assert (refused.field, refused.reason) == ("spec.shot_type", "UNSUPPORTED_SHOT_TYPE")
    assert "allowed shot types: single" in refused.message
    assert "that can cut within a clip: wan2.6-t2v" in refused.message
    assert checked(model, shot_type=ShotType.SINGLE).shot_type is ShotType.SINGLE


@pytest.mark.parametrize("model", ["wan2.2-t2v-plus", "wanx2.1-t2v-turbo"])
def test_a_soundtrack_is_refused_by_silent_models(model) -> None:
    refused = refusal(model, generate_audio=True)
    assert (refused.field, refused.reason) == ("spec.generate_audio", "UNSUPPORTED_AUDIO")
    assert "wan2.6-t2v, wan2.5-t2v-preview" in refused.message
    assert checked(model, generate_audio=False).generate_audio is False


def test_multi_shot_with_prompt_rewriting_off_is_refused() -> None:
    refused = refusal("wan2.6-t2v", shot_type=ShotType.MULTI, prompt_extend=False)
    assert (refused.field, refused.reason) == (
        "spec.prompt_extend",
        "MULTI_SHOT_NEEDS_PROMPT_EXTEND",
    )
    assert checked("wan2.6-t2v", shot_type=ShotType.MULTI, prompt_extend=True).shot_type


def test_the_animatic_backend_refuses_multi_shot_and_sound() -> None:
    animatic = AnimaticBackend()
    small = {"prompt": "a fox", "width": 160, "height": 128, "duration_s": 1.0}
    for fields, field in (
        ({"shot_type": ShotType.MULTI}, "spec.shot_type"),
        ({"generate_audio": True}, "spec.generate_audio"),
    ):
        with pytest.raises(InvalidArgument) as refused:
            animatic.validate(GenerationSpec(**small, **fields))
        assert refused.value.field == field
        assert "no model of 'animatic' can" in refused.value.message


def test_the_request_body_carries_shot_type_and_audio_to_wan26_only_when_asked() -> None:
    asked = request_body(checked("wan2.6-t2v", shot_type=ShotType.MULTI, generate_audio=False))
    assert asked["parameters"] | {"shot_type": "multi", "audio": False} == asked["parameters"]
    assert asked["parameters"]["prompt_extend"] is True  # multi-shot needs it: the default
    left = request_body(checked("wan2.6-t2v"))["parameters"]
    assert "shot_type" not in left and "audio" not in left  # the model's defaults
    single = request_body(checked("wan2.2-t2v-plus", shot_type=ShotType.SINGLE))["parameters"]
    silent = request_body(checked("wan2.2-t2v-plus", generate_audio=False))["parameters"]
    assert "shot_type" not in single and "audio" not in silent  # not wan2.2's parameters


def test_every_shot_type_and_sound_the_backend_accepts_the_provider_accepts_too() -> None:
    """The backend's table against the fake provider's, written apart from the docs."""
    choices = itertools.product(
        DASHSCOPE.models.items(), (None, *ShotType), (None, True, False), (None, False)
    )
    accepted = 0
    for (model, limits), shot_type, audio, extend in choices:
        fields = {"shot_type": shot_type, "generate_audio": audio, "prompt_extend": extend}
        try:
            spec = checked(model, **fields)
        except InvalidArgument:
            continue
        submission = check_submission(request_body(spec))
        assert submission.shots == ("multi" if shot_type is ShotType.MULTI else "single")
        assert submission.audio == (limits.audio and audio is not False)
        accepted += 1
    assert accepted > len(DASHSCOPE.models)


def test_the_provider_refuses_a_duration_or_size_its_model_does_not_take() -> None:
    body = request_body(checked("wan2.6-t2v"))
    for change in ({"duration": 20}, {"size": "832*480"}, {"shot_type": "triple"}):
        with pytest.raises(Refusal) as refused:
            check_submission({**body, "parameters": body["parameters"] | change})
        assert (refused.value.status, refused.value.code) == (400, "InvalidParameter")


def test_a_multi_shot_or_silent_request_is_never_served_a_default_ones_cached_video() -> None:
    base = checked("wan2.6-t2v", seed=7)
    variants = [
        base,
        dataclasses.replace(base, shot_type=ShotType.SINGLE),
        dataclasses.replace(base, shot_type=ShotType.MULTI),
        dataclasses.replace(base, generate_audio=True),
        dataclasses.replace(base, generate_audio=False),
    ]
    assert len({cache_key(spec) for spec in variants}) == len(variants)
    assert len({request_digest(spec) for spec in variants}) == len(variants)


def test_keys_of_requests_made_before_shot_types_existed_are_unchanged() -> None:
    spec = GenerationSpec(
        prompt="a lighthouse at dusk",
        backend="dashscope",
        model="wan2.5-t2v-preview",
        width=1920,
        height=1080,
        duration_s=10.0,
        fps=24.0,
        seed=7,
        labels={"shot": "s001"},
    )
    # Computed by the release before: stored cache entries and idempotency keys still match.
    assert cache_key(spec) == "d8deb5c05b01e3f6f80156071c9399d2e4cb8e8673a48a4e28e1abb838577785"
    assert request_digest(spec) == (
        "cb155f5eba38a8240b93df1a98bf156be923e40531c3d9669db93983b73531b0"
    )
