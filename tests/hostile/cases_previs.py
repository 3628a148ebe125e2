"""Hostile inputs to PrevisService: scripts, numbers and reference images."""

from __future__ import annotations

import pytest

from clipmesh_api.orchestrator.v1 import previs_pb2
from tests.hostile.media import broken_jpeg, png_declaring
from tests.hostile.support import (
    CREATE,
    INVALID,
    INVALID_UTF8,
    NAN,
    NOT_FOUND,
    TEN_MB,
    huge_image,
    previs,
    project,
    raw,
    reference,
    refused,
    with_raw_string,
)
from tests.media import encode, gradient_image

PREVIS_CASES = [
    # PrevisService: scripts, numbers, reference images (decoded by the compliance check)
    pytest.param(
        reference(png_declaring(50_000, 50_000)),
        refused(INVALID, "IMAGE_TOO_MANY_PIXELS", "refused before decoding", "references[0].image"),
        id="previs/decompression-bomb-reference",
    ),
    pytest.param(
        reference(broken_jpeg()),
        refused(
            INVALID, "CORRUPT_IMAGE", "not a readable JPEG, PNG or WebP", "references[0].image"
        ),
        id="previs/truncated-jpeg-reference",
    ),
    pytest.param(
        reference(encode(gradient_image(64, 48), "TIFF")),
        refused(
            INVALID, "CORRUPT_IMAGE", "not a readable JPEG, PNG or WebP", "references[0].image"
        ),
        id="previs/tiff-reference",
    ),
    pytest.param(
        reference(huge_image()),
        refused(INVALID, "IMAGE_TOO_LARGE", "it must have 1 to 10485760", "references[0].image"),
        id="previs/17-mb-reference",
    ),
    pytest.param(
        project(script="雨" * TEN_MB),
        refused(INVALID, "BAD_SCRIPT", "200,000 allowed", "script"),
        id="previs/10-mb-script",
    ),
    pytest.param(
        project(width=2**31 - 1, height=144),
        refused(INVALID, "INVALID_ARGUMENT", "even number of pixels", "width"),
        id="previs/absurd-width",
    ),
    pytest.param(
        project(fps=NAN),
        refused(INVALID, "INVALID_ARGUMENT", "fps must be", "fps"),
        id="previs/nan-fps",
    ),
    pytest.param(
        project(variants=-1),
        refused(INVALID, "INVALID_ARGUMENT", "variants must be", "variants"),
        id="previs/negative-variants",
    ),
    pytest.param(
        raw(
            "previs",
            CREATE,
            with_raw_string(previs_pb2.CreateProjectRequest, ("title",), INVALID_UTF8),
            streaming=True,
        ),
        refused(INVALID, "MALFORMED_REQUEST", "CreateProjectRequest"),
        id="previs/invalid-utf8-title",
    ),
    pytest.param(
        previs(
            "ReviewShot",
            lambda: previs_pb2.ReviewShotRequest(
                project_id="p1", shot_id="s001", note="n" * TEN_MB
            ),
        ),
        refused(INVALID, "INVALID_ARGUMENT", "the limit is 500", "note"),
        id="previs/10-mb-review-note",
    ),
    pytest.param(
        previs("GetProject", previs_pb2.GetProjectRequest(project_id="../../etc/passwd")),
        refused(NOT_FOUND, "PROJECT_NOT_FOUND", "no project"),
        id="previs/path-as-project-id",
    ),
    pytest.param(
        # An escape sequence, a newline and a right-to-left override, quoted back escaped.
        previs("GetProject", previs_pb2.GetProjectRequest(project_id="p\x1b[2J\n\u202eevil")),
        refused(NOT_FOUND, "PROJECT_NOT_FOUND", "p\\x1b[2J\\n\\u202eevil"),
        id="previs/control-characters-in-project-id",
    ),
    pytest.param(
        previs("ExportCut", previs_pb2.ExportCutRequest(project_id="p" * 1_000_000)),
        refused(NOT_FOUND, "PROJECT_NOT_FOUND", "no project"),
        id="previs/1-mb-project-id",
    ),
]
