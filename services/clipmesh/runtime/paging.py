"""Paged listings: one way to read a `PageRequest` and answer a `PageResponse` for every service.

Page tokens are opaque to callers; inside, they are a number (an offset, or a cursor such as a
sequence number), checked like any other input.
"""

from __future__ import annotations

from clipmesh.runtime.errors import InvalidArgument
from clipmesh_api.common.v1 import common_pb2


def parse_page(
    page: common_pb2.PageRequest, *, default_size: int = 50, max_size: int = 1000
) -> tuple[int, int]:
    """(offset, limit) from a page request. Page tokens are opaque to callers; here they are
    the offset of the next item, checked like any other input."""
    size = page.page_size or default_size
    if not 1 <= size <= max_size:
        raise InvalidArgument(
            f"page.page_size must be 0 (default {default_size}) to {max_size}",
            field="page.page_size",
            reason="BAD_PAGE",
        )
    if not page.page_token:
        return 0, size
    # ASCII only: str.isdigit() accepts "²" and "٣", which int() then refuses or reads.
    if not (page.page_token.isascii() and page.page_token.isdigit()) or len(page.page_token) > 12:
        raise InvalidArgument(
            "page.page_token was not issued by this service",
            field="page.page_token",
            reason="BAD_PAGE",
        )
    return int(page.page_token), size


def page_response(offset: int, returned: int, total: int) -> common_pb2.PageResponse:
    """Where a listing continues after `returned` items from `offset`."""
    following = offset + returned
    return common_pb2.PageResponse(
        next_page_token=str(following) if following < total else "", total_size=total
    )
