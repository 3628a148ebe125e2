"""gRPC servicer of the generator gateway: translates proto ↔ domain, nothing else."""

from __future__ import annotations

import asyncio

from clipmesh.generator.convert import (
    event_to_proto,
    job_to_proto,
    outcome_to_proto,
    spec_from_proto,
)
from clipmesh.generator.gateway import Gateway
from clipmesh.generator.requests import job_id, parse_listing
from clipmesh.runtime.access import current_principal
from clipmesh.runtime.usage import quota_use_to_proto
from clipmesh_api.common.v1 import common_pb2
from clipmesh_api.generator.v1 import generator_pb2, generator_pb2_grpc


class GeneratorServicer(generator_pb2_grpc.GeneratorServiceServicer):
    """Serves GeneratorService."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    async def Generate(self, request, context):
        events = await self._gateway.submit(
            spec_from_proto(request.spec),
            idempotency_key=request.idempotency_key,
            principal=current_principal(),
            webhook_url=request.webhook_url,
        )
        async for event in events:
            yield generator_pb2.GenerateResponse(event=event_to_proto(event))

    async def WatchJob(self, request, context):
        async for event in self._gateway.events(job_id(request.job_id), current_principal()):
            yield generator_pb2.WatchJobResponse(event=event_to_proto(event))

    async def GetJob(self, request, context):
        job = await self._gateway.get(job_id(request.job_id), current_principal())
        return generator_pb2.GetJobResponse(job=job_to_proto(job))

    async def CancelJob(self, request, context):
        job, outcome = await self._gateway.cancel(job_id(request.job_id), current_principal())
        return generator_pb2.CancelJobResponse(
            job=job_to_proto(job), outcome=outcome_to_proto(outcome)
        )

    async def ListJobs(self, request, context):
        listing = parse_listing(request)
        jobs, next_cursor = await self._gateway.list_jobs(
            current_principal(),
            states=listing.states,
            backend=listing.backend,
            before_seq=listing.before_seq,
            limit=listing.limit,
        )
        page = common_pb2.PageResponse(next_page_token=str(next_cursor) if next_cursor else "")
        return generator_pb2.ListJobsResponse(jobs=[job_to_proto(j) for j in jobs], page=page)

    async def DownloadJobOutput(self, request, context):
        job = await self._gateway.get(job_id(request.job_id), current_principal())
        chunks = self._gateway.output_chunks(job)
        done = object()
        while (chunk := await asyncio.to_thread(next, chunks, done)) is not done:
            yield generator_pb2.DownloadJobOutputResponse(
                chunk=chunk, size_bytes=job.result.size_bytes, sha256=job.result.sha256
            )

    async def DeleteJobOutput(self, request, context):
        job, removed = await self._gateway.delete_output(
            job_id(request.job_id), current_principal()
        )
        return generator_pb2.DeleteJobOutputResponse(job=job_to_proto(job), file_removed=removed)

    async def GetUsage(self, request, context):
        principal = current_principal()
        quotas = await self._gateway.usage(principal)
        return generator_pb2.GetUsageResponse(
            caller=principal.caller, quotas=[quota_use_to_proto(use) for use in quotas]
        )
