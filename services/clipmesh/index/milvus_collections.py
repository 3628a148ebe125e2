"""The Milvus collections behind each clipmesh collection: naming, creating and writing them.

A replace is atomic for readers without transactions: the new segment rows are inserted under
a new generation, then the video row is upserted to point at it (one row: atomic in Milvus),
then rows of other generations are deleted. Readers (milvus_reads.py) keep only rows of the
current generation, so they see the old segments or the new ones, never a mix.

Everything here blocks on the synchronous client; the backend calls it on worker threads.
"""

from __future__ import annotations

from pymilvus import MilvusClient

from clipmesh.index import milvus_schema
from clipmesh.index.backend import collection_not_found
from clipmesh.index.records import VideoWrite
from clipmesh.runtime.errors import InvalidArgument

_INSERT_BATCH_BYTES = 16 << 20  # well under Milvus's 64 MiB gRPC message limit
CALL_TIMEOUT_S = 30.0


class MilvusCollections:
    """The clipmesh collections in one Milvus database, and the writes to them.

    Args:
        collection_prefix: Put before every Milvus collection name this backend owns.
        consistency_level: Read consistency of the collections it creates and reads.
    """

    def __init__(self, collection_prefix: str, consistency_level: str) -> None:
        self.collection_prefix = collection_prefix
        self.consistency_level = consistency_level
        self._client: MilvusClient | None = None
        self._dimensions: dict[str, int] = {}

    def connect(self, uri: str, token: str, db_name: str) -> None:
        """Connects to Milvus and loads the collections this backend owns.

        Args:
            uri: `http(s)://host:19530`, or a path ending in `.db` for milvus-lite.
            token: `user:password` or an API key ("" when Milvus has no authentication).
            db_name: The Milvus database ("" for `default`).
        """
        client = MilvusClient(uri=uri, token=token, db_name=db_name, timeout=CALL_TIMEOUT_S)
        for name in client.list_collections():
            if name.startswith(self.collection_prefix):
                # Milvus keeps collections loaded across restarts; milvus-lite does not.
                client.load_collection(name)
        self._client = client

    def release(self) -> MilvusClient | None:
        """Forgets the client (None when not connected) and returns it for closing."""
        client, self._client = self._client, None
        return client

    @property
    def client(self) -> MilvusClient:
        """The connected client; RuntimeError when not connected."""
        if self._client is None:
            raise RuntimeError("the Milvus backend is not open")
        return self._client

    def names(self, collection: str) -> tuple[str, str]:
        """The Milvus names of a collection's (segments, videos)."""
        base = f"{self.collection_prefix}{collection}"
        return f"{base}_segments", f"{base}_videos"

    def dimension(self, collection: str) -> int | None:
        """The collection's dimension, or None when it does not exist."""
        if collection not in self._dimensions:
            segments, videos = self.names(collection)
            if not self.client.has_collection(videos):
                return None
            fields = self.client.describe_collection(segments)["fields"]
            vector = next(f for f in fields if f["name"] == "vector")
            self._dimensions[collection] = int(vector["params"]["dim"])
        return self._dimensions[collection]

    def existing(self, collection: str) -> int:
        """The collection's dimension; NOT_FOUND when it does not exist."""
        dimension = self.dimension(collection)
        if dimension is None:
            raise collection_not_found(collection)
        return dimension

    def replace(self, collection: str, videos: list[VideoWrite], generation: int) -> None:
        """Replaces every segment of each video with those of `generation` (order: see above)."""
        dimension = self.dimension(collection)
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
        segments, video_rows = self.names(collection)
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
        segments, videos = self.names(collection)
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
        return self.dimension(collection) or dimension

    def remove(self, collection: str, video_ids: list[str]) -> tuple[int, list[str]]:
        """Deletes videos; returns (how many existed, the ids that did not)."""
        self.existing(collection)
        segments, videos = self.names(collection)
        rows = self.client.get(
            videos, video_ids, ["video_id"], consistency_level=self.consistency_level
        )
        found = {r["video_id"] for r in rows}
        if found:
            # The video row first: without it the segments are invisible to searches.
            self.client.delete(videos, ids=sorted(found))
            self.client.delete(segments, filter=milvus_schema.member_of("video_id", sorted(found)))
        return len(found), [v for v in video_ids if v not in found]
