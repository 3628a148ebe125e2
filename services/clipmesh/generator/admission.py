"""What the gateway admits: known, configured backends, and fair shares of its queue."""

from __future__ import annotations

from dataclasses import dataclass

from clipmesh.generator.backends.base import Backend
from clipmesh.runtime.errors import FailedPrecondition, InvalidArgument, ResourceExhausted


@dataclass(frozen=True)
class GatewayLimits:
    """What the gateway admits.

    Attributes:
        max_queued_jobs: Jobs waiting at once across callers.
        max_active_jobs_per_caller: Queued plus running jobs per caller.
    """

    max_queued_jobs: int = 10_000
    max_active_jobs_per_caller: int = 200


class Admission:
    """Checks a submission before the gateway stores it."""

    def __init__(
        self,
        backends: dict[str, Backend],
        *,
        default_backend: str,
        unavailable: dict[str, str],
        limits: GatewayLimits,
    ) -> None:
        self._backends = backends
        self._default_backend = default_backend
        self._unavailable = unavailable
        self._limits = limits

    def backend(self, name: str) -> Backend:
        """The backend a request names ("" = the default), or the error saying why not."""
        name = name or self._default_backend
        if name in self._unavailable:
            raise FailedPrecondition(
                f"backend {name!r} is not configured: {self._unavailable[name]}",
                field="spec.backend",
                reason="BACKEND_NOT_CONFIGURED",
            )
        backend = self._backends.get(name)
        if backend is None:
            known = ", ".join(sorted([*self._backends, *self._unavailable]))
            raise InvalidArgument(
                f"unknown backend {name!r}; backends: {known}",
                field="spec.backend",
                reason="UNKNOWN_BACKEND",
            )
        return backend

    def check(self, caller: str, *, queued: int, active: int) -> None:
        """Refuses a job when the queue is full or `caller` already holds its share."""
        if queued >= self._limits.max_queued_jobs:
            raise ResourceExhausted(
                f"the gateway's queue is full ({queued} jobs waiting)",
                retry_after_s=30,
                reason="QUEUE_FULL",
            )
        if active >= self._limits.max_active_jobs_per_caller:
            raise ResourceExhausted(
                f"caller {caller!r} has {active} jobs queued or running; the limit is "
                f"{self._limits.max_active_jobs_per_caller}",
                retry_after_s=10,
                reason="TOO_MANY_JOBS",
            )
