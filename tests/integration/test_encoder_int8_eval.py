"""precision=int8 over the mesh: the demo library ingested and `clipmesh eval` run over its
labelled queries with an int8 encoder gives the same recall as with fp32, and the encoder's
GetModelInfo says int8."""

from __future__ import annotations

import json
import shutil

import pytest

from clipmesh.demo.library import DEMO_QUERIES, make_library
from clipmesh_api.encoder.v1 import encoder_pb2, encoder_pb2_grpc
from clipmesh_api.orchestrator.v1 import ingest_pb2, ingest_pb2_grpc
from clipmesh_client.wire import ChannelPolicy
from tests.support import run_cli

pytestmark = pytest.mark.asyncio(loop_scope="module")
RECALLS = ("recall@1", "recall@5", "recall@10")


async def _eval_report(mesh_factory, library, precision: str) -> tuple[dict, str]:
    """Ingests the library into a fresh mesh whose encoder runs in `precision`, then runs
    `clipmesh eval` over the demo queries; returns the JSON report and the reported precision."""
    env = {
        "encoder": {"CLIPMESH_ENCODER_PRECISION": precision},
        "orchestrator": {"CLIPMESH_ORCHESTRATOR_ALLOWED_ROOTS": str(library)},
    }
    async with mesh_factory.in_process("encoder", "index", "orchestrator", env=env) as mesh:
        calls = ChannelPolicy(timeout_s=300, max_attempts=1)
        info = await mesh.stub("encoder", encoder_pb2_grpc.EncoderServiceStub).GetModelInfo(
            encoder_pb2.GetModelInfoRequest()
        )
        ingest = mesh.stub("orchestrator", ingest_pb2_grpc.IngestServiceStub, calls)
        request = ingest_pb2.IngestVideosRequest(
            items=[ingest_pb2.IngestItem(uri=str(path)) for path in sorted(library.glob("*.mp4"))]
        )
        events = [event async for event in ingest.IngestVideos(request)]
        assert events[-1].summary.failed == 0
        code, out, err = await run_cli(
            "eval",
            str(library / "queries.jsonl"),
            "--json",
            "--target",
            mesh.target("orchestrator"),
            timeout_s=300,
        )
    assert code == 0, err[-3000:]
    return json.loads(out), info.precision


async def test_the_demo_eval_recall_is_the_same_with_int8_as_with_fp32(
    mesh_factory, tmp_path_factory
) -> None:
    library = tmp_path_factory.mktemp("demo-library")
    make_library(library, count=8, seed=0)  # what `make demo` ingests
    shutil.copyfile(DEMO_QUERIES, library / "queries.jsonl")

    fp32, fp32_precision = await _eval_report(mesh_factory, library, "fp32")
    int8, int8_precision = await _eval_report(mesh_factory, library, "int8")

    assert (fp32_precision, int8_precision) == ("fp32", "int8")
    assert fp32["groups"]["overall"]["queries"] == int8["groups"]["overall"]["queries"] >= 20
    assert fp32["groups"]["overall"]["errors"] == int8["groups"]["overall"]["errors"] == 0
    for group, figures in fp32["groups"].items():
        assert {k: int8["groups"][group][k] for k in RECALLS} == {k: figures[k] for k in RECALLS}, (
            group
        )
