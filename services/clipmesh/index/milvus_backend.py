"""The Milvus backend: segments in a Milvus deployment (or a milvus-lite file).

Each clipmesh collection is two Milvus collections (layout in docs/milvus.md): `<name>_segments`,
one row per segment with its vector and its video's metadata copied on for filtering, and
`<name>_videos`, one row per video naming the generation of segments that is current. Writes
and their atomic replace are in milvus_collections.py, reads in milvus_reads.py; this module
is the async face the index service calls, and it numbers the writes.

The generation is the write's sequence number: microseconds since the epoch, kept strictly
increasing in-process.

pymilvus's `AsyncMilvusClient` cannot create indexes on milvus-lite (it waits through an RPC
milvus-lite lacks), so the synchronous client runs on worker threads instead.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import defaultdict
from urllib.parse import urlsplit

import grpc
from pymilvus import MilvusClient
from pymilvus.client.types import Status
from pymilvus.exceptions import MilvusException

from clipmesh.index.backend import IndexBackend
from clipmesh.index.filters import VideoFilter
from clipmesh.index.milvus_collections import MilvusCollections
from clipmesh.index.milvus_reads import MilvusReads
from clipmesh.index.records import (
    CollectionStats,
    SearchQuery,
    SearchResult,
    Segments,
    VideoMeta,
    VideoWrite,
)
from clipmesh.runtime.errors import DeadlineExceeded, Unavailable
from clipmesh.runtime.server import StartupError

_CONSISTENCY_LEVELS = ("Strong", "Session", "Bounded", "Eventually")


class MilvusBackend(IndexBackend):
    """Collections in Milvus; this process holds no state but a connection.

    Args:
        uri: `http(s)://host:19530` for a Milvus standalone or cluster, or a path ending in
            `.db` for milvus-lite embedded in this process.
        token: `user:password` or an API key ("" when Milvus has no authentication).
        db_name: The Milvus database ("" for `default`).
        collection_prefix: Put before every Milvus collection name this backend owns.
        consistency_level: Read consistency. "Strong" makes every acknowledged write visible to
            the next search; "Session" does so for writes through this same process.
    """

    name = "milvus"

    def __init__(
        self,
        uri: str,
        *,
        token: str = "",
        db_name: str = "",
        collection_prefix: str = "clipmesh_",
        consistency_level: str = "Strong",
    ) -> None:
        if collection_prefix and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", collection_prefix):
            raise ValueError(f"collection_prefix {collection_prefix!r} is not a Milvus name")
        if consistency_level not in _CONSISTENCY_LEVELS:
            raise ValueError(f"consistency_level must be one of {_CONSISTENCY_LEVELS}")
        self.uri = uri
        self.token = token
        self.db_name = db_name
        self.collection_prefix = collection_prefix
        self.consistency_level = consistency_level
        self._collections = MilvusCollections(collection_prefix, consistency_level)
        self._reads = MilvusReads(self._collections, index_type=self.name)
        self._write_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._last_sequence = 0

    async def open(self) -> None:
        try:
            await asyncio.to_thread(self._collections.connect, self.uri, self.token, self.db_name)
        except (MilvusException, grpc.RpcError) as error:
            raise StartupError(f"cannot open Milvus at {_redacted(self.uri)}: {error}") from error

    async def close(self) -> None:
        client = self._collections.release()
        if client is not None:
            await asyncio.to_thread(client.close)
        if self.uri.endswith(".db"):
            # milvus-lite serves the file from a thread of this process until told to stop;
            # stopping it releases the file for a later open here or in another process.
            from milvus_lite import server_manager_instance

            await asyncio.to_thread(server_manager_instance.release_server, self.uri)

    @property
    def client(self) -> MilvusClient:
        """The connected client; RuntimeError when the backend is not open."""
        return self._collections.client

    async def upsert(self, collection: str, videos: list[VideoWrite]) -> int:
        async with self._write_locks[collection]:
            self._last_sequence = max(time.time_ns() // 1000, self._last_sequence + 1)
            generation = self._last_sequence
            await self._call(self._collections.replace, collection, videos, generation)
        return generation

    async def delete(self, collection: str, video_ids: list[str]) -> tuple[int, list[str]]:
        async with self._write_locks[collection]:
            return await self._call(self._collections.remove, collection, video_ids)

    async def search(self, query: SearchQuery) -> SearchResult:
        return await self._call(self._reads.search, query)

    async def stats(self, collection: str = "") -> list[CollectionStats]:
        return await self._call(self._reads.stats, collection)

    async def get_video(self, collection: str, video_id: str) -> tuple[VideoMeta, int] | None:
        return await self._call(self._reads.get_video, collection, video_id)

    async def list_videos(
        self, collection: str, video_filter: VideoFilter | None, *, offset: int, limit: int
    ) -> tuple[list[VideoMeta], int]:
        return await self._call(self._reads.list_videos, collection, video_filter, offset, limit)

    async def get_segments(
        self, collection: str, video_id: str, span: tuple[float, float] | None = None
    ) -> Segments | None:
        return await self._call(self._reads.get_segments, collection, video_id, span)

    async def _call(self, function, *args):
        """Runs blocking Milvus work on a thread; says UNAVAILABLE when Milvus cannot answer."""
        try:
            return await asyncio.to_thread(function, *args)
        except (MilvusException, grpc.RpcError) as error:
            code = error.code() if isinstance(error, grpc.RpcError) else error.code
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise DeadlineExceeded("Milvus did not answer within the deadline") from error
            if code in (Status.CONNECT_FAILED, grpc.StatusCode.UNAVAILABLE):
                raise Unavailable(f"Milvus at {_redacted(self.uri)} cannot be reached") from error
            raise


def _redacted(uri: str) -> str:
    """The URI without credentials, for messages."""
    parts = urlsplit(uri)
    if parts.password is None and parts.username is None:
        return uri
    host = parts.hostname or ""
    return parts._replace(netloc=f"{host}:{parts.port}" if parts.port else host).geturl()
