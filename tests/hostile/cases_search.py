"""Hostile inputs to SearchService.SearchVideos: query images, texts, numbers and filters."""

from __future__ import annotations

import pytest

from clipmesh_api.common.v1 import common_pb2
from clipmesh_api.orchestrator.v1 import search_pb2
from tests.hostile.media import broken_jpeg, broken_png, broken_webp, png_declaring
from tests.hostile.support import (
    EXHAUSTED,
    INF,
    INVALID,
    INVALID_UTF8,
    NAN,
    NOT_FOUND,
    SEARCH,
    TEN_MB,
    TEXT,
    clip,
    huge_image,
    image,
    metadata_filter,
    nested_groups,
    raw,
    refused,
    search,
    with_raw_string,
)

SEARCH_CASES = [
    # SearchService.SearchVideos: query images (decoded by the encoder), texts, numbers, filters
    pytest.param(
        search(image(png_declaring(50_000, 50_000))),
        refused(INVALID, "IMAGE_TOO_MANY_PIXELS", "refused before decoding", "parts[0].image"),
        id="search/decompression-bomb-png",
    ),
    pytest.param(
        search(image(broken_jpeg())),
        refused(INVALID, "CORRUPT_IMAGE", "truncated or corrupt (JPEG)", "parts[0].image"),
        id="search/truncated-jpeg",
    ),
    pytest.param(
        search(TEXT, image(broken_png())),
        refused(INVALID, "CORRUPT_IMAGE", "(PNG)", "parts[1].image"),
        id="search/corrupt-png",
    ),
    pytest.param(
        search(image(broken_webp())),
        refused(INVALID, "CORRUPT_IMAGE", "(WEBP)", "parts[0].image"),
        id="search/corrupt-webp",
    ),
    pytest.param(
        search(image(b"")),
        refused(INVALID, "EMPTY_IMAGE", "is empty", "parts[0].image"),
        id="search/zero-byte-image",
    ),
    pytest.param(
        search(image(huge_image())),
        refused(INVALID, "IMAGE_TOO_LARGE", "the limit is 16777216", "parts[0].image"),
        id="search/17-mb-image",
    ),
    pytest.param(
        search(search_pb2.QueryPart(text="港" * TEN_MB), budget_ms=60_000),
        refused(INVALID, "TEXT_TOO_LONG", "4096", "parts[0].text"),
        id="search/10-mb-text",
    ),
    pytest.param(
        raw(
            "orchestrator",
            SEARCH,
            with_raw_string(search_pb2.SearchVideosRequest, ("parts", "text"), INVALID_UTF8),
        ),
        refused(
            INVALID, "MALFORMED_REQUEST", "not a valid clipmesh.orchestrator.v1.SearchVideosRequest"
        ),
        id="search/invalid-utf8-text",
    ),
    pytest.param(
        raw("orchestrator", SEARCH, nested_groups(100_000)),
        refused(INVALID, "MALFORMED_REQUEST", "SearchVideosRequest"),
        id="search/100000-nested-groups",
    ),
    pytest.param(
        search(image(b"\xff\xd8\xff" + bytes(65 * 1024 * 1024))),
        refused(EXHAUSTED, "", "larger than max"),
        id="search/65-mb-message",
    ),
    pytest.param(
        search(search_pb2.QueryPart(text="x", weight=NAN)),
        refused(INVALID, "BAD_WEIGHT", "finite", "parts[0].weight"),
        id="search/nan-weight",
    ),
    pytest.param(
        search(TEXT, search_pb2.QueryPart(text="y", weight=-INF)),
        refused(INVALID, "BAD_WEIGHT", "finite", "parts[1].weight"),
        id="search/minus-infinity-weight",
    ),
    pytest.param(
        search(TEXT, top_k=2**31 - 1),
        refused(INVALID, "BAD_TOP_K", "top_k must be", "top_k"),
        id="search/top-k-2147483647",
    ),
    pytest.param(
        search(TEXT, top_k=-1),
        refused(INVALID, "BAD_TOP_K", "top_k must be", "top_k"),
        id="search/negative-top-k",
    ),
    pytest.param(
        search(TEXT, budget_ms=-1),
        refused(INVALID, "BAD_BUDGET", "budget_ms", "budget_ms"),
        id="search/negative-budget",
    ),
    pytest.param(
        search(TEXT, max_moments_per_video=10**9),
        refused(INVALID, "BAD_MOMENTS", "max_moments_per_video", "max_moments_per_video"),
        id="search/absurd-moments",
    ),
    pytest.param(
        search(*[TEXT] * 1000),
        refused(INVALID, "TOO_MANY_ITEMS", "the limit is 16", "parts"),
        id="search/1000-parts",
    ),
    pytest.param(
        search(), refused(INVALID, "EMPTY_QUERY", "parts is empty", "parts"), id="search/no-parts"
    ),
    pytest.param(
        search(clip("v1", NAN, 2)),
        refused(INVALID, "BAD_TIME", "start_s < end_s", "parts[0].clip.span"),
        id="search/nan-clip-span",
    ),
    pytest.param(
        search(clip("v1", 0, INF)),
        refused(INVALID, "BAD_TIME", "start_s < end_s", "parts[0].clip.span"),
        id="search/infinite-clip-span",
    ),
    pytest.param(
        search(clip("v\x00" + "x" * 10_000, 0, 1)),
        refused(INVALID, "BAD_ID", "control characters", "parts[0].clip.video_id"),
        id="search/10-kb-clip-id-with-nul",
    ),
    pytest.param(
        search(clip("v0000000000", 0, 1)),
        refused(NOT_FOUND, "VIDEO_NOT_FOUND", "v0000000000"),
        id="search/unknown-clip-video",
    ),
    pytest.param(
        search(
            TEXT,
            filter=metadata_filter(*[common_pb2.FilterClause(field="title", equals="a")] * 10_000),
        ),
        refused(INVALID, "FILTER_TOO_LARGE", "the limit is 64", "filter.clauses"),
        id="search/10000-filter-clauses",
    ),
    pytest.param(
        search(
            TEXT,
            filter=metadata_filter(
                common_pb2.FilterClause(
                    field="title", any_of=common_pb2.StringList(values=["t"] * 100_000)
                )
            ),
        ),
        refused(INVALID, "FILTER_TOO_LARGE", "the limit is 1024", "filter.clauses[0]"),
        id="search/100000-filter-values",
    ),
    pytest.param(
        search(
            TEXT,
            filter=metadata_filter(
                common_pb2.FilterClause(field="duration_s", range=common_pb2.NumericRange(min=NAN))
            ),
        ),
        refused(INVALID, "BAD_FILTER", "finite", "filter.clauses[0]"),
        id="search/nan-filter-range",
    ),
    pytest.param(
        search(
            TEXT, filter=metadata_filter(common_pb2.FilterClause(field="__class__", equals="x"))
        ),
        refused(INVALID, "BAD_FILTER", "unknown field", "filter.clauses[0]"),
        id="search/unknown-filter-field",
    ),
    pytest.param(
        search(TEXT, collection="../../etc/passwd"),
        refused(INVALID, "BAD_COLLECTION", "must start with a letter", "collection"),
        id="search/path-as-collection",
    ),
]
