"""`Client`: the blocking client of the orchestrator's public API (search, ingest, library,
who am I).

`AsyncClient` (async_client.py) is its asyncio twin on the same `ClientBase`. Both build
requests with `messages` and convert answers with `models`; each method here only makes the
call. Every call carries a deadline, and every `grpc.RpcError` is raised as the typed error of
`clipmesh_client.errors`, chained from the transport error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2_grpc

from clipmesh_api.common.v1 import common_pb2
from clipmesh_api.orchestrator.v1 import (
    account_pb2,
    account_pb2_grpc,
    ingest_pb2,
    ingest_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
)
from clipmesh_client import messages, models
from clipmesh_client.errors import typed_errors
from clipmesh_client.lifetime import BlockingChannel
from clipmesh_client.readiness import Readiness
from clipmesh_client.wire import ChannelPolicy, bearer_metadata

DEFAULT_TARGET = "127.0.0.1:50050"
DEFAULT_TIMEOUT_S = 5.0
DEFAULT_INGEST_TIMEOUT_S = 3600.0
DEFAULT_READY_TIMEOUT_S = 30.0


class ClientBase:
    """Settings, channel and stubs shared by `Client` and `AsyncClient`."""

    _open_channel: Callable[..., Any]  # the blocking or the asyncio channel factory

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        ingest_timeout_s: float = DEFAULT_INGEST_TIMEOUT_S,
        max_attempts: int = 3,
        max_message_mb: int = 64,
        credentials: grpc.ChannelCredentials | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        token: str | None = None,
    ) -> None:
        if timeout_s <= 0 or ingest_timeout_s <= 0:
            raise ValueError("timeout_s and ingest_timeout_s must be positive")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1 (1 means no retry)")
        if max_message_mb < 1:
            raise ValueError("max_message_mb must be at least 1")
        self.target = target
        self.timeout_s = timeout_s
        self.ingest_timeout_s = ingest_timeout_s
        self._metadata = (*metadata, *bearer_metadata(token))
        policy = ChannelPolicy(
            timeout_s=timeout_s, max_attempts=max_attempts, max_message_mb=max_message_mb
        )
        self._channel = self._open_channel(target, policy, credentials=credentials)
        self._search = search_pb2_grpc.SearchServiceStub(self._channel)
        self._ingest = ingest_pb2_grpc.IngestServiceStub(self._channel)
        self._account = account_pb2_grpc.AccountServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.target!r}, timeout_s={self.timeout_s})"

    def _call_options(self, timeout_s: float | None) -> dict[str, Any]:
        """The deadline (the call's own, else the client's default) and metadata of a call."""
        return {
            "timeout": self.timeout_s if timeout_s is None else timeout_s,
            "metadata": self._metadata,
        }

    def _ingest_options(self, timeout_s: float | None) -> dict[str, Any]:
        """Like `_call_options`, with the longer default deadline of an ingest stream."""
        return {
            "timeout": self.ingest_timeout_s if timeout_s is None else timeout_s,
            "metadata": self._metadata,
        }


class Client(BlockingChannel, ClientBase):
    """A blocking client of a clipmesh orchestrator; safe to share between threads.

    Args:
        target: `host:port`, or `dns:///name:port` to balance over every address of a name.
        timeout_s: Deadline of each call that sets no `timeout_s` of its own.
        ingest_timeout_s: Deadline of an ingest stream that sets no `timeout_s` of its own.
        max_attempts: Most attempts of a call that fails UNAVAILABLE (1 = no retry; capped at 5).
        max_message_mb: Largest message sent or received, in MiB.
        credentials: TLS credentials (`clipmesh_client.tls_credentials(ca_file)`); None for
            plaintext.
        metadata: Headers sent with every call.
        token: Bearer token of a mesh with token auth on, sent as `authorization` metadata
            (use it over TLS only).
    """

    def wait_until_ready(
        self, timeout_s: float = DEFAULT_READY_TIMEOUT_S, *, service: str = ""
    ) -> None:
        """Waits until the orchestrator's health service reports SERVING.

        Args:
            timeout_s: How long to wait, connection attempts included.
            service: The health service name to check; "" is the server as a whole.

        Raises:
            UnavailableError: Not SERVING within `timeout_s` (nothing listening, still starting).
            ClipmeshError: The health check failed otherwise (for example UNIMPLEMENTED).
        """
        readiness = Readiness(self.target, service, timeout_s)
        while (remaining_s := readiness.remaining_s()) > 0:
            try:
                response = self._health.Check(
                    readiness.request,
                    timeout=remaining_s,
                    wait_for_ready=True,
                    metadata=self._metadata,
                )
                if readiness.serving(response):
                    return
            except grpc.RpcError as exc:
                readiness.failed(exc)
            time.sleep(readiness.pause_s())
        raise readiness.timed_out() from readiness.last_error

    def whoami(self, *, timeout_s: float | None = None) -> models.CallerInfo:
        """Who the API takes this client's token for: its roles, collections and quota use.

        Generation quotas come from the generator; when it does not answer they are left out
        and `warnings` says so.

        Raises:
            UnauthenticatedError: The token is missing or not accepted.
            ClipmeshError: The call failed otherwise.
        """
        with typed_errors():
            response = self._account.GetCaller(
                account_pb2.GetCallerRequest(), **self._call_options(timeout_s)
            )
        return models.caller_info_from_proto(response)

    def search(
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
        """Finds the videos, and the moments inside them, that best match a query.

        Args:
            image: An encoded image (JPEG, PNG or WebP) to look like.
            text: A description to match, in any language the model reads.
            like: `(video_id, start_s, end_s)`: a moment of an indexed video to look like.
            not_text: A description to steer away from (weight -1).
            not_image: An image to steer away from (weight -1).
            parts: Further `QueryPart`s with weights of your own.
            top_k: Number of videos; 0 is the service's default.
            max_moments: Most moments per video; 0 is the service's default.
            filter: Only videos passing this filter (see `clipmesh_client.filters`).
            collection: The collection to search; "" is the service's default.
            budget_ms: Latency budget; 0 is the service's default. The deadline, when
                shorter, wins.
            skip_cache: Bypass the hot-query cache (for measurements).
            min_score: Leave out videos and moments scoring below this (-1 to 1); the
                result's `hits_below_min_score` says how many of the `top_k` best it cut.
            timeout_s: Deadline of this call; by default the client's `timeout_s`.

        Raises:
            InvalidArgumentError: No positive part (raised before any call), or the service
                refused the request; `.metadata["field"]` names the field.
            ClipmeshError: The call failed; the subclass says how.
        """
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
            response = self._search.SearchVideos(request, **self._call_options(timeout_s))
        return models.search_result_from_proto(response)

    def ingest(
        self,
        paths: Sequence[str | Path],
        *,
        collection: str = "",
        labels: Mapping[str, str] | None = None,
        titles: Sequence[str] | None = None,
        timeout_s: float | None = None,
    ) -> Iterator[models.IngestEvent]:
        """Ingests videos and yields their progress, then one `IngestSummary`.

        The call starts when iteration does; leaving the loop early cancels the stream. A bad
        file fails alone, as an `IngestProgress` with stage "failed".

        Args:
            paths: Paths or `file://` URIs under the orchestrator's allowed roots, as the
                *server* sees them; the SDK never reads the files.
            collection: The collection to add to; "" is the service's default.
            labels: Metadata stored with every video.
            titles: One title per path, in order; by default the file names.
            timeout_s: Deadline of the whole stream; by default the client's `ingest_timeout_s`.
        """
        request = messages.ingest_request(
            paths, collection=collection, labels=labels, titles=titles
        )
        return self._ingest_events(request, self._ingest_options(timeout_s))

    def _ingest_events(
        self, request: ingest_pb2.IngestVideosRequest, options: dict[str, Any]
    ) -> Iterator[models.IngestEvent]:
        call = self._ingest.IngestVideos(request, **options)
        try:
            with typed_errors():
                for response in call:
                    yield models.ingest_event_from_proto(response)
        finally:
            call.cancel()  # a no-op once the stream has ended

    def get_video(
        self, video_id: str, *, collection: str = "", timeout_s: float | None = None
    ) -> models.Video:
        """One video's metadata.

        Raises:
            NotFoundError: No such video in the collection.
        """
        request = messages.get_request(video_id, collection=collection)
        with typed_errors():
            response = self._ingest.GetVideo(request, **self._call_options(timeout_s))
        return models.video_from_proto(response.video, segments=response.segments)

    def list_videos(
        self,
        *,
        collection: str = "",
        filter: common_pb2.MetadataFilter | None = None,
        page_size: int = 100,
        timeout_s: float | None = None,
    ) -> Iterator[models.Video]:
        """The videos of a collection, newest first, fetching pages as iteration needs them.

        Args:
            collection: The collection; "" is the service's default.
            filter: Only videos passing this filter.
            page_size: Videos per call; 0 is the service's default.
            timeout_s: Deadline of each page's call.
        """
        request = messages.list_request(collection=collection, filter=filter, page_size=page_size)
        return self._pages(request, timeout_s)

    def _pages(
        self, request: ingest_pb2.ListVideosRequest | None, timeout_s: float | None
    ) -> Iterator[models.Video]:
        while request is not None:
            with typed_errors():
                response = self._ingest.ListVideos(request, **self._call_options(timeout_s))
            yield from map(models.video_from_proto, response.videos)
            request = messages.next_page_request(request, response)

    def delete_videos(
        self, video_ids: Sequence[str], *, collection: str = "", timeout_s: float | None = None
    ) -> models.DeleteResult:
        """Removes videos; returns `(deleted_count, not_found_ids)`."""
        request = messages.delete_request(video_ids, collection=collection)
        with typed_errors():
            response = self._ingest.DeleteVideos(request, **self._call_options(timeout_s))
        return models.DeleteResult(response.deleted_count, list(response.not_found_ids))
