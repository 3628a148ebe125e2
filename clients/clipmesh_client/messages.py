"""Request building shared by `Client` and `AsyncClient`: pure functions, no network.

What the SDK can tell is wrong without asking the service (no positive query part, a string
where a list belongs) is raised here as `InvalidArgumentError`; ranges and limits are the
service's to check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from clipmesh_api.common.v1 import common_pb2
from clipmesh_api.orchestrator.v1 import ingest_pb2, search_pb2
from clipmesh_client.errors import invalid_argument

_Content = TypeVar("_Content", str, bytes)

POSITIVE_WEIGHT = 1.0
NEGATIVE_WEIGHT = -1.0


def query_parts(
    *,
    image: bytes | None = None,
    text: str | None = None,
    like: tuple[str, float, float] | None = None,
    not_text: str | None = None,
    not_image: bytes | None = None,
    parts: Sequence[search_pb2.QueryPart] = (),
) -> list[search_pb2.QueryPart]:
    """The query's parts: weight 1 for image, text and like, -1 for the `not_` ones, then `parts`.

    Raises:
        InvalidArgumentError: An empty text or image, a part of no kind, or no positive part.
    """
    built: list[search_pb2.QueryPart] = []
    if image is not None:
        built.append(search_pb2.QueryPart(image=_non_empty(image, "image"), weight=POSITIVE_WEIGHT))
    if text is not None:
        built.append(search_pb2.QueryPart(text=_non_empty(text, "text"), weight=POSITIVE_WEIGHT))
    if like is not None:
        built.append(search_pb2.QueryPart(clip=_clip(like), weight=POSITIVE_WEIGHT))
    if not_text is not None:
        built.append(
            search_pb2.QueryPart(text=_non_empty(not_text, "not_text"), weight=NEGATIVE_WEIGHT)
        )
    if not_image is not None:
        built.append(
            search_pb2.QueryPart(image=_non_empty(not_image, "not_image"), weight=NEGATIVE_WEIGHT)
        )
    for index, part in enumerate(parts):
        if part.WhichOneof("kind") is None:
            raise invalid_argument(
                f"parts[{index}] sets no image, text or clip", field=f"parts[{index}]"
            )
        built.append(part)
    # The service reads weight 0 as 1, so only a negative weight is "not like this".
    if not any(part.weight >= 0 for part in built):
        raise invalid_argument(
            "a search needs at least one positive part: image=, text=, like= or a part with "
            "weight > 0",
            field="parts",
        )
    return built


def search_request(
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
) -> search_pb2.SearchVideosRequest:
    """The `SearchVideosRequest` for `Client.search`'s arguments."""
    return search_pb2.SearchVideosRequest(
        parts=query_parts(
            image=image,
            text=text,
            like=like,
            not_text=not_text,
            not_image=not_image,
            parts=parts,
        ),
        collection=collection,
        top_k=top_k,
        max_moments_per_video=max_moments,
        filter=filter,
        budget_ms=budget_ms,
        skip_cache=skip_cache,
        min_score=min_score,
    )


def ingest_request(
    paths: Sequence[str | Path],
    *,
    collection: str = "",
    labels: Mapping[str, str] | None = None,
    titles: Sequence[str] | None = None,
) -> ingest_pb2.IngestVideosRequest:
    """The `IngestVideosRequest` for `paths`, sent as given: the service resolves them.

    Args:
        paths: Paths or `file://` URIs the orchestrator may read; nothing is read here.
        collection: The collection to add to; "" is the service's default.
        labels: Metadata stored with every video of the batch.
        titles: One title per path, in order; by default the service uses the file names.
    """
    if isinstance(paths, str | Path):
        raise invalid_argument("ingest() takes a list of paths, not one path", field="items")
    if not paths:
        raise invalid_argument("ingest() needs at least one path", field="items")
    if titles is not None and len(titles) != len(paths):
        raise invalid_argument(
            f"titles has {len(titles)} entries for {len(paths)} paths", field="items.title"
        )
    text_labels = {str(key): str(value) for key, value in (labels or {}).items()}
    items = [
        ingest_pb2.IngestItem(
            uri=str(path), title=titles[index] if titles else "", labels=text_labels
        )
        for index, path in enumerate(paths)
    ]
    return ingest_pb2.IngestVideosRequest(items=items, collection=collection)


def list_request(
    *,
    collection: str = "",
    filter: common_pb2.MetadataFilter | None = None,
    page_size: int = 100,
) -> ingest_pb2.ListVideosRequest:
    """The `ListVideosRequest` of a listing's first page."""
    return ingest_pb2.ListVideosRequest(
        collection=collection, filter=filter, page=common_pb2.PageRequest(page_size=page_size)
    )


def next_page_request(
    request: ingest_pb2.ListVideosRequest, response: ingest_pb2.ListVideosResponse
) -> ingest_pb2.ListVideosRequest | None:
    """The request of the page after `response`, or None when it was the last."""
    token = response.page.next_page_token
    if not token:
        return None
    following = ingest_pb2.ListVideosRequest()
    following.CopyFrom(request)
    following.page.page_token = token
    return following


def get_request(video_id: str, *, collection: str = "") -> ingest_pb2.GetVideoRequest:
    """The `GetVideoRequest` for one video."""
    return ingest_pb2.GetVideoRequest(collection=collection, video_id=video_id)


def delete_request(
    video_ids: Sequence[str], *, collection: str = ""
) -> ingest_pb2.DeleteVideosRequest:
    """The `DeleteVideosRequest` for `video_ids`."""
    if isinstance(video_ids, str):
        raise invalid_argument("delete_videos() takes a list of ids, not one id", field="video_ids")
    return ingest_pb2.DeleteVideosRequest(collection=collection, video_ids=list(video_ids))


def _non_empty(value: _Content, field: str) -> _Content:
    if not value:
        raise invalid_argument(f"{field} is empty", field=field)
    return value


def _clip(like: tuple[str, float, float]) -> search_pb2.ClipReference:
    video_id, start_s, end_s = like
    if not video_id:
        raise invalid_argument("like: the video id is empty", field="like")
    return search_pb2.ClipReference(
        video_id=video_id, span=common_pb2.TimeRange(start_s=start_s, end_s=end_s)
    )
