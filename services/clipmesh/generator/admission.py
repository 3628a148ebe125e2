"""What the gateway admits: known, configured backends, fair shares of its queue, each caller's
quotas, and webhooks only where the policy lets them go."""

from __future__ import annotations

from dataclasses import dataclass

from clipmesh.generator.backends.base import Backend
from clipmesh.generator.jobs import GenerationSpec
from clipmesh.generator.store import Charge
from clipmesh.generator.webhook_urls import check_webhook_url
from clipmesh.runtime.access import PolicySource, Principal
from clipmesh.runtime.errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from clipmesh.runtime.policy import Quota
from clipmesh.runtime.usage import QuotaUse, quota_exceeded


@dataclass(frozen=True)
class GatewayLimits:
    """What the gateway admits.

    Attributes:
        max_queued_jobs: Jobs waiting at once across callers.
        max_active_jobs_per_caller: Queued plus running jobs per caller, unless the policy
            sets the caller's `concurrent_jobs`.
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
        policies: PolicySource,
    ) -> None:
        self._backends = backends
        self._default_backend = default_backend
        self._unavailable = unavailable
        self._limits = limits
        self._policies = policies

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

    def webhook(self, principal: Principal, url: str) -> str:
        """The job's webhook URL once checked ("" for none), or why it is refused."""
        if not url:
            return ""
        target = check_webhook_url(
            url, self._policies.current().webhooks, principal.policy.webhook_hosts
        )
        if not principal.policy.webhook_secrets:
            raise FailedPrecondition(
                f"caller {principal.caller!r} has no webhook secret to sign events with; the "
                "policy lists a caller's `webhook_secrets`",
                reason="WEBHOOK_SECRET_MISSING",
                metadata={"field": "webhook_url"},
            )
        return target.url

    def check(self, principal: Principal, *, queued: int, active: int) -> None:
        """Refuses a job when the queue is full or the caller already holds its jobs at once."""
        if queued >= self._limits.max_queued_jobs:
            raise ResourceExhausted(
                f"the gateway's queue is full ({queued} jobs waiting)",
                retry_after_s=30,
                reason="QUEUE_FULL",
            )
        limit = self.concurrent_limit(principal)
        if active >= limit:
            raise quota_exceeded(
                principal.caller, Quota.CONCURRENT_JOBS, limit=limit, used=active, asked=1, now_s=0
            )

    def concurrent_limit(self, principal: Principal) -> int:
        """Jobs the caller may hold queued or running at once."""
        own = principal.policy.limit(Quota.CONCURRENT_JOBS)
        return int(own) if own is not None else self._limits.max_active_jobs_per_caller

    @staticmethod
    def charge(principal: Principal, backend: Backend, spec: GenerationSpec) -> Charge | None:
        """What the job costs its caller: its seconds of video on a paid (remote) backend."""
        if not backend.remote:
            return None
        return Charge(principal.policy, Quota.PROVIDER_VIDEO_SECONDS_PER_DAY, spec.duration_s)

    def concurrent_use(self, principal: Principal, active: int) -> QuotaUse:
        return QuotaUse(Quota.CONCURRENT_JOBS, self.concurrent_limit(principal), active)
