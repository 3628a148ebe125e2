"""The hot-query cache: recent search answers by query content and parameters.

Keys hash the query's parts (image bytes included — they are never stored, only hashed),
collection, top_k, moments and filter. An entry is served until its TTL passes or its
collection changes through this orchestrator (ingest or delete bump the collection's
generation, which is part of every key), whichever is first. Answers are immutable domain
values, so an entry is handed out as it is.
"""

from __future__ import annotations

import hashlib
import struct
import time
from collections import OrderedDict, defaultdict

from clipmesh.orchestrator.records import SearchRequest, SearchResponse


class QueryCache:
    """A bounded LRU of search answers."""

    def __init__(self, entries: int, ttl_s: float) -> None:
        self._entries = entries
        self._ttl_s = ttl_s
        self._items: OrderedDict[bytes, tuple[float, SearchResponse]] = OrderedDict()
        self._generations: defaultdict[str, int] = defaultdict(int)

    @property
    def enabled(self) -> bool:
        return self._entries > 0 and self._ttl_s > 0

    def key(self, request: SearchRequest) -> bytes:
        """The cache key of a request (its budget and skip flag do not change the answer)."""
        digest = hashlib.sha256()

        def feed(data: bytes) -> None:  # length-prefixed, so fields never run into each other
            digest.update(struct.pack("<Q", len(data)))
            digest.update(data)

        for part in request.parts:
            feed(part.kind.encode())
            feed(struct.pack("<d", part.weight))
            if part.kind == "image":
                feed(part.image)
            elif part.kind == "text":
                feed(part.text.encode())
            else:
                feed(repr(part.clip).encode())
        collection = request.collection
        feed(f"{request.top_k}|{request.max_moments}|{request.video_filter!r}".encode())
        feed(f"{collection}|{self._generations[collection]}".encode())
        return digest.digest()

    def get(self, key: bytes) -> SearchResponse | None:
        item = self._items.get(key)
        if item is None:
            return None
        expires, response = item
        if time.monotonic() > expires:
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return response

    def put(self, key: bytes, response: SearchResponse) -> None:
        if not self.enabled:
            return
        self._items[key] = (time.monotonic() + self._ttl_s, response)
        self._items.move_to_end(key)
        while len(self._items) > self._entries:
            self._items.popitem(last=False)

    def invalidate(self, collection: str) -> None:
        """Forgets every answer about `collection` (its data changed)."""
        self._generations[collection] += 1
