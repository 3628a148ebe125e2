"""`AsyncClient`: the asyncio form of `Client`, with the same arguments, methods and errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc

from clipmesh_api.common.v1 import common_pb2
from clipmesh_api.orchestrator.v1 import account_pb2, ingest_pb2, search_pb2
from clipmesh_client import messages, models
from clipmesh_client.client import DEFAULT_READY_TIMEOUT_S, ClientBase
from clipmesh_client.errors import typed_errors
from clipmesh_client.lifetime import AsyncChannel
from clipmesh_client.readiness import Readiness


class AsyncClient(AsyncChannel, ClientBase):
    """The asyncio form of `Client`: the same arguments, methods and errors.

    Create it inside a running event loop; use `async with AsyncClient(...) as client:`.
    `search`, `get_video`, `delete_videos`, `whoami` and `wait_until_ready` are awaited;
    `ingest` and `list_videos` are iterated with `async for`.
    """

    async def wait_until_ready(
        self, timeout_s: float = DEFAULT_READY_TIMEOUT_S, *, service: str = ""
    ) -> None:
        """Waits until the orchestrator's health service reports SERVING; see `Client`."""
        readiness = Readiness(self.target, service, timeout_s)
        while (remaining_s := readiness.remaining_s()) > 0:
            try:
                response = await self._health.Check(
                    readiness.request,
                    timeout=remaining_s,
                    wait_for_ready=True,
                    metadata=self._metadata,
                )
                if readiness.serving(response):
                    return
            except grpc.RpcError as exc:
                readiness.failed(exc)
            await asyncio.sleep(readiness.pause_s())
        raise readiness.timed_out() from readiness.last_error

    async def whoami(self, *, timeout_s: float | None = None) -> models.CallerInfo:
        """Who the API takes this client's token for; see `Client.whoami`."""
        with typed_errors():
            response = await self._account.GetCaller(
                account_pb2.GetCallerRequest(), **self._call_options(timeout_s)
            )
        return models.caller_info_from_proto(response)

    async def search(
        self,
        *,
        image: bytes | None = None,
        text: str | None = None,
        like: tuple[str, float, float] | None = None,
        not_text: str | None = None,
        not_image: bytes | None = None,
        parts: Sequence[search_pb2.QueryPart] = (),
        top_k: int = 10,
        max_moments: int = 3,
        filter: common_pb2.MetadataFilter | None = None,
        collection: str = "",
        budget_ms: int = 0,
        skip_cache: bool = False,
        min_score: float | None = None,
        timeout_s: float | None = None,
    ) -> models.SearchResult:
        """Finds the videos and moments that best match a query; see `Client.search`."""
        request = messages.search_request(
            image=image,
            text=text,
            like=like,
            not_text=not_text,
            not_image=not_image,
            parts=parts,
            top_k=top_k,
            max_moments=max_moments,
            filter=filter,
            collection=collection,
            budget_ms=budget_ms,
            skip_cache=skip_cache,
            min_score=min_score,
        )
        with typed_errors():
            response = await self._search.SearchVideos(request, **self._call_options(timeout_s))
        return models.search_result_from_proto(response)

    def ingest(
        self,
        paths: Sequence[str | Path],
        *,
        collection: str = "",
        labels: Mapping[str, str] | None = None,
        titles: Sequence[str] | None = None,
        timeout_s: float | None = None,
    ) -> AsyncIterator[models.IngestEvent]:
        """Ingests videos; `async for` yields progress, then one summary. See `Client.ingest`."""
        request = messages.ingest_request(
            paths, collection=collection, labels=labels, titles=titles
        )
        return self._ingest_events(request, self._ingest_options(timeout_s))

    async def _ingest_events(
        self, request: ingest_pb2.IngestVideosRequest, options: dict[str, Any]
    ) -> AsyncIterator[models.IngestEvent]:
        call = self._ingest.IngestVideos(request, **options)
        try:
            with typed_errors():
                async for response in call:
                    yield models.ingest_event_from_proto(response)
        finally:
            call.cancel()  # a no-op once the stream has ended

    async def get_video(
        self, video_id: str, *, collection: str = "", timeout_s: float | None = None
    ) -> models.Video:
        """One video's metadata; raises `NotFoundError` when there is none."""
        request = messages.get_request(video_id, collection=collection)
        with typed_errors():
            response = await self._ingest.GetVideo(request, **self._call_options(timeout_s))
        return models.video_from_proto(response.video, segments=response.segments)

    def list_videos(
        self,
        *,
        collection: str = "",
        filter: common_pb2.MetadataFilter | None = None,
        page_size: int = 100,
        timeout_s: float | None = None,
    ) -> AsyncIterator[models.Video]:
        """The videos of a collection, page by page as `async for` needs them."""
        request = messages.list_request(collection=collection, filter=filter, page_size=page_size)
        return self._pages(request, timeout_s)

    async def _pages(
        self, request: ingest_pb2.ListVideosRequest | None, timeout_s: float | None
    ) -> AsyncIterator[models.Video]:
        while request is not None:
            with typed_errors():
                response = await self._ingest.ListVideos(request, **self._call_options(timeout_s))
            for video in response.videos:
                yield models.video_from_proto(video)
            request = messages.next_page_request(request, response)

    async def delete_videos(
        self, video_ids: Sequence[str], *, collection: str = "", timeout_s: float | None = None
    ) -> models.DeleteResult:
        """Removes videos; returns `(deleted_count, not_found_ids)`."""
        request = messages.delete_request(video_ids, collection=collection)
        with typed_errors():
            response = await self._ingest.DeleteVideos(request, **self._call_options(timeout_s))
        return models.DeleteResult(response.deleted_count, list(response.not_found_ids))
