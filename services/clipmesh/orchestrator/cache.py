"""The hot-query cache: recent search answers by query content and parameters.

Keys hash the query's parts (image bytes included — they are never stored, only hashed),
collection, top_k, moments and filter. An entry is served until its TTL passes or its
collection changes through this orchestrator (ingest or delete bump the collection's
generation, which is part of every key), whichever is first.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict, defaultdict

from clipmesh_api.orchestrator.v1 import search_pb2


class QueryCache:
    """A bounded LRU of serialized search responses."""

    def __init__(self, entries: int, ttl_s: float) -> None:
        self._entries = entries
        self._ttl_s = ttl_s
        self._items: OrderedDict[bytes, tuple[float, bytes]] = OrderedDict()
        self._generations: defaultdict[str, int] = defaultdict(int)

    @property
    def enabled(self) -> bool:
        return self._entries > 0 and self._ttl_s > 0

    def key(
        self, request: search_pb2.SearchVideosRequest, collection: str, top_k: int, moments: int
    ) -> bytes:
        """The cache key of a request (budget and skip flags do not change the answer)."""
        keyed = search_pb2.SearchVideosRequest()
        keyed.CopyFrom(request)
        keyed.ClearField("budget_ms")
        keyed.ClearField("skip_cache")
        keyed.collection, keyed.top_k, keyed.max_moments_per_video = collection, top_k, moments
        digest = hashlib.sha256(keyed.SerializeToString(deterministic=True))
        digest.update(f"|{collection}|{self._generations[collection]}".encode())
        return digest.digest()

    def get(self, key: bytes) -> search_pb2.SearchVideosResponse | None:
        item = self._items.get(key)
        if item is None:
            return None
        expires, payload = item
        if time.monotonic() > expires:
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return search_pb2.SearchVideosResponse.FromString(payload)

    def put(self, key: bytes, response: search_pb2.SearchVideosResponse) -> None:
        if not self.enabled:
            return
        self._items[key] = (time.monotonic() + self._ttl_s, response.SerializeToString())
        self._items.move_to_end(key)
        while len(self._items) > self._entries:
            self._items.popitem(last=False)

    def invalidate(self, collection: str) -> None:
        """Forgets every answer about `collection` (its data changed)."""
        self._generations[collection] += 1
