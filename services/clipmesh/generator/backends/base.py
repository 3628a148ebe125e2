"""The one interface every generation backend implements, and what it is handed.

The gateway owns the job: its queue, its durable record, its events, the output store and the
content cache. A backend only turns one validated `GenerationSpec` into one video file, telling
the gateway what happens on the way through a `TaskContext`:

    validate(spec)            → the spec with the model's defaults filled in, or InvalidArgument
                                naming the field and the allowed values (before any provider call)
    run(spec, ctx)            → a `RenderedVideo` in ctx.scratch_dir, or GenerationFailed
    resume(spec, task_id, ctx)→ the same for a provider task submitted before a restart
    cancel(task_id)           → whether the provider agreed to stop a running task

Extending clipmesh with a self-hosted backend (for example diffusers' `WanPipeline` on a GPU
node) means one module here: `validate` from a `ModelLimits` table, `run` calling the pipeline
in a worker thread with `callback_on_step_end` reporting `ctx.report(step / steps)` and setting
`pipeline._interrupt = True` once `ctx.cancel_requested` is set, `cancels_running = True`, and
registering it in `clipmesh.generator.backends.registry`.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from clipmesh.generator.jobs import GenerationSpec, ShotType
from clipmesh.runtime.errors import InvalidArgument

MAX_LABELS = 64
MAX_LABEL_KEY_CHARS = 128
MAX_LABEL_VALUE_CHARS = 4096
"""Labels ride on every event and listing of a job, and on the library's clips: keep them small
(the index takes the same sizes)."""


@dataclass(frozen=True)
class ModelLimits:
    """What one model of a backend accepts.

    Attributes:
        sizes: Allowed (width, height) pairs; empty means any size within `size_range`.
        default_size: Used when the request gives 0×0.
        durations_s: Allowed clip durations; empty means any within `duration_range_s`.
        default_duration_s: Used when the request gives 0.
        fps: Allowed frame rates (the first is the default).
        max_prompt_chars: Longer prompts are refused, never truncated.
        max_negative_prompt_chars: Same for the negative prompt.
        size_range: (min side, max side, multiple) when `sizes` is empty.
        duration_range_s: (min, max) when `durations_s` is empty.
        multi_shot: Can cut within a clip (`ShotType.MULTI`); False: single shots only.
        audio: Can generate a soundtrack with the video; False: silent video only.
    """

    sizes: tuple[tuple[int, int], ...]
    default_size: tuple[int, int]
    durations_s: tuple[float, ...]
    default_duration_s: float
    fps: tuple[float, ...]
    max_prompt_chars: int
    max_negative_prompt_chars: int
    size_range: tuple[int, int, int] = (128, 1920, 16)
    duration_range_s: tuple[float, float] = (1.0, 10.0)
    multi_shot: bool = False
    audio: bool = False


@dataclass(frozen=True)
class RenderedVideo:
    """A finished video file, not yet in the output store.

    Attributes:
        path: The file, inside the context's scratch directory; the gateway moves it.
        width: Frame width in pixels.
        height: Frame height in pixels.
        fps: Frames per second.
        duration_s: Duration in seconds.
        actual_prompt: The prompt the model used (after the provider's rewriting), or "".
    """

    path: Path
    width: int
    height: int
    fps: float
    duration_s: float
    actual_prompt: str = ""


class GenerationFailed(Exception):
    """The backend could not produce the video; the job fails with this reason.

    Args:
        reason: Stable UPPER_SNAKE_CASE reason ("CONTENT_REJECTED", "PROVIDER_ARREARAGE", …).
        message: For people; never contains secrets.
        provider_code: The provider's own code ("DataInspectionFailed"), when it gave one.
    """

    def __init__(self, reason: str, message: str, *, provider_code: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.provider_code = provider_code


async def _nothing() -> None:
    """A backend's hook no one needs."""


@dataclass
class TaskContext:
    """What the gateway hands a backend for one job.

    Attributes:
        job_id: The gateway's job id (for logs; never sent to a provider as an identity).
        scratch_dir: A private directory for the output and any temporary files.
        report: `await ctx.report(fraction, eta_s, message)` publishes progress; fraction and
            eta_s may be None when unknown.
        submitted: `await ctx.submitted(task_id)` records the provider's task id durably
            *before* returning, so a restart resumes polling instead of submitting twice.
        cancel_requested: Set when the caller cancels; a backend that can stop checks it.
        about_to_submit: A remote backend awaits `ctx.about_to_submit()` just before a billable
            submission leaves (after any wait for the provider's rate limit): the gateway
            commits that the provider may have the task from then on, so a crash after it is
            never resubmitted, and a crash before it simply runs the job again.
    """

    job_id: str
    scratch_dir: Path
    report: Callable[[float | None, float | None, str], Awaitable[None]]
    submitted: Callable[[str], Awaitable[None]]
    cancel_requested: asyncio.Event = field(default_factory=asyncio.Event)
    about_to_submit: Callable[[], Awaitable[None]] = field(default=_nothing)


class Backend(abc.ABC):
    """A text-to-video provider behind the gateway.

    Attributes:
        name: The backend's name in requests and configuration ("animatic", "dashscope").
        default_model: The model used when a request names none.
        models: What each model accepts.
        cancels_running: Whether a *running* task can be stopped (queued jobs always can).
        max_concurrent: How many of its tasks may run at once (the gateway's queue keeps to it).
        remote: True when tasks run at a provider that bills per submission. A job cut off
            between submitting and recording the provider's task id is then failed with
            SUBMISSION_INTERRUPTED after a restart, never submitted a second time. A remote
            backend's `max_concurrent` counts its tasks on every replica together (the
            account's limit); a local one's counts this replica's (its cores).
        submissions_per_s: The provider's submissions a second for the account (None: no
            limit); the gateway holds it across replicas through `use_submission_rate`.
        orphaned_task_s: How long a task whose submission was interrupted (the provider may
            have it; nobody follows it) is taken to occupy one of the account's concurrent
            slots: about as long as a task runs.
    """

    name: str
    default_model: str
    models: dict[str, ModelLimits]
    cancels_running: bool = False
    max_concurrent: int = 1
    remote: bool = False
    submissions_per_s: float | None = None
    orphaned_task_s: float = 0.0

    def use_submission_rate(self, rate) -> None:
        """Spaces this backend's submissions with `rate` (a `slot()` async context manager)
        instead of its own in-process limiter: the gateway's, shared by its replicas."""
        del rate  # a backend without a submission limit has nothing to space

    def validate(self, spec: GenerationSpec) -> GenerationSpec:
        """The spec with this backend's defaults filled in; InvalidArgument naming the field
        and the allowed values when the model does not accept it."""
        return fill_and_check(spec, self.name, self.default_model, self.models)

    @abc.abstractmethod
    async def run(self, spec: GenerationSpec, ctx: TaskContext) -> RenderedVideo:
        """Generates the video for a validated spec."""

    async def resume(
        self, spec: GenerationSpec, provider_task_id: str, ctx: TaskContext
    ) -> RenderedVideo:
        """Finishes a task submitted before a restart; by default runs it again (right for a
        local backend, where nothing is billed)."""
        del provider_task_id
        return await self.run(spec, ctx)

    async def cancel(self, provider_task_id: str) -> bool:
        """Asks the provider to stop a running task; True when it agreed."""
        del provider_task_id
        return False

    async def close(self) -> None:
        """Releases connections; called once when the gateway stops."""
        return None  # nothing to release for a backend without connections


def _allowed(values) -> str:
    return ", ".join(str(v) for v in values)


def fill_and_check(
    spec: GenerationSpec,
    backend: str,
    default_model: str,
    models: dict[str, ModelLimits],
) -> GenerationSpec:
    """Fills defaults from the model's limits and refuses what the model does not accept."""
    model = spec.model or default_model
    limits = models.get(model)
    if limits is None:
        raise InvalidArgument(
            f"backend {backend!r} has no model {model!r}; models: {_allowed(models)}",
            field="spec.model",
            reason="UNSUPPORTED_MODEL",
        )
    filled = dataclasses.replace(spec, backend=backend, model=model)
    _check_prompts(filled, limits)
    _check_labels(filled)
    if (filled.width, filled.height) == (0, 0):
        filled = dataclasses.replace(
            filled, width=limits.default_size[0], height=limits.default_size[1]
        )
    _check_size(filled, limits)
    if filled.duration_s == 0:
        filled = dataclasses.replace(filled, duration_s=limits.default_duration_s)
    _check_duration(filled, limits)
    if filled.fps == 0:
        filled = dataclasses.replace(filled, fps=limits.fps[0])
    if filled.fps not in limits.fps:
        raise InvalidArgument(
            f"fps {filled.fps:g} is not offered by {filled.model}; allowed: {_allowed(limits.fps)}",
            field="spec.fps",
            reason="UNSUPPORTED_FPS",
        )
    _check_shot_type(filled, backend, models)
    _check_audio(filled, backend, models)
    return filled


def _check_prompts(spec: GenerationSpec, limits: ModelLimits) -> None:
    if not spec.prompt.strip():
        raise InvalidArgument("spec.prompt is empty", field="spec.prompt", reason="EMPTY_PROMPT")
    for name, text, limit in (
        ("prompt", spec.prompt, limits.max_prompt_chars),
        ("negative_prompt", spec.negative_prompt, limits.max_negative_prompt_chars),
    ):
        if len(text) > limit:
            raise InvalidArgument(
                f"spec.{name} has {len(text)} characters; {spec.model} takes at most {limit} "
                "(shorten it: prompts are never truncated silently)",
                field=f"spec.{name}",
                reason="PROMPT_TOO_LONG",
            )
        if "\x00" in text:
            raise InvalidArgument(
                f"spec.{name} contains a NUL character", field=f"spec.{name}", reason="BAD_PROMPT"
            )


def _check_labels(spec: GenerationSpec) -> None:
    if len(spec.labels) > MAX_LABELS:
        raise InvalidArgument(
            f"spec.labels has {len(spec.labels)} entries; the limit is {MAX_LABELS}",
            field="spec.labels",
            reason="TOO_MANY_LABELS",
        )
    for key, value in spec.labels.items():
        if not key or len(key) > MAX_LABEL_KEY_CHARS or len(value) > MAX_LABEL_VALUE_CHARS:
            raise InvalidArgument(
                f"spec.labels[{key[:40]!r}]: keys take 1 to {MAX_LABEL_KEY_CHARS} characters "
                f"and values at most {MAX_LABEL_VALUE_CHARS}",
                field="spec.labels",
                reason="LABEL_TOO_LONG",
            )


def _check_size(spec: GenerationSpec, limits: ModelLimits) -> None:
    size = (spec.width, spec.height)
    if limits.sizes:
        if size not in limits.sizes:
            allowed = _allowed(f"{w}x{h}" for w, h in limits.sizes)
            raise InvalidArgument(
                f"size {spec.width}x{spec.height} is not offered by {spec.model}; "
                f"allowed: {allowed}",
                field="spec.width",
                reason="UNSUPPORTED_SIZE",
            )
        return
    low, high, multiple = limits.size_range
    if not all(low <= side <= high and side % multiple == 0 for side in size):
        raise InvalidArgument(
            f"size {spec.width}x{spec.height}: each side must be {low}–{high} pixels and a "
            f"multiple of {multiple}",
            field="spec.width",
            reason="UNSUPPORTED_SIZE",
        )


def _check_duration(spec: GenerationSpec, limits: ModelLimits) -> None:
    if limits.durations_s:
        if spec.duration_s not in limits.durations_s:
            raise InvalidArgument(
                f"duration {spec.duration_s:g} s is not offered by {spec.model}; allowed: "
                f"{_allowed(f'{d:g} s' for d in limits.durations_s)}",
                field="spec.duration_s",
                reason="UNSUPPORTED_DURATION",
            )
        return
    low, high = limits.duration_range_s
    if not low <= spec.duration_s <= high:
        raise InvalidArgument(
            f"duration {spec.duration_s:g} s must be {low:g}–{high:g} s",
            field="spec.duration_s",
            reason="UNSUPPORTED_DURATION",
        )


def _offering(backend: str, models: dict[str, ModelLimits], capability: str, verb: str) -> str:
    """Which of the backend's models can `verb` (a capability of `ModelLimits`), for a refusal."""
    names = [name for name, limits in models.items() if getattr(limits, capability)]
    if not names:
        return f"no model of {backend!r} can {verb}"
    return f"models of {backend!r} that can {verb}: {_allowed(names)}"


def _check_shot_type(spec: GenerationSpec, backend: str, models: dict[str, ModelLimits]) -> None:
    if spec.shot_type is ShotType.MULTI and not models[spec.model].multi_shot:
        offering = _offering(backend, models, "multi_shot", "cut within a clip")
        raise InvalidArgument(
            f"{spec.model} makes single-shot clips only; allowed shot types: single ({offering})",
            field="spec.shot_type",
            reason="UNSUPPORTED_SHOT_TYPE",
        )


def _check_audio(spec: GenerationSpec, backend: str, models: dict[str, ModelLimits]) -> None:
    if spec.generate_audio and not models[spec.model].audio:
        offering = _offering(backend, models, "audio", "generate a soundtrack")
        raise InvalidArgument(
            f"{spec.model} makes silent video only; generate_audio may be unset or false "
            f"({offering})",
            field="spec.generate_audio",
            reason="UNSUPPORTED_AUDIO",
        )
