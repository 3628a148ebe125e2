"""The dashscope backend against the real DashScope; skipped unless DASHSCOPE_API_KEY is set.

It submits one 480P 5 s wan2.2-t2v-plus task and one 720P 5 s multi-shot wan2.6-t2v task with
a soundtrack (both billed to the key's account) to the international endpoint, or to
CLIPMESH_GENERATOR_DASHSCOPE_BASE_URL when set, and follows each to a downloaded, probed video:
the second checks what the model table takes from pages that do not say it (wan2.6's frame
rate, its `audio` parameter).
"""

from __future__ import annotations

import os

import av
import pytest

from clipmesh.generator.backends.base import TaskContext
from clipmesh.generator.backends.dashscope import DashScopeBackend
from clipmesh.generator.jobs import GenerationSpec, ShotType

API_KEY = os.environ.get("DASHSCOPE_API_KEY", "")
BASE_URL = os.environ.get(
    "CLIPMESH_GENERATOR_DASHSCOPE_BASE_URL", "https://dashscope-intl.aliyuncs.com/api/v1"
)

pytestmark = [
    pytest.mark.skipif(not API_KEY, reason="DASHSCOPE_API_KEY is not set"),
    pytest.mark.slow,
    pytest.mark.timeout(1200),  # a real task queues and renders for minutes
]


async def test_a_480p_clip_is_generated_downloaded_and_probed(tmp_path) -> None:
    submitted: list[str] = []
    messages: list[str] = []

    async def report(fraction, eta_s, message) -> None:
        messages.append(message)

    async def record(task_id: str) -> None:
        submitted.append(task_id)

    backend = DashScopeBackend(
        base_url=BASE_URL, api_key=API_KEY, submissions_per_s=1, max_concurrent=1
    )
    spec = backend.validate(
        GenerationSpec(
            prompt="A paper boat drifts down a rain-filled gutter, close-up, overcast light",
            model="wan2.2-t2v-plus",
            width=832,
            height=480,
            duration_s=5,
            seed=42,
        )
    )
    try:
        video = await backend.run(spec, TaskContext("live-1", tmp_path, report, record))
    finally:
        await backend.close()

    assert len(submitted) == 1
    assert messages[0] == f"submitted to DashScope (task {submitted[0]})"
    assert (video.width, video.height) == (832, 480)
    assert 4.5 <= video.duration_s <= 5.5
    assert video.path.parent == tmp_path and video.path.stat().st_size > 0
    assert video.actual_prompt  # prompt_extend is on by default: the provider reports its rewrite
    assert API_KEY not in repr(backend)


async def test_a_wan26_multi_shot_clip_comes_with_a_soundtrack_at_the_tables_frame_rate(
    tmp_path,
) -> None:
    async def report(fraction, eta_s, message) -> None:
        del fraction, eta_s, message

    async def record(task_id: str) -> None:
        del task_id

    backend = DashScopeBackend(
        base_url=BASE_URL, api_key=API_KEY, submissions_per_s=1, max_concurrent=1
    )
    spec = backend.validate(
        GenerationSpec(
            prompt="A cat knocks a cup off a kitchen table; a close-up of the cup shattering",
            model="wan2.6-t2v",
            width=1280,
            height=720,
            duration_s=5,
            seed=42,
            shot_type=ShotType.MULTI,
            generate_audio=True,
        )
    )
    try:
        video = await backend.run(spec, TaskContext("live-2", tmp_path, report, record))
    finally:
        await backend.close()

    assert (video.width, video.height) == (1280, 720)
    assert 4.5 <= video.duration_s <= 5.5
    assert video.fps == backend.models["wan2.6-t2v"].fps[0]
    with av.open(str(video.path)) as container:
        assert container.streams.audio, "wan2.6 was asked for a soundtrack"
