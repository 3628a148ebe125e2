"""The dashscope backend against the real DashScope; skipped unless DASHSCOPE_API_KEY is set.

It submits one 480P 5 s wan2.2-t2v-plus task (billed to the key's account) to the
international endpoint, or to CLIPMESH_GENERATOR_DASHSCOPE_BASE_URL when set, and follows it
to a downloaded, probed video.
"""

from __future__ import annotations

import os

import pytest

from clipmesh.generator.backends.base import TaskContext
from clipmesh.generator.backends.dashscope import DashScopeBackend
from clipmesh.generator.jobs import GenerationSpec

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
