"""`AsyncGeneratorClient`: the asyncio form of `GeneratorClient`, with the same arguments,
methods and errors.

    from clipmesh_client import AsyncGeneratorClient

    async with AsyncGeneratorClient("127.0.0.1:50050", token=TOKEN, credentials=CA) as generator:
        async for event in generator.generate("a slow push in on a lighthouse at dusk",
                                              duration_s=5, idempotency_key="shot-12"):
            print(event.job.state, event.job.progress, event.message)
        await generator.download_output(event.job.job_id, "shot-12.mp4")

Requests are built and answers read by the functions of `clipmesh_client.generation`, shared
with the blocking client; each method here only makes the call.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

from clipmesh_api.generator.v1 import generator_pb2
from clipmesh_client.async_service import AsyncServiceClient
from clipmesh_client.errors import typed_errors
from clipmesh_client.generation import (
    GenerationJob,
    GeneratorServiceBase,
    JobEvent,
    OutputDownload,
    cancel_result,
    event_from_proto,
    generate_request,
    job_from_proto,
    list_jobs_request,
    next_jobs_page,
)
from clipmesh_client.models import QuotaUsage, quota_usage_from_proto


class AsyncGeneratorClient(GeneratorServiceBase, AsyncServiceClient):
    """The asyncio form of `GeneratorClient`: the same arguments, methods and errors.

    Create it inside a running event loop; use `async with AsyncGeneratorClient(...) as
    generator:`. `generate`, `watch` and `list_jobs` are iterated with `async for` (the call
    starts when iteration does); the other methods are awaited.
    """

    def generate(
        self,
        prompt: str,
        *,
        negative_prompt: str = "",
        backend: str = "",
        model: str = "",
        size: tuple[int, int] = (0, 0),
        duration_s: float = 0.0,
        fps: float = 0.0,
        seed: int | None = None,
        prompt_extend: bool | None = None,
        watermark: bool = False,
        labels: Mapping[str, str] | None = None,
        idempotency_key: str = "",
        webhook_url: str = "",
        shot_type: str = "",
        generate_audio: bool | None = None,
        timeout_s: float | None = None,
    ) -> AsyncIterator[JobEvent]:
        """Submits a job and yields its events until it ends; see `GeneratorClient.generate`."""
        request = generate_request(
            prompt,
            negative_prompt=negative_prompt,
            backend=backend,
            model=model,
            size=size,
            duration_s=duration_s,
            fps=fps,
            seed=seed,
            prompt_extend=prompt_extend,
            watermark=watermark,
            labels=labels,
            idempotency_key=idempotency_key,
            webhook_url=webhook_url,
            shot_type=shot_type,
            generate_audio=generate_audio,
        )
        options = self._options(timeout_s, stream=True)
        # Leaving the loop early stops the stream; the job goes on.
        return self._stream(lambda: self._stub.Generate(request, **options), event_from_proto)

    def watch(self, job_id: str, *, timeout_s: float | None = None) -> AsyncIterator[JobEvent]:
        """Re-attaches to a job and yields its events until it ends."""
        request = generator_pb2.WatchJobRequest(job_id=job_id)
        options = self._options(timeout_s, stream=True)
        return self._stream(lambda: self._stub.WatchJob(request, **options), event_from_proto)

    async def get_job(self, job_id: str, *, timeout_s: float | None = None) -> GenerationJob:
        with typed_errors():
            response = await self._stub.GetJob(
                generator_pb2.GetJobRequest(job_id=job_id), **self._options(timeout_s)
            )
        return job_from_proto(response.job)

    async def cancel_job(
        self, job_id: str, *, timeout_s: float | None = None
    ) -> tuple[GenerationJob, str]:
        """Cancels a job; returns it and the outcome; see `GeneratorClient.cancel_job`."""
        with typed_errors():
            response = await self._stub.CancelJob(
                generator_pb2.CancelJobRequest(job_id=job_id), **self._options(timeout_s)
            )
        return cancel_result(response)

    def list_jobs(
        self,
        *,
        states: Sequence[str] = (),
        backend: str = "",
        page_size: int = 50,
        timeout_s: float | None = None,
    ) -> AsyncIterator[GenerationJob]:
        """Jobs newest first, page by page as `async for` needs them; see
        `GeneratorClient.list_jobs`."""
        request = list_jobs_request(states, backend, page_size)
        return self._job_pages(request, timeout_s)

    async def _job_pages(
        self, request: generator_pb2.ListJobsRequest | None, timeout_s: float | None
    ) -> AsyncIterator[GenerationJob]:
        while request is not None:
            with typed_errors():
                response = await self._stub.ListJobs(request, **self._options(timeout_s))
            for job in response.jobs:
                yield job_from_proto(job)
            request = next_jobs_page(request, response)

    async def download_output(
        self, job_id: str, destination: str | Path, *, timeout_s: float | None = None
    ) -> Path:
        """Writes a succeeded job's video to `destination` and checks its SHA-256."""
        request = generator_pb2.DownloadJobOutputRequest(job_id=job_id)
        call = self._stub.DownloadJobOutput(request, **self._options(timeout_s, stream=True))
        try:
            with typed_errors(), OutputDownload(job_id, destination) as download:
                async for response in call:
                    await asyncio.to_thread(download.write, response)  # the loop never waits
        finally:
            call.cancel()  # a no-op once the stream has ended
        return download.finish()

    async def delete_output(self, job_id: str, *, timeout_s: float | None = None) -> bool:
        """Deletes a job's video; True when the file itself was removed."""
        with typed_errors():
            response = await self._stub.DeleteJobOutput(
                generator_pb2.DeleteJobOutputRequest(job_id=job_id), **self._options(timeout_s)
            )
        return response.file_removed

    async def usage(self, *, timeout_s: float | None = None) -> list[QuotaUsage]:
        """The caller's generation quotas: provider video-seconds today and jobs at once."""
        with typed_errors():
            response = await self._stub.GetUsage(
                generator_pb2.GetUsageRequest(), **self._options(timeout_s)
            )
        return [quota_usage_from_proto(quota) for quota in response.quotas]
