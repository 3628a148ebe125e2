"""Hostile inputs to IngestService: files, paths and URIs to ingest, and the library's RPCs."""

from __future__ import annotations

import pytest

from clipmesh_api.common.v1 import common_pb2
from clipmesh_api.orchestrator.v1 import ingest_pb2
from tests.hostile.support import (
    INGEST,
    INVALID,
    INVALID_UTF8,
    NOT_FOUND,
    fails_alone,
    ingest,
    ingest_file,
    library,
    raw,
    refused,
    with_raw_string,
)

INGEST_CASES = [
    # IngestService.IngestVideos: each bad file fails alone, with its reason
    pytest.param(
        ingest_file("empty.mp4"),
        fails_alone("NOT_A_VIDEO", "the file is empty"),
        id="ingest/zero-byte-mp4",
    ),
    pytest.param(
        ingest_file("truncated.mp4"),
        fails_alone("CORRUPT_MEDIA", "truncated"),
        id="ingest/truncated-mp4",
    ),
    pytest.param(
        ingest_file("cut\x1b[2J\n\u202e4pm.mp4"),
        fails_alone("CORRUPT_MEDIA", "cut\\x1b[2J\\n\\u202e4pm.mp4: truncated"),
        id="ingest/control-characters-in-the-file-name",
    ),
    pytest.param(
        ingest_file("garbage-frames.mp4"),
        fails_alone("CORRUPT_MEDIA", "decoding failed"),
        id="ingest/mp4-with-garbage-frames",
    ),
    pytest.param(
        ingest_file("index-past-the-end.mp4"),
        fails_alone("CORRUPT_MEDIA", "ends before the media its index lists"),
        id="ingest/mp4-index-past-the-end",
    ),
    pytest.param(
        ingest_file("pixel-bomb.mov"),
        fails_alone("CORRUPT_MEDIA", "frames over 36,000,000 pixels are refused unread"),
        id="ingest/decompression-bomb-video",
    ),
    pytest.param(
        ingest_file("lying-bomb.mov"),
        fails_alone("CORRUPT_MEDIA", "frames over 36,000,000 pixels are refused unread"),
        id="ingest/bomb-video-whose-header-says-64x64",
    ),
    pytest.param(
        ingest_file("huge.mp4"),
        fails_alone("MEDIA_TOO_LARGE", "the limit is 21,474,836,480 bytes"),
        id="ingest/sparse-21-gb-file",
    ),
    pytest.param(
        ingest_file("playlist.mp4"),
        fails_alone("NOT_A_VIDEO", "no supported container format"),
        id="ingest/hls-playlist-named-mp4",
    ),
    pytest.param(
        ingest_file("remote-playlist.m3u8"),
        fails_alone("NOT_A_VIDEO", "no supported container format"),
        id="ingest/hls-playlist-of-http-segments",
    ),
    pytest.param(
        ingest_file("concat-script.mp4"),
        fails_alone("NOT_A_VIDEO", "no supported container format"),
        id="ingest/ffconcat-script-named-mp4",
    ),
    pytest.param(
        ingest_file("image-bomb.mp4"),
        fails_alone("NOT_A_VIDEO", "no supported container format"),
        id="ingest/png-bomb-named-mp4",
    ),
    pytest.param(
        ingest_file("escape.mp4"),
        fails_alone("OUTSIDE_ALLOWED_ROOTS", "outside the directories this server may read"),
        id="ingest/symlink-out-of-the-root",
    ),
    pytest.param(
        ingest_file("zeros.mp4"),
        fails_alone("OUTSIDE_ALLOWED_ROOTS", "outside the directories"),
        id="ingest/symlink-to-dev-zero",
    ),
    pytest.param(
        ingest_file("loop.mp4"),
        fails_alone("FILE_NOT_READABLE", "symbolic links"),
        id="ingest/symlink-loop",
    ),
    pytest.param(
        ingest_file("fifo.mp4"),
        fails_alone("NOT_A_FILE", "not a regular file"),
        id="ingest/fifo-that-would-block-a-reader",
    ),
    pytest.param(
        ingest_file("folder.mp4"),
        fails_alone("NOT_A_FILE", "not a regular file"),
        id="ingest/directory",
    ),
    pytest.param(
        ingest(lambda mesh: f"{mesh.root}/hostile/../../../../etc/passwd"),
        fails_alone("OUTSIDE_ALLOWED_ROOTS", "outside the directories"),
        id="ingest/dot-dot-escape",
    ),
    pytest.param(
        ingest(lambda mesh: f"file://{mesh.root}/%2e%2e/%2e%2e/etc/passwd"),
        fails_alone("OUTSIDE_ALLOWED_ROOTS", "outside the directories"),
        id="ingest/percent-encoded-dot-dot",
    ),
    pytest.param(
        ingest("file:///etc/passwd"),
        fails_alone("OUTSIDE_ALLOWED_ROOTS", "outside the directories"),
        id="ingest/file-uri-outside-the-roots",
    ),
    pytest.param(
        ingest(lambda mesh: f"concat:{mesh.files['good.mp4']}|/etc/passwd"),
        fails_alone("UNSUPPORTED_URI_SCHEME", "the 'concat' scheme is not accepted"),
        id="ingest/ffmpeg-concat-uri",
    ),
    pytest.param(
        ingest("http://127.0.0.1:9/live/index.m3u8"),
        fails_alone("UNSUPPORTED_URI_SCHEME", "the 'http' scheme is not accepted"),
        id="ingest/hls-url",
    ),
    pytest.param(
        ingest("pipe:0"),
        fails_alone("UNSUPPORTED_URI_SCHEME", "the 'pipe' scheme"),
        id="ingest/ffmpeg-pipe",
    ),
    pytest.param(
        ingest(lambda mesh: f"subfile,,start,0,end,100,,:{mesh.files['good.mp4']}"),
        fails_alone("RELATIVE_PATH", "give an absolute path"),
        id="ingest/ffmpeg-subfile",
    ),
    pytest.param(
        ingest("file://attacker.example/share/clip.mp4"),
        fails_alone("UNSUPPORTED_URI_SCHEME", "must name a local file"),
        id="ingest/file-uri-with-a-remote-host",
    ),
    pytest.param(
        ingest(lambda mesh: f"{mesh.root}/clip\x00.mp4"),
        fails_alone("INVALID_PATH", "NUL byte"),
        id="ingest/nul-byte-in-path",
    ),
    pytest.param(
        ingest(lambda mesh: f"{mesh.root}/{'a' * 5000}.mp4"),
        fails_alone("INVALID_PATH", "longer than 4096 bytes"),
        id="ingest/5000-byte-path",
    ),
    pytest.param(
        ingest(lambda mesh: f"{mesh.root}/missing.mp4"),
        fails_alone("FILE_NOT_FOUND", "no such file"),
        id="ingest/missing-file",
    ),
    pytest.param(
        raw(
            "orchestrator",
            INGEST,
            with_raw_string(ingest_pb2.IngestVideosRequest, ("items", "uri"), INVALID_UTF8),
            streaming=True,
        ),
        refused(INVALID, "MALFORMED_REQUEST", "IngestVideosRequest"),
        id="ingest/invalid-utf8-uri",
    ),
    pytest.param(
        library("IngestVideos", ingest_pb2.IngestVideosRequest()),
        refused(INVALID, "EMPTY_REQUEST", "items is empty", "items"),
        id="ingest/no-items",
    ),
    pytest.param(
        library(
            "IngestVideos",
            lambda: ingest_pb2.IngestVideosRequest(items=[ingest_pb2.IngestItem(uri="/x")] * 5000),
        ),
        refused(INVALID, "TOO_MANY_ITEMS", "the limit is 1000", "items"),
        id="ingest/5000-items",
    ),
    # IngestService: the library
    pytest.param(
        library("DeleteVideos", ingest_pb2.DeleteVideosRequest()),
        refused(INVALID, "EMPTY_REQUEST", "video_ids is empty", "video_ids"),
        id="library/delete-nothing",
    ),
    pytest.param(
        library("GetVideo", ingest_pb2.GetVideoRequest(video_id="v" * 100_000)),
        refused(INVALID, "BAD_ID", "at most 256 characters", "video_id"),
        id="library/100-kb-video-id",
    ),
    pytest.param(
        library("GetVideo", ingest_pb2.GetVideoRequest(video_id="v0000000000")),
        refused(NOT_FOUND, "VIDEO_NOT_FOUND", "v0000000000"),
        id="library/unknown-video",
    ),
    pytest.param(
        library(
            "ListVideos", ingest_pb2.ListVideosRequest(page=common_pb2.PageRequest(page_token="²"))
        ),
        refused(INVALID, "BAD_PAGE", "not issued by this service", "page.page_token"),
        id="library/superscript-digit-page-token",
    ),
    pytest.param(
        library(
            "ListVideos", ingest_pb2.ListVideosRequest(page=common_pb2.PageRequest(page_size=-5))
        ),
        refused(INVALID, "BAD_PAGE", "page_size", "page.page_size"),
        id="library/negative-page-size",
    ),
]
