"""A client in another language, built from `protos/` alone: Node.js with @grpc/grpc-js and
@grpc/proto-loader calls SearchVideos on a running orchestrator with bad requests and decodes
the google.rpc.Status in `grpc-status-details-bin` with the protos the project ships
(`protos/google/rpc`). Node and the packages come from `make install`."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
import pytest_asyncio

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).parent / "node_client" / "search_errors.mjs"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(mesh_factory):
    async with mesh_factory.in_process("encoder", "index", "orchestrator") as running:
        yield running


async def _node_answers(target: str) -> list[dict]:
    node = shutil.which("node")
    assert node, "node is missing: `make install` needs Node.js (npm installs buf with it)"
    process = await asyncio.create_subprocess_exec(
        node,
        str(SCRIPT),
        target,
        str(ROOT / "protos"),
        cwd=ROOT,  # node_modules/ with @grpc/grpc-js, @grpc/proto-loader, protobufjs
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    return [json.loads(line) for line in out.decode().splitlines()]


async def test_a_node_client_decodes_reason_domain_and_field_from_the_trailer(mesh) -> None:
    top_k, image = await _node_answers(mesh.target("orchestrator"))
    invalid_argument = 3
    assert top_k["code"] == top_k["status_code"] == invalid_argument
    assert (top_k["reason"], top_k["domain"]) == ("BAD_TOP_K", "orchestrator.clipmesh")
    assert top_k["metadata"] == {"field": "top_k"}
    assert "top_k must be" in top_k["message"]
    assert top_k["detail_types"] == ["type.googleapis.com/google.rpc.ErrorInfo"]
    # Refused by the encoder behind the orchestrator, named in the caller's own field.
    assert image["code"] == invalid_argument
    assert image["reason"] == "UNSUPPORTED_IMAGE_FORMAT"
    assert image["metadata"]["field"] == "parts[1].image"


async def test_every_reason_a_node_client_met_is_in_the_published_list(mesh) -> None:
    published = (ROOT / "docs" / "errors.md").read_text()
    for answer in await _node_answers(mesh.target("orchestrator")):
        assert f"| `{answer['reason']}` |" in published, answer["reason"]
