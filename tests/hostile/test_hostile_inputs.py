"""The hostile-input catalogue: every public RPC of the mesh fed what an attacker or a broken
client would send — decompression bombs, damaged images and videos, playlists and FFmpeg
protocol tricks, paths that escape the allowed roots, invalid UTF-8, 10 MB prompts, NaN and
infinite vectors, absurd numbers, oversize filters and messages.

Each case must be answered with the right status, a stable reason and a message that says what
was wrong (never UNKNOWN or INTERNAL); a bad file in an ingest batch fails alone, as a failed
progress event with its reason. After the whole catalogue every service still reports SERVING,
a normal search still works, and the process has not kept the memory the bombs asked for.

The mesh runs in this process: encoder (random weights), index, generator (animatic backend),
orchestrator and previs, with ingest allowed to read one temporary directory.
"""

from __future__ import annotations

import ctypes
import gc
import re
from pathlib import Path

import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clipmesh.demo.library import make_library, still_from
from clipmesh_api.encoder.v1 import encoder_pb2, encoder_pb2_grpc
from clipmesh_api.orchestrator.v1 import ingest_pb2, ingest_pb2_grpc, search_pb2, search_pb2_grpc
from clipmesh_client.wire import ChannelPolicy
from tests.hostile.cases_ingest import INGEST_CASES
from tests.hostile.cases_internal import INTERNAL_CASES
from tests.hostile.cases_previs import PREVIS_CASES
from tests.hostile.cases_search import SEARCH_CASES
from tests.hostile.media import write_hostile_library
from tests.hostile.support import Answer, Ask, Code, Mesh, ingest_file

pytestmark = pytest.mark.asyncio(loop_scope="module")

MAX_RSS_GROWTH_MB = 300


# The mesh


def _rss_mb() -> float:
    """This process's resident memory, from /proc (Linux), once the allocator has handed back
    what it only keeps cached: glibc holds on to freed buffers of large messages otherwise."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(mesh_factory, tmp_path_factory):
    root = tmp_path_factory.mktemp("library")
    files = write_hostile_library(root / "hostile", tmp_path_factory.mktemp("outside"))
    (clip,) = make_library(root / "clips", count=1, seed=21)
    env = {"orchestrator": {"CLIPMESH_ORCHESTRATOR_ALLOWED_ROOTS": str(root)}}
    services = ("encoder", "index", "generator", "orchestrator", "previs")
    async with mesh_factory.in_process(*services, env=env) as running:
        # Larger than any server accepts, so oversize messages reach the server.
        policy = ChannelPolicy(timeout_s=60, max_attempts=1, max_message_mb=128)
        channels = {name: running.channel(name, policy) for name in services}
        hostile = Mesh(channels, files, root, 0, "", 0.0)
        await _warm_up(hostile, clip.path)
        yield hostile


async def _warm_up(mesh: Mesh, clip: Path) -> None:
    """Ingests one good video and searches it, so the catalogue starts from a warm mesh (model
    loaded, collection made) and the memory measured after it is the catalogue's own."""
    ingest = mesh.stub("orchestrator", ingest_pb2_grpc.IngestServiceStub)
    request = ingest_pb2.IngestVideosRequest(items=[ingest_pb2.IngestItem(uri=str(clip))])
    events = [event async for event in ingest.IngestVideos(request)]
    assert events[-1].summary.ingested == 1
    mesh.video_id = next(e.progress.video_id for e in events if e.progress.video_id)
    response = await _search_for(mesh, still_from(clip, 1.0))
    assert response.hits[0].video.video_id == mesh.video_id
    mesh.dimension = len((await _embed_text(mesh, "warm-up")).vector)
    mesh.rss_before_mb = _rss_mb()


async def _search_for(mesh: Mesh, image: bytes) -> search_pb2.SearchVideosResponse:
    search = mesh.stub("orchestrator", search_pb2_grpc.SearchServiceStub)
    return await search.SearchVideos(
        search_pb2.SearchVideosRequest(
            parts=[search_pb2.QueryPart(image=image)], top_k=3, skip_cache=True
        )
    )


async def _embed_text(mesh: Mesh, text: str) -> encoder_pb2.Embedding:
    encoder = mesh.stub("encoder", encoder_pb2_grpc.EncoderServiceStub)
    return (await encoder.EmbedTexts(encoder_pb2.EmbedTextsRequest(texts=[text]))).embeddings[0]


# The catalogue

CASES = [*SEARCH_CASES, *INGEST_CASES, *PREVIS_CASES, *INTERNAL_CASES]
# The reasons clients are told to expect (generated from the code by tools/error_reasons.py).
PUBLISHED_REASONS = (Path(__file__).resolve().parents[2] / "docs" / "errors.md").read_text()
# What no message may carry raw (escaped instead): controls, line separators, bidi controls.
UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


@pytest.mark.parametrize(("ask", "expected"), CASES)
async def test_hostile_input_is_refused_clearly(mesh: Mesh, ask: Ask, expected: Answer) -> None:
    answer = await ask(mesh)
    assert answer.code not in {Code.UNKNOWN, Code.INTERNAL}, answer
    assert (answer.code, answer.reason) == (expected.code, expected.reason), answer
    assert expected.message in answer.message, answer
    assert len(answer.message) < 1000, "messages must not echo huge inputs"
    assert not UNPRINTABLE.search(answer.message), f"raw control characters: {answer.message!r}"
    # Every reason is published; gRPC's own refusal of an oversize message carries none.
    if answer.reason:
        assert f"| `{answer.reason}` |" in PUBLISHED_REASONS, f"{answer.reason} not published"
    if expected.field:
        assert answer.field == expected.field, answer


async def test_the_catalogue_covers_every_public_service() -> None:
    prefixes = {param.id.split("/")[0] for param in CASES}
    assert len(CASES) >= 40
    assert prefixes == {"search", "ingest", "library", "previs", "encoder", "index", "generator"}


async def test_after_the_catalogue_every_service_serves_within_bounded_memory(mesh: Mesh) -> None:
    for name, channel in mesh.channels.items():
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING, name
    response = await _search_for(mesh, still_from(mesh.files["good.mp4"], 0.5))
    assert response.hits and not response.degraded
    good = await ingest_file("good.mp4")(mesh)
    assert (good.code, good.reason) == (Code.OK, "INGEST_STAGE_DONE")
    grown_mb = _rss_mb() - mesh.rss_before_mb
    assert grown_mb < MAX_RSS_GROWTH_MB, f"resident memory grew {grown_mb:.0f} MB"
