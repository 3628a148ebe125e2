"""Generator gateway settings (`CLIPMESH_GENERATOR_*`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clipmesh.runtime.config import ConfigError, SharedStoreConfig, setting

DASHSCOPE_INTL_BASE_URL = "https://dashscope-intl.aliyuncs.com/api/v1"
"""Model Studio's international (Singapore) endpoint; Beijing is dashscope.aliyuncs.com."""


@dataclass(frozen=True)
class GeneratorConfig(SharedStoreConfig):
    """How the generator gateway serves."""

    SERVICE = "generator"
    USES_POLICY = True

    port: int = setting(50053, help="gRPC port.", minimum=0, maximum=65535)
    metrics_port: int = setting(9153, help="Prometheus metrics port.", minimum=0, maximum=65535)
    data_dir: Path = setting(
        Path("clipmesh-data/generator"),
        help="Directory for the job store (SQLite, unless store names a database), the output "
        "store (unless outputs_dir moves it) and scratch files.",
    )
    outputs_dir: Path = setting(
        Path(""),
        help="Directory of generated videos (by content); empty = DATA_DIR/outputs. With a "
        "PostgreSQL store, a volume every replica mounts (ReadWriteMany).",
    )
    default_backend: str = setting(
        "animatic",
        help="Backend for requests that name none.",
        choices=("animatic", "dashscope"),
    )
    animatic_max_concurrent: int = setting(
        1, help="Animatic renders at once (each uses a CPU core).", minimum=1, maximum=64
    )
    dashscope_base_url: str = setting(
        DASHSCOPE_INTL_BASE_URL, help="DashScope API base URL of the account's region."
    )
    dashscope_api_key: str = setting(
        "",
        help="DashScope API key; prefer DASHSCOPE_API_KEY_FILE (a mounted Kubernetes Secret).",
        secret=True,
    )
    dashscope_api_key_file: Path = setting(
        Path(""), help="File holding the DashScope API key (read at start-up)."
    )
    dashscope_submissions_per_s: float = setting(
        2.0,
        help="Task submissions per second for the whole account (all keys share it).",
        minimum=0.01,
        maximum=1000,
    )
    dashscope_max_concurrent: int = setting(
        2, help="Provider tasks running at once for the account.", minimum=1, maximum=1000
    )
    dashscope_poll_initial_s: float = setting(
        2.0, help="First wait before polling a task; grows to the maximum.", minimum=0.01
    )
    dashscope_poll_max_s: float = setting(
        15.0, help="Longest wait between two polls of a task.", minimum=0.01
    )
    dashscope_orphaned_task_s: float = setting(
        300.0,
        help="After a submission cut off by a crash (the provider may have the task; nobody "
        "follows it), how long that task is counted against the account's concurrent tasks.",
        minimum=0,
        maximum=3600,
    )
    dashscope_max_retries: int = setting(
        5, help="Retries of a 429, 5xx or transport error.", minimum=0, maximum=20
    )
    dashscope_retry_base_s: float = setting(
        0.5, help="Base of the exponential backoff (with full jitter).", minimum=0.001
    )
    max_queued_jobs: int = setting(
        10_000, help="Jobs waiting at once, all callers; beyond it Generate is refused.", minimum=1
    )
    max_active_jobs_per_caller: int = setting(
        200, help="Queued plus running jobs one caller may hold.", minimum=1
    )
    max_running_jobs_per_caller: int = setting(
        0,
        help="Jobs of one caller running at once on one backend, on every replica together, so "
        "one team's burst cannot take every provider slot (0 = no bound).",
        minimum=0,
    )
    webhook_timeout_s: float = setting(
        10.0, help="Longest one webhook delivery attempt may take.", minimum=0.1, maximum=120
    )
    webhook_initial_backoff_s: float = setting(
        5.0,
        help="Wait after a webhook's first failed attempt; doubles with each failure.",
        minimum=0.01,
        maximum=3600,
    )
    webhook_max_backoff_s: float = setting(
        600.0, help="Longest wait between two attempts of a webhook.", minimum=0.01, maximum=86400
    )
    webhook_max_age_s: float = setting(
        86_400.0,
        help="How long after its job's end a webhook is retried before it is given up.",
        minimum=3600,
        maximum=30 * 86400,
    )
    cache_memory_entries: int = setting(
        1024, help="Content-cache entries kept hot in memory.", minimum=0
    )
    cache_max_mb: int = setting(
        2048,
        help="Bytes of video the content cache may hold (least recently used goes first).",
        minimum=0,
    )

    def outputs_path(self) -> Path:
        """Where generated videos are kept."""
        if str(self.outputs_dir) in ("", "."):
            return self.data_dir / "outputs"
        return self.outputs_dir

    def dashscope_key(self) -> str:
        """The API key from the file when one is configured, else from the setting."""
        if str(self.dashscope_api_key_file) not in ("", "."):
            try:
                return self.dashscope_api_key_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"CLIPMESH_GENERATOR_DASHSCOPE_API_KEY_FILE: cannot read "
                    f"{self.dashscope_api_key_file}: {exc.strerror}"
                ) from exc
        return self.dashscope_api_key.strip()
