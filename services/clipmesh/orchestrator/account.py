"""Who am I: the caller as the API takes it — its roles, collections and quota use.

Ingest quotas are charged here (the orchestrator's quota ledger); generation quotas at the
gateway, which is asked for them. A gateway that does not answer leaves them out with a warning
rather than failing the call: a caller asking what it may do should learn what is known.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from clipmesh.generator.client import GatewayClient
from clipmesh.runtime.access import Principal
from clipmesh.runtime.errors import ServiceError
from clipmesh.runtime.policy import Grant, Quota
from clipmesh.runtime.usage import QuotaLedger, QuotaUse

GATEWAY_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class CallerInfo:
    """What GetCaller answers."""

    caller: str
    admin: bool
    authorization_enabled: bool
    grants: tuple[Grant, ...]
    quotas: list[QuotaUse] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class Accounts:
    """Describes callers from the policy, the ingest ledger and the gateway."""

    def __init__(self, quotas: QuotaLedger, gateway: GatewayClient) -> None:
        self._quotas = quotas
        self._gateway = gateway

    async def describe(self, principal: Principal) -> CallerInfo:
        info = CallerInfo(
            caller=principal.caller,
            admin=principal.admin,
            authorization_enabled=principal.enforced,
            grants=principal.policy.grants,
            quotas=await self._quotas.use(principal.policy, [Quota.INGEST_BYTES_PER_DAY]),
        )
        try:
            info.quotas.extend(
                await self._gateway.usage(caller=principal.caller, timeout_s=GATEWAY_TIMEOUT_S)
            )
        except ServiceError as error:
            info.warnings.append(f"generation quotas unknown: {error.message}")
        return info
