"""`GatewayClient`: what other services ask of the generator gateway, in its domain records.

(The SDK's `clipmesh_client.generation.GeneratorClient` is the blocking client for outside
callers; this one is the services' own, asyncio, returning `generator.jobs` records.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from clipmesh.generator.convert import event_from_proto, spec_to_proto
from clipmesh.generator.jobs import GenerationSpec, JobEvent
from clipmesh.runtime.dependencies import DependencyClient
from clipmesh.runtime.usage import QuotaUse, quota_use_from_proto
from clipmesh_api.generator.v1 import generator_pb2, generator_pb2_grpc
from clipmesh_client.wire import CALLER_HEADER


class GatewayClient(DependencyClient):
    """Calls the generator gateway."""

    service = "generator"
    stub_type = generator_pb2_grpc.GeneratorServiceStub

    async def generate(
        self, spec: GenerationSpec, *, idempotency_key: str, caller: str, timeout_s: float
    ) -> AsyncIterator[JobEvent]:
        """Submits a job (or re-attaches to the one with the same key) and yields its events
        until it ends; leaving early stops the stream, not the job.

        Args:
            spec: What to generate.
            idempotency_key: The same key with the same spec is the same job.
            caller: Whom the job is for (the gateway's per-caller limits and listings).
            timeout_s: Deadline of the whole stream.
        """
        request = generator_pb2.GenerateRequest(
            spec=spec_to_proto(spec), idempotency_key=idempotency_key
        )
        with self.errors():
            call = self._stub.Generate(request, timeout=timeout_s, metadata=_on_behalf_of(caller))
            async for response in call:
                yield event_from_proto(response.event)

    async def download_output(
        self, job_id: str, *, caller: str, timeout_s: float
    ) -> AsyncIterator[bytes]:
        """The bytes of a succeeded job's video, in chunks (the job is `caller`'s own)."""
        request = generator_pb2.DownloadJobOutputRequest(job_id=job_id)
        with self.errors():
            call = self._stub.DownloadJobOutput(
                request, timeout=timeout_s, metadata=_on_behalf_of(caller)
            )
            async for response in call:
                yield response.chunk

    async def usage(self, *, caller: str, timeout_s: float) -> list[QuotaUse]:
        """The generation quotas of `caller`."""
        with self.errors():
            response = await self._stub.GetUsage(
                generator_pb2.GetUsageRequest(), timeout=timeout_s, metadata=_on_behalf_of(caller)
            )
        return [quota_use_from_proto(q) for q in response.quotas]

    async def relay(self, method: str, request: Any, *, caller: str, timeout_s: float) -> Any:
        """Calls the unary `method` for `caller` and returns its answer as the gateway gave it;
        the gateway's refusals are passed on unchanged (`RelayedError`)."""
        with self.relayed_errors():
            return await getattr(self._stub, method)(
                request, timeout=timeout_s, metadata=_on_behalf_of(caller)
            )

    async def relay_stream(
        self, method: str, request: Any, *, caller: str, timeout_s: float
    ) -> AsyncIterator[Any]:
        """As `relay`, for a server-streaming `method`: yields each answer as it comes."""
        with self.relayed_errors():
            call = getattr(self._stub, method)(
                request, timeout=timeout_s, metadata=_on_behalf_of(caller)
            )
            async for response in call:
                yield response


def _on_behalf_of(caller: str) -> tuple[tuple[str, str], ...]:
    """The metadata naming whom a call is for (the gateway trusts it: mTLS inside the mesh)."""
    return ((CALLER_HEADER, caller),) if caller else ()
