"""Reading clipmesh collections back from Milvus: search, listings, single videos, stats.

A video's segments are the rows of the generation its video row names; rows of any other
generation belong to a replace in flight or not yet cleaned (milvus_collections.py), and every
read here leaves them out, so it sees a video's old segments or its new ones, never a mix.

Everything here blocks on the synchronous client; the backend calls it on worker threads.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict

from pymilvus import MilvusClient

from clipmesh.index import milvus_schema
from clipmesh.index.backend import newest_first, overlapping
from clipmesh.index.filters import VideoFilter
from clipmesh.index.milvus_collections import CALL_TIMEOUT_S, MilvusCollections
from clipmesh.index.ranking import rank_videos
from clipmesh.index.records import CollectionStats, SearchQuery, SearchResult, Segments, VideoMeta
from clipmesh.runtime.errors import DeadlineExceeded, InvalidArgument

_MAX_RESULT_ROWS = 16_384  # Milvus's cap on one search's limit and one query batch
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


class MilvusReads:
    """The read side of the Milvus backend.

    Args:
        collections: The collections to read, and the client to read them with.
        index_type: The name results and stats report as their index type.
    """

    def __init__(self, collections: MilvusCollections, index_type: str) -> None:
        self.collections = collections
        self.index_type = index_type

    def search(self, query: SearchQuery) -> SearchResult:
        """The top videos for `query`, each with its best moments."""
        dimension = self.collections.existing(query.collection)
        if query.vector.shape[0] != dimension:
            raise InvalidArgument(
                f"query vectors have dimension {query.vector.shape[0]}; collection "
                f"{query.collection!r} holds {dimension}",
                field="queries[0].vector",
                reason="DIMENSION_MISMATCH",
            )
        segments, _ = self.collections.names(query.collection)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        # The best segment of each video decides its score, so one hit per group finds the
        # candidates; twice top_k leaves room for any dropped below.
        hits = self.collections.client.search(
            segments,
            data=[query.vector.tolist()],
            anns_field="vector",
            limit=min(2 * query.top_k, _MAX_RESULT_ROWS),
            filter=milvus_schema.compile_filter(query.filter),
            group_by_field="video_id",
            group_size=1,
            output_fields=["video_id"],
            search_params={"metric_type": "IP"},
            consistency_level=self.collections.consistency_level,
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
        return SearchResult(ranked, self.index_type, timings_ms=timings)

    def _current(
        self, query: SearchQuery, video_ids: list[str]
    ) -> dict[str, tuple[VideoMeta, Segments]]:
        """The videos that pass the filter, each with the segments of its current generation."""
        segments, videos = self.collections.names(query.collection)
        found: dict[str, tuple[VideoMeta, Segments]] = {}
        for _ in range(2):
            rows = self.collections.client.get(
                videos,
                video_ids,
                milvus_schema.VIDEO_FIELDS,
                consistency_level=self.collections.consistency_level,
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
        iterator = self.collections.client.query_iterator(
            segments,
            batch_size=_MAX_RESULT_ROWS,
            filter=milvus_schema.member_of("video_id", list(generations)),
            output_fields=milvus_schema.SEGMENT_FIELDS,
            consistency_level=self.collections.consistency_level,
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

    def stats(self, collection: str) -> list[CollectionStats]:
        """Statistics of one collection, or of all when `collection` is empty."""
        prefix = self.collections.collection_prefix
        if collection:
            names = [collection]
        else:
            suffix = "_videos"
            names = sorted(
                name[len(prefix) : -len(suffix)]
                for name in self.collections.client.list_collections()
                if name.startswith(prefix) and name.endswith(suffix)
            )
            names = [
                n for n in names if _NAME.fullmatch(n) and self.collections.dimension(n) is not None
            ]
        return [self._stats_of(name) for name in names]

    def _stats_of(self, collection: str) -> CollectionStats:
        dimension = self.collections.existing(collection)
        segments, videos = self.collections.names(collection)
        return CollectionStats(
            collection=collection,
            videos=self._count(videos),
            # Counts rows of a replace in flight (or of one cut short) twice until cleaned.
            segments=self._count(segments),
            dimension=dimension,
            index_type=self.index_type,
            memory_bytes=0,  # Milvus does not report it per collection
        )

    def _count(self, name: str) -> int:
        rows = self.collections.client.query(
            name, output_fields=["count(*)"], consistency_level=self.collections.consistency_level
        )
        return int(rows[0]["count(*)"])

    def list_videos(
        self, collection: str, video_filter: VideoFilter | None, offset: int, limit: int
    ) -> tuple[list[VideoMeta], int]:
        """A page of the videos passing `video_filter`, newest first, and how many pass."""
        self.collections.existing(collection)
        _, videos = self.collections.names(collection)
        rows = _list_rows(
            self.collections.client,
            videos,
            milvus_schema.compile_filter(video_filter),
            self.collections.consistency_level,
        )
        metas = [milvus_schema.meta_from(r) for r in rows]
        # The compiled expression already filtered; matching again keeps label semantics exact.
        chosen = [m for m in metas if video_filter is None or video_filter.matches(m)]
        return newest_first(chosen)[offset : offset + limit], len(chosen)

    def get_segments(
        self, collection: str, video_id: str, span: tuple[float, float] | None
    ) -> Segments | None:
        """A video's current segments overlapping `span`, in time order; None when absent."""
        self.collections.existing(collection)
        segments, videos = self.collections.names(collection)
        rows = self.collections.client.get(
            videos,
            [video_id],
            ["video_id", "generation"],
            consistency_level=self.collections.consistency_level,
        )
        if not rows:
            return None
        columns = self._segment_rows_of(segments, {video_id: rows[0]["generation"]}, None)
        return overlapping(milvus_schema.segments_from(columns[video_id]), span)

    def get_video(self, collection: str, video_id: str) -> tuple[VideoMeta, int] | None:
        """A video's metadata and segment count, or None."""
        self.collections.existing(collection)
        _, videos = self.collections.names(collection)
        rows = self.collections.client.get(
            videos,
            [video_id],
            milvus_schema.VIDEO_FIELDS,
            consistency_level=self.collections.consistency_level,
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
        return CALL_TIMEOUT_S
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DeadlineExceeded("the search's deadline passed before Milvus was asked")
    return remaining


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000
