"""Hostile inputs to the internal services: the encoder, the index and the generator."""

from __future__ import annotations

import pytest

from clipmesh_api.common.v1 import common_pb2
from clipmesh_api.encoder.v1 import encoder_pb2
from clipmesh_api.generator.v1 import generator_pb2
from clipmesh_api.index.v1 import index_pb2
from tests.hostile.media import png_declaring
from tests.hostile.support import (
    EMBED_TEXTS,
    GENERATE,
    INDEX_SEARCH,
    INF,
    INVALID,
    INVALID_UTF8,
    NAN,
    NOT_FOUND,
    TEN_MB,
    encoder,
    generate,
    generator,
    index,
    index_search,
    nested_groups,
    raw,
    refused,
    upsert,
    with_raw_string,
)

INTERNAL_CASES = [
    # EncoderService
    pytest.param(
        encoder(
            "EmbedImages", encoder_pb2.EmbedImagesRequest(images=[png_declaring(60_000, 60_000)])
        ),
        refused(INVALID, "IMAGE_TOO_MANY_PIXELS", "refused before decoding", "images[0]"),
        id="encoder/decompression-bomb-png",
    ),
    pytest.param(
        encoder(
            "EmbedImages",
            lambda: encoder_pb2.EmbedImagesRequest(images=[b"\xff\xd8\xff" + bytes(13 << 20)] * 4),
        ),
        refused(INVALID, "REQUEST_TOO_LARGE", "48", "images"),
        id="encoder/52-mb-of-images",
    ),
    pytest.param(
        encoder("EmbedTexts", lambda: encoder_pb2.EmbedTextsRequest(texts=["t"] * 100_000)),
        refused(INVALID, "TOO_MANY_ITEMS", "256", "texts"),
        id="encoder/100000-texts",
    ),
    pytest.param(
        encoder("EmbedTexts", lambda: encoder_pb2.EmbedTextsRequest(texts=["p" * TEN_MB])),
        refused(INVALID, "TEXT_TOO_LONG", "4096", "texts[0]"),
        id="encoder/10-mb-text",
    ),
    pytest.param(
        raw(
            "encoder",
            EMBED_TEXTS,
            with_raw_string(encoder_pb2.EmbedTextsRequest, ("texts",), INVALID_UTF8),
        ),
        refused(INVALID, "MALFORMED_REQUEST", "EmbedTextsRequest"),
        id="encoder/invalid-utf8-text",
    ),
    # IndexService: vectors, numbers, labels
    pytest.param(
        index_search(lambda d: [NAN] * d),
        refused(INVALID, "BAD_VECTOR", "NaN or infinity", "queries[0].vector"),
        id="index/nan-vector",
    ),
    pytest.param(
        index_search(lambda d: [1.0] * (d - 1) + [INF]),
        refused(INVALID, "BAD_VECTOR", "NaN or infinity", "queries[0].vector"),
        id="index/infinite-vector",
    ),
    pytest.param(
        index_search(lambda d: [0.0] * d),
        refused(INVALID, "BAD_VECTOR", "all zeros", "queries[0].vector"),
        id="index/zero-vector",
    ),
    pytest.param(
        index_search(lambda d: [1.0] * (d + 1)),
        refused(INVALID, "DIMENSION_MISMATCH", "dimension"),
        id="index/wrong-dimension",
    ),
    pytest.param(
        index_search(lambda d: [1.0] * d, top_k=10**9),
        refused(INVALID, "BAD_TOP_K", "top_k must be", "top_k"),
        id="index/billion-top-k",
    ),
    pytest.param(
        index(
            "GetSegments",
            index_pb2.GetSegmentsRequest(
                video_id="hostile", span=common_pb2.TimeRange(start_s=NAN, end_s=1)
            ),
        ),
        refused(INVALID, "BAD_TIME", "span", "span"),
        id="index/nan-segments-span",
    ),
    pytest.param(
        raw("index", INDEX_SEARCH, nested_groups(1000)),
        refused(INVALID, "MALFORMED_REQUEST", "SearchRequest"),
        id="index/1000-nested-groups",
    ),
    pytest.param(
        upsert(segment={"vector": [1.0] * 100_000}),
        refused(INVALID, "DIMENSION_MISMATCH", "4096", "videos[0].segments[0].vector"),
        id="index/100000-dimensional-vector",
    ),
    pytest.param(
        upsert(segment={"end_s": NAN}),
        refused(INVALID, "BAD_TIME", "non-finite", "videos[0].segments[0]"),
        id="index/nan-segment-time",
    ),
    pytest.param(
        upsert(video={"duration_s": INF}),
        refused(INVALID, "BAD_METADATA", "finite", "videos[0].video.duration_s"),
        id="index/infinite-duration",
    ),
    pytest.param(
        upsert(video={"labels": {"note": "n" * TEN_MB}}),
        refused(INVALID, "LABEL_TOO_LONG", "too long", "videos[0].video.labels"),
        id="index/10-mb-label",
    ),
    # GeneratorService
    pytest.param(
        generate(prompt="灯" * TEN_MB),
        refused(INVALID, "PROMPT_TOO_LONG", "prompts are never truncated", "spec.prompt"),
        id="generator/10-mb-prompt",
    ),
    pytest.param(
        generate(duration_s=NAN),
        refused(INVALID, "UNSUPPORTED_DURATION", "nan s", "spec.duration_s"),
        id="generator/nan-duration",
    ),
    pytest.param(
        generate(duration_s=1e308),
        refused(INVALID, "UNSUPPORTED_DURATION", "1e+308 s", "spec.duration_s"),
        id="generator/absurd-duration",
    ),
    pytest.param(
        generate(width=2**31 - 1, height=2**31 - 1),
        refused(INVALID, "UNSUPPORTED_SIZE", "2147483647x2147483647", "spec.width"),
        id="generator/absurd-size",
    ),
    pytest.param(
        generate(fps=INF),
        refused(INVALID, "UNSUPPORTED_FPS", "inf", "spec.fps"),
        id="generator/infinite-fps",
    ),
    pytest.param(
        generate(labels={"k": "v" * TEN_MB}),
        refused(INVALID, "LABEL_TOO_LONG", "values at most 4096", "spec.labels"),
        id="generator/10-mb-label",
    ),
    pytest.param(
        generator("GetJob", generator_pb2.GetJobRequest(job_id="../../etc/passwd")),
        refused(INVALID, "BAD_JOB_ID", "not a job id issued by this gateway", "job_id"),
        id="generator/path-as-job-id",
    ),
    pytest.param(
        generator("GetJob", generator_pb2.GetJobRequest(job_id="j\x1b[2J\n\u202eevil")),
        refused(INVALID, "BAD_JOB_ID", "not a job id issued by this gateway", "job_id"),
        id="generator/control-characters-in-job-id",
    ),
    pytest.param(
        generator("DownloadJobOutput", generator_pb2.DownloadJobOutputRequest(job_id="0" * 32)),
        refused(NOT_FOUND, "JOB_NOT_FOUND", "no job"),
        id="generator/download-unknown-job",
    ),
    pytest.param(
        generator("ListJobs", generator_pb2.ListJobsRequest(states=[2**31 - 1])),
        refused(INVALID, "UNKNOWN_ENUM_VALUE", "is not a JobState", "states[0]"),
        id="generator/unknown-job-state",
    ),
    pytest.param(
        raw(
            "generator",
            GENERATE,
            with_raw_string(generator_pb2.GenerateRequest, ("spec", "prompt"), INVALID_UTF8),
            streaming=True,
        ),
        refused(INVALID, "MALFORMED_REQUEST", "GenerateRequest"),
        id="generator/invalid-utf8-prompt",
    ),
]
