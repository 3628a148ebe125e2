"""GeneratorService on the public API, relayed to the generator gateway.

Why through the orchestrator rather than a public port on the gateway: the public API keeps one
address, one set of TLS certificates, one tokens file and one place where roles are checked,
and the gateway stays an internal service that only the mesh's own services reach (mutual TLS).
`AccessControl` has already checked the caller's `generate` role (the access rules of
generator.proto) when a call gets here; it is passed on with the caller's name in
`x-clipmesh-caller`, which the gateway trusts because only the mesh reaches it, and the
gateway keeps jobs apart by that name and charges its quotas. Requests and answers pass as they
are, and so do the gateway's refusals (reason, domain, retry hint, QuotaFailure); a gateway
that cannot be reached is GENERATOR_UNAVAILABLE.

A caller without a deadline gets a day: Generate and WatchJob stream until their job ends,
which may take long, and leaving early never stops a job.
"""

from __future__ import annotations

from clipmesh.generator.client import GatewayClient
from clipmesh.runtime.access import current_principal
from clipmesh.runtime.errors import Unavailable
from clipmesh_api.generator.v1 import generator_pb2_grpc

NO_DEADLINE_S = 86_400.0


def _gateway(client: GatewayClient | None) -> GatewayClient:
    if client is None:
        raise Unavailable("the orchestrator is still starting")
    return client


def _timeout_s(context) -> float:
    remaining = context.time_remaining()
    return NO_DEADLINE_S if remaining is None else remaining


class GenerationRelay(generator_pb2_grpc.GeneratorServiceServicer):
    """Serves GeneratorService by relaying each call to the gateway for the current caller."""

    def __init__(self) -> None:
        self.gateway: GatewayClient | None = None  # set once the service has started

    async def _unary(self, method: str, request, context):
        return await _gateway(self.gateway).relay(
            method, request, caller=current_principal().caller, timeout_s=_timeout_s(context)
        )

    async def _stream(self, method: str, request, context):
        answers = _gateway(self.gateway).relay_stream(
            method, request, caller=current_principal().caller, timeout_s=_timeout_s(context)
        )
        async for answer in answers:
            yield answer

    async def Generate(self, request, context):
        async for answer in self._stream("Generate", request, context):
            yield answer

    async def WatchJob(self, request, context):
        async for answer in self._stream("WatchJob", request, context):
            yield answer

    async def DownloadJobOutput(self, request, context):
        async for answer in self._stream("DownloadJobOutput", request, context):
            yield answer

    async def GetJob(self, request, context):
        return await self._unary("GetJob", request, context)

    async def CancelJob(self, request, context):
        return await self._unary("CancelJob", request, context)

    async def ListJobs(self, request, context):
        return await self._unary("ListJobs", request, context)

    async def DeleteJobOutput(self, request, context):
        return await self._unary("DeleteJobOutput", request, context)

    async def GetUsage(self, request, context):
        return await self._unary("GetUsage", request, context)
