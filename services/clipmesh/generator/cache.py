"""The content cache: an identical request is answered with the video already made.

Identical means the same backend, model, prompt, negative prompt, size, duration, fps, seed,
prompt rewriting, watermark, shot type and soundtrack. A request without a seed is never
cached: the provider picks a random seed, so a second run is meant to differ.

Entries are hot in memory (an LRU of `memory_entries`) and cold in the job store's `cache`
table; the videos themselves are files of the output store. The cache is bounded by the bytes
of video it refers to: past `max_bytes`, the least recently used entries go, and a file goes
with its last entry unless a job still holds it.

With several replicas the index is shared (the job store's database) and so are the files (the
outputs dir); eviction and deletion hold the store's "outputs" lock, so a file is never
deleted while another replica answers a request with it. Each replica's memory holds its own
hot entries, checked against the file on every hit.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

import msgspec

from clipmesh.generator.jobs import GenerationResult, GenerationSpec
from clipmesh.generator.outputs import OutputStore
from clipmesh.runtime.database import Database

if TYPE_CHECKING:  # the store holds the index: imported for the annotation only
    from clipmesh.generator.store import JobStore


def cache_key(spec: GenerationSpec) -> str:
    """The key of a validated spec (defaults filled), or "" when it must not be cached."""
    if spec.seed is None:
        return ""
    fields = (
        spec.backend,
        spec.model,
        spec.prompt,
        spec.negative_prompt,
        f"{spec.width}x{spec.height}",
        f"{spec.duration_s:g}",
        f"{spec.fps:g}",
        str(spec.seed),
        "default" if spec.prompt_extend is None else str(spec.prompt_extend),
        str(spec.watermark),
    )
    # Added later, and only when set: the keys of earlier entries stay what they were.
    if spec.shot_type is not None:
        fields += (f"shot_type={spec.shot_type.value}",)
    if spec.generate_audio is not None:
        fields += (f"generate_audio={spec.generate_audio}",)
    # \x1f (unit separator) cannot appear in a validated prompt's meaning, so fields never
    # run into each other.
    return hashlib.sha256("\x1f".join(fields).encode()).hexdigest()


class CacheIndex:
    """The cache's entries in the job store's database (table `cache`): which result each key
    maps to, how big, and when it was last used (the eviction order, shared by replicas)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, key: str) -> GenerationResult | None:
        row = self.db.execute("SELECT result FROM cache WHERE cache_key = ?", (key,)).fetchone()
        if row is None:
            return None
        self.touch(key)
        return msgspec.json.decode(row[0], type=GenerationResult)

    def touch(self, key: str) -> None:
        """Marks an entry as just used."""
        self.db.execute("UPDATE cache SET last_used = ? WHERE cache_key = ?", (time.time(), key))

    def put(self, key: str, result: GenerationResult) -> None:
        self.db.execute(
            "INSERT INTO cache (cache_key, sha256, size_bytes, result, last_used)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (cache_key) DO UPDATE SET"
            " sha256 = excluded.sha256, size_bytes = excluded.size_bytes,"
            " result = excluded.result, last_used = excluded.last_used",
            (key, result.sha256, result.size_bytes, msgspec.json.encode(result), time.time()),
        )

    def bytes_held(self) -> int:
        """Bytes of distinct content the cache refers to."""
        (total,) = self.db.execute(
            "SELECT COALESCE(SUM(size_bytes), 0) FROM"
            " (SELECT sha256, MAX(size_bytes) AS size_bytes FROM cache GROUP BY sha256) AS c"
        ).fetchone()
        return int(total)

    def oldest(self) -> tuple[str, str] | None:
        """The least recently used entry as (key, sha256)."""
        row = self.db.execute(
            "SELECT cache_key, sha256 FROM cache ORDER BY last_used LIMIT 1"
        ).fetchone()
        return (row[0], row[1]) if row else None

    def delete(self, key: str) -> None:
        self.db.execute("DELETE FROM cache WHERE cache_key = ?", (key,))

    def delete_content(self, sha256: str) -> list[str]:
        """Drops every entry for this content; returns their keys."""
        with self.db.transaction():
            keys = [
                row[0]
                for row in self.db.execute(
                    "SELECT cache_key FROM cache WHERE sha256 = ?", (sha256,)
                )
            ]
            self.db.execute("DELETE FROM cache WHERE sha256 = ?", (sha256,))
            return keys

    def holds(self, sha256: str) -> bool:
        row = self.db.execute("SELECT 1 FROM cache WHERE sha256 = ? LIMIT 1", (sha256,))
        return row.fetchone() is not None


class ContentCache:
    """Results by cache key; methods run on the store's threads. The memory's lock is never
    held across a statement (a statement may wait for another thread's transaction)."""

    def __init__(
        self, store: JobStore, outputs: OutputStore, *, memory_entries: int, max_bytes: int
    ) -> None:
        self._store = store
        self._outputs = outputs
        self._hot: OrderedDict[str, GenerationResult] = OrderedDict()
        self._memory_entries = memory_entries
        self._max_bytes = max_bytes
        self._memory = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._max_bytes > 0

    def get(self, key: str) -> GenerationResult | None:
        """The cached result, if its file is still there."""
        with self._memory:
            result = self._hot.get(key)
        if result is None:
            result = self._store.cache.get(key)  # marks it used
        else:
            self._store.cache.touch(key)  # the eviction order lives in SQLite, hits included
        if result is None or not self._outputs.exists(result.sha256):
            self._forget(key)
            return None
        self._remember(key, result)
        return result

    def put(self, key: str, result: GenerationResult) -> None:
        if not self.enabled or result.size_bytes > self._max_bytes:
            return
        with self._store.transaction():
            self._store.db.lock("outputs")
            self._store.cache.put(key, result)
            self._remember(key, result)
            while self._store.cache.bytes_held() > self._max_bytes:
                oldest = self._store.cache.oldest()
                if oldest is None:
                    break
                old_key, sha256 = oldest
                self._forget(old_key)
                if not self._store.cache.holds(sha256) and not self._store.jobs_holding(sha256):
                    self._outputs.delete(sha256)

    def drop_content(self, sha256: str) -> None:
        """Forgets every entry for this content (its file is being deleted)."""
        for key in self._store.cache.delete_content(sha256):
            with self._memory:
                self._hot.pop(key, None)

    def _remember(self, key: str, result: GenerationResult) -> None:
        if self._memory_entries == 0:
            return
        with self._memory:
            self._hot[key] = result
            self._hot.move_to_end(key)
            while len(self._hot) > self._memory_entries:
                self._hot.popitem(last=False)

    def _forget(self, key: str) -> None:
        with self._memory:
            self._hot.pop(key, None)
        self._store.cache.delete(key)
