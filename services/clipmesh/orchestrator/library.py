"""The library's videos as IngestService shows them: get, list and delete, over the index.

Requests go to the index as they are (it checks ids, filters and pages, naming the same
fields); a delete clears this orchestrator's cached answers about the collection.
"""

from __future__ import annotations

from collections.abc import Sequence

from clipmesh.index.client import IndexClient, StoredVideo, VideoPage
from clipmesh.index.filters import VideoFilter
from clipmesh.orchestrator.cache import QueryCache

LIBRARY_TIMEOUT_S = 10.0


class VideoLibrary:
    """Reads and removes the videos of the library."""

    def __init__(self, index: IndexClient, cache: QueryCache) -> None:
        self._index = index
        self._cache = cache

    async def get(self, collection: str, video_id: str) -> StoredVideo:
        """One video; NotFound when the collection has none by that id."""
        return await self._index.get_video(collection, video_id, timeout_s=LIBRARY_TIMEOUT_S)

    async def list(
        self, collection: str, video_filter: VideoFilter | None, page_size: int, page_token: str
    ) -> VideoPage:
        """A page of the collection's videos, newest first."""
        return await self._index.list_videos(
            collection,
            video_filter=video_filter,
            page_size=page_size,
            page_token=page_token,
            timeout_s=LIBRARY_TIMEOUT_S,
        )

    async def delete(self, collection: str, video_ids: Sequence[str]) -> tuple[int, list[str]]:
        """Removes videos; returns (how many went, the ids the collection did not hold)."""
        deleted = await self._index.delete_videos(
            collection, video_ids, timeout_s=LIBRARY_TIMEOUT_S
        )
        self._cache.invalidate(collection)
        return deleted
