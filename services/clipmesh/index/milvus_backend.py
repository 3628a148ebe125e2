"""The Milvus backend: segments in a Milvus deployment (or a milvus-lite file).

Each clipmesh collection is two Milvus collections (layout in docs/milvus.md): `<name>_segments`,
one row per segment with its vector and its video's metadata copied on for filtering, and
`<name>_videos`, one row per video naming the generation of segments that is current.

A replace is atomic for readers without transactions: the new segment rows are inserted under
a new generation, then the video row is upserted to point at it (one row: atomic in Milvus),
then rows of other generations are deleted. Searches keep only rows of the current
generation, so they see the old segments or the new ones, never a mix. The generation is the
write's sequence number: microseconds since the epoch, kept strictly increasing in-process.

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

from clipmesh.index import milvus_schema
from clipmesh.index.backend import IndexBackend, collection_not_found, newest_first, overlapping
from clipmesh.index.filters import VideoFilter
from clipmesh.index.ranking import rank_videos
from clipmesh.index.records import (
    CollectionStats,
    SearchQuery,
    SearchResult,
    Segments,
    VideoMeta,
    VideoWrite,
)
from clipmesh.runtime.errors import DeadlineExceeded, InvalidArgument, Unavailable
from clipmesh.runtime.server import StartupError

_MAX_RESULT_ROWS = 16_384  # Milvus's cap on one search's limit and one query batch
_INSERT_BATCH_BYTES = 16 << 20  # well under Milvus's 64 MiB gRPC message limit
_CALL_TIMEOUT_S = 30.0
_CONSISTENCY_LEVELS = ("Strong", "Session", "Bounded", "Eventually")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


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
        self._client: MilvusClient | None = None
        self._dimensions: dict[str, int] = {}
        self._write_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._last_sequence = 0

    async def open(self) -> None:
        try:
            self._client = await asyncio.to_thread(self._connect)
        except (MilvusException, grpc.RpcError) as error:
            raise StartupError(f"cannot open Milvus at {_redacted(self.uri)}: {error}") from error

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(client.close)
        if self.uri.endswith(".db"):
            # milvus-lite serves the file from a thread of this process until told to stop;
            # stopping it releases the file for a later open here or in another process.
            from milvus_lite import server_manager_instance

            await asyncio.to_thread(server_manager_instance.release_server, self.uri)

    async def upsert(self, collection: str, videos: list[VideoWrite]) -> int:
        async with self._write_locks[collection]:
            self._last_sequence = max(time.time_ns() // 1000, self._last_sequence + 1)
            generation = self._last_sequence
            await self._call(self._replace, collection, videos, generation)
        return generation

    async def delete(self, collection: str, video_ids: list[str]) -> tuple[int, list[str]]:
        async with self._write_locks[collection]:
            return await self._call(self._remove, collection, video_ids)

    async def search(self, query: SearchQuery) -> SearchResult:
        return await self._call(self._search, query)

    async def stats(self, collection: str = "") -> list[CollectionStats]:
        return await self._call(self._stats, collection)

    async def get_video(self, collection: str, video_id: str) -> tuple[VideoMeta, int] | None:
        return await self._call(self._get_video, collection, video_id)

    async def list_videos(
        self, collection: str, video_filter: VideoFilter | None, *, offset: int, limit: int
    ) -> tuple[list[VideoMeta], int]:
        return await self._call(self._list_videos, collection, video_filter, offset, limit)

    async def get_segments(
        self, collection: str, video_id: str, span: tuple[float, float] | None = None
    ) -> Segments | None:
        return await self._call(self._get_segments, collection, video_id, span)

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

    # -- blocking work, on worker threads -------------------------------------------------

    def _connect(self) -> MilvusClient:
        client = MilvusClient(
            uri=self.uri, token=self.token, db_name=self.db_name, timeout=_CALL_TIMEOUT_S
        )
        for name in client.list_collections():
            if name.startswith(self.collection_prefix):
                # Milvus keeps collections loaded across restarts; milvus-lite does not.
                client.load_collection(name)
        return client

    @property
    def client(self) -> MilvusClient:
        if self._client is None:
            raise RuntimeError("the Milvus backend is not open")
        return self._client

    def _names(self, collection: str) -> tuple[str, str]:
        """The Milvus names of a collection's (segments, videos)."""
        base = f"{self.collection_prefix}{collection}"
        return f"{base}_segments", f"{base}_videos"

    def _dimension(self, collection: str) -> int | None:
        """The collection's dimension, or None when it does not exist."""
        if collection not in self._dimensions:
            segments, videos = self._names(collection)
            if not self.client.has_collection(videos):
                return None
            fields = self.client.describe_collection(segments)["fields"]
            vector = next(f for f in fields if f["name"] == "vector")
            self._dimensions[collection] = int(vector["params"]["dim"])
        return self._dimensions[collection]

    def _existing(self, collection: str) -> int:
        dimension = self._dimension(collection)
        if dimension is None:
            raise collection_not_found(collection)
        return dimension

    def _replace(self, collection: str, videos: list[VideoWrite], generation: int) -> None:
        dimension = self._dimension(collection)
        for index, write in enumerate(videos):
            milvus_schema.check_sizes(write, f"videos[{index}]")
            given = write.segments.vectors.shape[1] if len(write.segments) else None
            if dimension is None and given is not None:
                dimension = self._create(collection, given)
            if given is not None and given != dimension:
                raise InvalidArgument(
                    f"videos[{index}] has vectors of dimension {given}; collection "
                    f"{collection!r} holds {dimension}",
                    field=f"videos[{index}].segments[].vector",
                    reason="DIMENSION_MISMATCH",
                )
        if dimension is None:
            raise InvalidArgument(
                f"the first write to {collection!r} must carry segments",
                field="videos[].segments",
                reason="EMPTY_REQUEST",
            )
        segments, video_rows = self._names(collection)
        rows = [row for write in videos for row in milvus_schema.segment_rows(write, generation)]
        per_batch = max(1, _INSERT_BATCH_BYTES // (4 * dimension + 1024))
        for start in range(0, len(rows), per_batch):
            self.client.insert(segments, rows[start : start + per_batch])
        self.client.upsert(
            video_rows, [milvus_schema.video_row(w, generation, dimension) for w in videos]
        )
        ids = [w.meta.video_id for w in videos]
        self.client.delete(
            segments,
            filter=f"{milvus_schema.member_of('video_id', ids)} and generation != {generation}",
        )

    def _create(self, collection: str, dimension: int) -> int:
        """Creates the Milvus collections (whichever are missing); returns the dimension."""
        segments, videos = self._names(collection)
        for name, schema, vector in (
            (segments, milvus_schema.segments_schema(dimension), "vector"),
            (videos, milvus_schema.videos_schema(dimension), "centroid"),
        ):
            if not self.client.has_collection(name):
                index = MilvusClient.prepare_index_params()
                index.add_index(vector, index_type="AUTOINDEX", metric_type="IP")
                self.client.create_collection(
                    name,
                    schema=schema,
                    index_params=index,
                    consistency_level=self.consistency_level,
                )
        self._dimensions.pop(collection, None)
        return self._dimension(collection) or dimension

    def _remove(self, collection: str, video_ids: list[str]) -> tuple[int, list[str]]:
        self._existing(collection)
        segments, videos = self._names(collection)
        rows = self.client.get(
            videos, video_ids, ["video_id"], consistency_level=self.consistency_level
        )
        found = {r["video_id"] for r in rows}
        if found:
            # The video row first: without it the segments are invisible to searches.
            self.client.delete(videos, ids=sorted(found))
            self.client.delete(segments, filter=milvus_schema.member_of("video_id", sorted(found)))
        return len(found), [v for v in video_ids if v not in found]

    def _search(self, query: SearchQuery) -> SearchResult:
        dimension = self._existing(query.collection)
        if query.vector.shape[0] != dimension:
            raise InvalidArgument(
                f"query vectors have dimension {query.vector.shape[0]}; collection "
                f"{query.collection!r} holds {dimension}",
                field="queries[0].vector",
                reason="DIMENSION_MISMATCH",
            )
        segments, _ = self._names(query.collection)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        # The best segment of each video decides its score, so one hit per group finds the
        # candidates; twice top_k leaves room for any dropped below.
        hits = self.client.search(
            segments,
            data=[query.vector.tolist()],
            anns_field="vector",
            limit=min(2 * query.top_k, _MAX_RESULT_ROWS),
            filter=milvus_schema.compile_filter(query.filter),
            group_by_field="video_id",
            group_size=1,
            output_fields=["video_id"],
            search_params={"metric_type": "IP"},
            consistency_level=self.consistency_level,
            timeout=_timeout_s(query.deadline),
        )[0]
        candidates = list(dict.fromkeys(hit["entity"]["video_id"] for hit in hits))
        timings["ann"] = _ms_since(started)
        mark = time.perf_counter()
        found = self._current(query, candidates) if candidates else {}
        timings["fetch"] = _ms_since(mark)
        mark = time.perf_counter()
        ranked = rank_videos(
            found.values(), query.vector, top_k=query.top_k, max_moments=query.max_moments
        )
        timings["rank"] = _ms_since(mark)
        return SearchResult(ranked, self.name, timings_ms=timings)

    def _current(
        self, query: SearchQuery, video_ids: list[str]
    ) -> dict[str, tuple[VideoMeta, Segments]]:
        """The videos that pass the filter, each with the segments of its current generation."""
        segments, videos = self._names(query.collection)
        found: dict[str, tuple[VideoMeta, Segments]] = {}
        for _ in range(2):
            rows = self.client.get(
                videos,
                video_ids,
                milvus_schema.VIDEO_FIELDS,
                consistency_level=self.consistency_level,
                timeout=_timeout_s(query.deadline),
            )
            metas = {r["video_id"]: milvus_schema.meta_from(r) for r in rows}
            # Rows of a replaced generation may have matched the filter with old metadata.
            current = {
                r["video_id"]: r
                for r in rows
                if query.filter is None or query.filter.matches(metas[r["video_id"]])
            }
            generations = {v: r["generation"] for v, r in current.items()}
            columns = self._segment_rows_of(segments, generations, query.deadline)
            found.update((v, (metas[v], milvus_schema.segments_from(columns[v]))) for v in current)
            # A video replaced between the two reads lost the rows its video row named: it
            # is read once more (rank_videos skips a video left without segments).
            video_ids = [v for v, r in current.items() if r["segment_count"] and not columns[v]]
            if not video_ids:
                break
        return found

    def _segment_rows_of(
        self, segments: str, generations: dict[str, int], deadline: float | None
    ) -> defaultdict[str, list[dict]]:
        """Each video's rows of the given generation (through an iterator: one video may hold
        more than the 16,384 rows one Milvus query returns)."""
        rows: defaultdict[str, list[dict]] = defaultdict(list)
        if not generations:
            return rows
        iterator = self.client.query_iterator(
            segments,
            batch_size=_MAX_RESULT_ROWS,
            filter=milvus_schema.member_of("video_id", list(generations)),
            output_fields=milvus_schema.SEGMENT_FIELDS,
            consistency_level=self.consistency_level,
            timeout=_timeout_s(deadline),
        )
        try:
            while batch := iterator.next():
                for row in batch:
                    if row["generation"] == generations[row["video_id"]]:
                        rows[row["video_id"]].append(row)
        finally:
            iterator.close()
        return rows

    def _stats(self, collection: str) -> list[CollectionStats]:
        if collection:
            names = [collection]
        else:
            suffix = "_videos"
            names = sorted(
                name[len(self.collection_prefix) : -len(suffix)]
                for name in self.client.list_collections()
                if name.startswith(self.collection_prefix) and name.endswith(suffix)
            )
            names = [n for n in names if _NAME.fullmatch(n) and self._dimension(n) is not None]
        return [self._stats_of(name) for name in names]

    def _stats_of(self, collection: str) -> CollectionStats:
        dimension = self._existing(collection)
        segments, videos = self._names(collection)
        return CollectionStats(
            collection=collection,
            videos=self._count(videos),
            # Counts rows of a replace in flight (or of one cut short) twice until cleaned.
            segments=self._count(segments),
            dimension=dimension,
            index_type=self.name,
            memory_bytes=0,  # Milvus does not report it per collection
        )

    def _count(self, name: str) -> int:
        rows = self.client.query(
            name, output_fields=["count(*)"], consistency_level=self.consistency_level
        )
        return int(rows[0]["count(*)"])

    def _list_videos(
        self, collection: str, video_filter: VideoFilter | None, offset: int, limit: int
    ) -> tuple[list[VideoMeta], int]:
        self._existing(collection)
        _, videos = self._names(collection)
        rows = _list_rows(
            self.client, videos, milvus_schema.compile_filter(video_filter), self.consistency_level
        )
        metas = [milvus_schema.meta_from(r) for r in rows]
        # The compiled expression already filtered; matching again keeps label semantics exact.
        chosen = [m for m in metas if video_filter is None or video_filter.matches(m)]
        return newest_first(chosen)[offset : offset + limit], len(chosen)

    def _get_segments(
        self, collection: str, video_id: str, span: tuple[float, float] | None
    ) -> Segments | None:
        self._existing(collection)
        segments, videos = self._names(collection)
        rows = self.client.get(
            videos, [video_id], ["video_id", "generation"], consistency_level=self.consistency_level
        )
        if not rows:
            return None
        columns = self._segment_rows_of(segments, {video_id: rows[0]["generation"]}, None)
        return overlapping(milvus_schema.segments_from(columns[video_id]), span)

    def _get_video(self, collection: str, video_id: str) -> tuple[VideoMeta, int] | None:
        self._existing(collection)
        _, videos = self._names(collection)
        rows = self.client.get(
            videos, [video_id], milvus_schema.VIDEO_FIELDS, consistency_level=self.consistency_level
        )
        return (milvus_schema.meta_from(rows[0]), int(rows[0]["segment_count"])) if rows else None


def _list_rows(client: MilvusClient, name: str, expression: str, consistency: str) -> list[dict]:
    """Every row of `name` matching `expression` (an iterator: no 16,384-row cap)."""
    rows: list[dict] = []
    iterator = client.query_iterator(
        name,
        batch_size=_MAX_RESULT_ROWS,
        filter=expression,
        output_fields=milvus_schema.VIDEO_FIELDS,
        consistency_level=consistency,
    )
    try:
        while batch := iterator.next():
            rows.extend(batch)
    finally:
        iterator.close()
    return rows


def _timeout_s(deadline: float | None) -> float:
    if deadline is None:
        return _CALL_TIMEOUT_S
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DeadlineExceeded("the search's deadline passed before Milvus was asked")
    return remaining


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def _redacted(uri: str) -> str:
    """The URI without credentials, for messages."""
    parts = urlsplit(uri)
    if parts.password is None and parts.username is None:
        return uri
    host = parts.hostname or ""
    return parts._replace(netloc=f"{host}:{parts.port}" if parts.port else host).geturl()
