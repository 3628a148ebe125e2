"""A multilingual encoder end to end: `clipmesh-tiny-xlm-roberta` (an xlm-roberta text tower,
the family of xlm-roberta-base-ViT-B-32) served from a mounted tokenizer directory made here,
with random weights; videos made here are ingested through the orchestrator and found by
Chinese and English text. The English-only tiny model beside it warns about the same Chinese
query. The services start with every outgoing connection that is not to loopback refused, so
the hub could not be reached if anything asked it."""

from __future__ import annotations

import ipaddress
import os
import socket

import pytest
import pytest_asyncio

from clipmesh.demo.library import make_library
from clipmesh_api.encoder.v1 import encoder_pb2, encoder_pb2_grpc
from clipmesh_api.orchestrator.v1 import ingest_pb2, ingest_pb2_grpc, search_pb2, search_pb2_grpc
from clipmesh_client.wire import ChannelPolicy
from tests.support import run_cli

pytestmark = pytest.mark.asyncio(loop_scope="module")
CALLS = ChannelPolicy(timeout_s=120, max_attempts=1)
QUERIES = ("龙舟竞渡", "穿汉服的女孩在樱花树下", "dragon boats race on the river")


def _loopback_only():
    """Wraps socket.connect so that anything but a loopback or Unix address fails."""
    original = socket.socket.connect

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
                raise OSError(f"test refuses a connection to {address}")
        return original(self, address)

    return connect


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(mesh_factory, tmp_path_factory, xlm_roberta_dir):
    root = tmp_path_factory.mktemp("library")
    specs = make_library(root / "clips", count=2, seed=21)
    env = {
        "encoder": {
            "CLIPMESH_ENCODER_MODEL": "clipmesh-tiny-xlm-roberta",
            "CLIPMESH_ENCODER_TOKENIZER": str(xlm_roberta_dir),
        },
        "orchestrator": {"CLIPMESH_ORCHESTRATOR_ALLOWED_ROOTS": str(root)},
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", _loopback_only())
        async with mesh_factory.in_process("encoder", "index", "orchestrator", env=env) as running:
            ingest = running.stub("orchestrator", ingest_pb2_grpc.IngestServiceStub, CALLS)
            request = ingest_pb2.IngestVideosRequest(
                items=[ingest_pb2.IngestItem(uri=str(spec.path)) for spec in specs]
            )
            events = [event async for event in ingest.IngestVideos(request)]
            assert events[-1].summary.ingested == len(specs)
            running.search = running.stub("orchestrator", search_pb2_grpc.SearchServiceStub, CALLS)
            running.encoder = running.stub("encoder", encoder_pb2_grpc.EncoderServiceStub, CALLS)
            yield running


async def test_the_model_info_names_the_tokenizer_and_the_languages(mesh, xlm_roberta_dir) -> None:
    info = await mesh.encoder.GetModelInfo(encoder_pb2.GetModelInfoRequest())
    assert info.model_name == "clipmesh-tiny-xlm-roberta"
    assert list(info.text_languages) == ["multilingual"]
    assert info.tokenizer == str(xlm_roberta_dir)
    assert info.context_length == 77
    assert "/tokenizer-" in info.model_id


async def test_chinese_and_english_texts_find_the_ingested_videos(mesh) -> None:
    for text in QUERIES:
        response = await mesh.search.SearchVideos(
            search_pb2.SearchVideosRequest(parts=[search_pb2.QueryPart(text=text)], skip_cache=True)
        )
        assert len(response.hits) == 2, text
        assert all(hit.moments for hit in response.hits)
        assert "/tokenizer-" in response.model_id
        # Random weights are announced; no language warning on a multilingual tower.
        assert any("random weights" in warning for warning in response.warnings)
        assert not any("script" in warning for warning in response.warnings), response.warnings


async def test_the_same_chinese_texts_embed_differently_from_english(mesh) -> None:
    embedded = await mesh.encoder.EmbedTexts(encoder_pb2.EmbedTextsRequest(texts=list(QUERIES)))
    vectors = [list(e.vector) for e in embedded.embeddings]
    assert len({tuple(v) for v in vectors}) == 3
    assert list(embedded.warnings) == []


async def test_an_english_only_encoder_warns_about_the_chinese_query(mesh_factory) -> None:
    async with mesh_factory.in_process("encoder") as running:
        encoder = running.stub("encoder", encoder_pb2_grpc.EncoderServiceStub, CALLS)
        info = await encoder.GetModelInfo(encoder_pb2.GetModelInfoRequest())
        assert (list(info.text_languages), info.tokenizer) == (["en"], "open_clip")
        embedded = await encoder.EmbedTexts(encoder_pb2.EmbedTextsRequest(texts=list(QUERIES)))
    assert len(embedded.embeddings) == 3  # embedded all the same, and said so
    assert len(embedded.warnings) == 2
    assert embedded.warnings[0].startswith("texts[0] is written in Han script")
    assert embedded.warnings[1].startswith("texts[1] is written in Han script")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "set CLIPMESH_ENCODER_TOKENIZER to a directory"),
        ({"CLIPMESH_ENCODER_TOKENIZER": "/nonexistent/xlm-roberta-base"}, "does not exist"),
    ],
)
async def test_a_missing_tokenizer_stops_start_up_naming_the_setting(settings, message) -> None:
    env = {
        **os.environ,
        "CLIPMESH_ENCODER_MODEL": "clipmesh-tiny-xlm-roberta",
        "CLIPMESH_ENCODER_WEIGHTS": "random:0",
        "CLIPMESH_ENCODER_PORT": "0",
        "CLIPMESH_ENCODER_METRICS_PORT": "0",
        **settings,
    }
    code, _, stderr = await run_cli("serve", "encoder", env=env)
    assert code == 1
    assert message in stderr
    assert "Traceback" not in stderr
