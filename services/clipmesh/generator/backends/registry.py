"""Which backends a gateway runs, from its configuration.

`animatic` always runs (offline, no GPU). `dashscope` runs when an API key is configured;
without one, requests naming it get FAILED_PRECONDITION saying how to configure it. A new
backend (a self-hosted `WanPipeline`, say) is added here, behind its own settings.
"""

from __future__ import annotations

from clipmesh.generator.backends.animatic import AnimaticBackend
from clipmesh.generator.backends.base import Backend
from clipmesh.generator.config import GeneratorConfig


def build_backends(config: GeneratorConfig) -> tuple[dict[str, Backend], dict[str, str]]:
    """(backends by name, {name: why it is not available}) for `config`."""
    backends: dict[str, Backend] = {
        "animatic": AnimaticBackend(max_concurrent=config.animatic_max_concurrent)
    }
    unavailable: dict[str, str] = {}
    api_key = config.dashscope_key()
    if api_key:
        from clipmesh.generator.backends.dashscope import DashScopeBackend

        backends["dashscope"] = DashScopeBackend(
            base_url=config.dashscope_base_url,
            api_key=api_key,
            submissions_per_s=config.dashscope_submissions_per_s,
            max_concurrent=config.dashscope_max_concurrent,
            poll_initial_s=config.dashscope_poll_initial_s,
            poll_max_s=config.dashscope_poll_max_s,
            orphaned_task_s=config.dashscope_orphaned_task_s,
            max_retries=config.dashscope_max_retries,
            retry_base_s=config.dashscope_retry_base_s,
        )
    else:
        unavailable["dashscope"] = (
            "no API key (set CLIPMESH_GENERATOR_DASHSCOPE_API_KEY_FILE to a mounted secret, "
            "or CLIPMESH_GENERATOR_DASHSCOPE_API_KEY)"
        )
    return backends, unavailable
