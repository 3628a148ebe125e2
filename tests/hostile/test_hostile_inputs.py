"""The hostile-input catalogue: every public RPC of the mesh fed what an attacker or a broken
client would send — decompression bombs, damaged images and videos, playlists and FFmpeg
protocol tricks, paths that escape the allowed roots, invalid UTF-8, 10 MB prompts, NaN and
infinite vectors, absurd numbers, oversize filters and messages.

Each case must be answered with the right status, a stable reason and a message that says what
was wrong (never UNKNOWN or INTERNAL); a bad file in an ingest batch fails alone, as a failed
progress event with its reason. After the whole catalogue every service still reports SERVING,
a normal search still works, and the process has not kept the memory the bombs asked for.

The mesh runs in this process: encoder (random weights), index, generator (animatic backend)
and orchestrator, with ingest allowed to read one temporary directory.
"""

from __future__ import annotations

import ctypes
import gc
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clipmesh.demo.library import make_library, still_from
from clipmesh.encoder.config import EncoderConfig
from clipmesh.encoder.server import create_app as create_encoder
from clipmesh.generator.config import GeneratorConfig
from clipmesh.generator.server import create_app as create_generator
from clipmesh.index.config import IndexConfig
from clipmesh.index.server import create_app as create_index
from clipmesh.orchestrator.config import OrchestratorConfig
from clipmesh.orchestrator.server import create_app as create_orchestrator
from clipmesh.runtime.channels import ChannelOptions, create_channel
from clipmesh.runtime.config import load_config
from clipmesh_api.common.v1 import common_pb2
from clipmesh_api.encoder.v1 import encoder_pb2, encoder_pb2_grpc
from clipmesh_api.generator.v1 import generator_pb2, generator_pb2_grpc
from clipmesh_api.index.v1 import index_pb2, index_pb2_grpc
from clipmesh_api.orchestrator.v1 import (
    ingest_pb2,
    ingest_pb2_grpc,
    previs_pb2,
    previs_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
)
from clipmesh_client import errors as client_errors
from tests.hostile.media import (
    broken_jpeg,
    broken_png,
    broken_webp,
    png_declaring,
    write_hostile_library,
)
from tests.media import encode, gradient_image
from tests.support import serve_in_process

pytestmark = pytest.mark.asyncio(loop_scope="module")

Code = grpc.StatusCode
Stage = ingest_pb2.IngestStage
MAX_RSS_GROWTH_MB = 300
TEN_MB = 10 * 1024 * 1024


# The mesh


@dataclass
class Mesh:
    """The running services, a stub for each public API, and the hostile files."""

    channels: dict[str, grpc.aio.Channel]
    files: dict[str, Path]
    root: Path
    dimension: int
    video_id: str
    rss_before_mb: float

    def stub(self, service: str, stub_class):
        return stub_class(self.channels[service])


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
async def mesh(tmp_path_factory):
    root = tmp_path_factory.mktemp("library")
    files = write_hostile_library(root / "hostile", tmp_path_factory.mktemp("outside"))
    (clip,) = make_library(root / "clips", count=1, seed=21)
    encoder_config = load_config(
        EncoderConfig,
        environ={
            "CLIPMESH_ENCODER_MODEL": "clipmesh-tiny",
            "CLIPMESH_ENCODER_WEIGHTS": "random:0",
            "CLIPMESH_ENCODER_PRECISION": "fp32",
        },
    )
    index_config = load_config(
        IndexConfig, environ={"CLIPMESH_INDEX_DATA_DIR": str(tmp_path_factory.mktemp("index"))}
    )
    generator_config = load_config(
        GeneratorConfig,
        environ={"CLIPMESH_GENERATOR_DATA_DIR": str(tmp_path_factory.mktemp("generator"))},
    )
    async with (
        serve_in_process(encoder_config, create_encoder(encoder_config)) as encoder,
        serve_in_process(index_config, create_index(index_config)) as index,
        serve_in_process(generator_config, create_generator(generator_config)) as generator,
    ):
        config = load_config(
            OrchestratorConfig,
            environ={
                "CLIPMESH_ORCHESTRATOR_ENCODER_TARGET": encoder.target,
                "CLIPMESH_ORCHESTRATOR_INDEX_TARGET": index.target,
                "CLIPMESH_ORCHESTRATOR_GENERATOR_TARGET": generator.target,
                "CLIPMESH_ORCHESTRATOR_ALLOWED_ROOTS": str(root),
                "CLIPMESH_ORCHESTRATOR_DATA_DIR": str(tmp_path_factory.mktemp("orchestrator")),
            },
        )
        async with serve_in_process(config, create_orchestrator(config)) as orchestrator:
            targets = {
                "orchestrator": orchestrator.target,
                "encoder": encoder.target,
                "index": index.target,
                "generator": generator.target,
            }
            # Larger than any server accepts, so oversize messages reach the server.
            options = ChannelOptions(timeout_s=60, max_attempts=1, max_message_mb=128)
            channels = {name: create_channel(target, options) for name, target in targets.items()}
            running = Mesh(channels, files, root, 0, "", 0.0)
            await _warm_up(running, clip.path)
            yield running
            for channel in channels.values():
                await channel.close()


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


# What a case expects, and how it asks


@dataclass(frozen=True)
class Answer:
    """How the mesh answered: a status with its `ErrorInfo`, or, for ingest, how the one item
    of the batch ended (`code` None: the stream succeeded and the item failed alone)."""

    code: grpc.StatusCode | None
    reason: str
    message: str
    field: str = ""


Ask = Callable[[Mesh], Awaitable[Answer]]


def refused(code: grpc.StatusCode, reason: str, says: str, field: str = "") -> Answer:
    """The RPC fails with `code`, `reason`, a message containing `says`, naming `field`."""
    return Answer(code, reason, says, field)


def fails_alone(reason: str, says: str) -> Answer:
    """The ingest stream succeeds; its one item fails with `reason` and a message with `says`."""
    return Answer(None, reason, says)


async def _answer(call) -> Answer:
    try:
        if hasattr(call, "__aiter__"):
            async for _ in call:
                pass
        else:
            await call
    except grpc.aio.AioRpcError as error:
        details = client_errors.from_rpc_error(error)
        return Answer(error.code(), details.reason, details.message, details.metadata.get("field"))
    return Answer(Code.OK, "", "")


def call(service: str, stub_class, method: str, request) -> Ask:
    """Sends `request` (or what `request()` makes, for large ones) to `service`."""

    async def ask(mesh: Mesh) -> Answer:
        message = request() if callable(request) else request
        return await _answer(getattr(mesh.stub(service, stub_class), method)(message))

    return ask


def search(*parts: search_pb2.QueryPart, **fields) -> Ask:
    return call(
        "orchestrator",
        search_pb2_grpc.SearchServiceStub,
        "SearchVideos",
        lambda: search_pb2.SearchVideosRequest(parts=parts, skip_cache=True, **fields),
    )


def image(data: bytes) -> search_pb2.QueryPart:
    return search_pb2.QueryPart(image=data)


TEXT = search_pb2.QueryPart(text="a harbour at dawn")


def library(method: str, request) -> Ask:
    return call("orchestrator", ingest_pb2_grpc.IngestServiceStub, method, request)


def ingest(uri: str | Callable[[Mesh], str]) -> Ask:
    """Ingests one item; answers how that item ended."""

    async def ask(mesh: Mesh) -> Answer:
        item = ingest_pb2.IngestItem(uri=uri(mesh) if callable(uri) else uri)
        stub = mesh.stub("orchestrator", ingest_pb2_grpc.IngestServiceStub)
        request = ingest_pb2.IngestVideosRequest(items=[item])
        events = [event async for event in stub.IngestVideos(request)]
        (last,) = [e.progress for e in events if e.progress.stage >= Stage.INGEST_STAGE_DONE]
        assert events[-1].summary.failed == (last.stage == Stage.INGEST_STAGE_FAILED)
        if last.stage != Stage.INGEST_STAGE_FAILED:
            return Answer(Code.OK, Stage.Name(last.stage), "")
        return Answer(None, last.error.reason, last.error.message)

    return ask


def ingest_file(name: str) -> Ask:
    return ingest(lambda mesh: str(mesh.files[name]))


def previs(method: str, request) -> Ask:
    return call("orchestrator", previs_pb2_grpc.PrevisServiceStub, method, request)


def project(**fields) -> Ask:
    fields.setdefault("script", "A lighthouse keeper climbs the stairs at dusk.")
    return previs("CreateProject", lambda: previs_pb2.CreateProjectRequest(**fields))


def reference(data: bytes) -> Ask:
    return project(references=[previs_pb2.ShotReference(shot_order=0, image=data)])


def encoder(method: str, request) -> Ask:
    return call("encoder", encoder_pb2_grpc.EncoderServiceStub, method, request)


def index(method: str, request) -> Ask:
    return call("index", index_pb2_grpc.IndexServiceStub, method, request)


def index_search(vector: Callable[[int], list[float]], **fields) -> Ask:
    """An index Search whose one query vector is `vector(dimension of the collection)`."""

    async def ask(mesh: Mesh) -> Answer:
        query = index_pb2.WeightedVector(vector=vector(mesh.dimension), weight=1.0)
        request = index_pb2.SearchRequest(queries=[query], **{"top_k": 5, **fields})
        return await _answer(mesh.stub("index", index_pb2_grpc.IndexServiceStub).Search(request))

    return ask


def upsert(video: dict | None = None, segment: dict | None = None) -> Ask:
    """An index upsert of one video of one segment, with these fields changed."""

    async def ask(mesh: Mesh) -> Answer:
        fields = {"start_s": 0.0, "end_s": 1.0, "keyframe_s": 0.5, "vector": [1.0] * mesh.dimension}
        request = index_pb2.UpsertSegmentsRequest(
            videos=[
                index_pb2.VideoSegments(
                    video=common_pb2.Video(**{"video_id": "hostile", **(video or {})}),
                    segments=[index_pb2.Segment(**{**fields, **(segment or {})})],
                )
            ]
        )
        stub = mesh.stub("index", index_pb2_grpc.IndexServiceStub)
        return await _answer(stub.UpsertSegments(request))

    return ask


def generate(**fields) -> Ask:
    spec = {"prompt": "a slow push in on a lighthouse", "width": 256, "height": 144, **fields}
    return generator(
        "Generate", lambda: generator_pb2.GenerateRequest(spec=generator_pb2.GenerationSpec(**spec))
    )


def generator(method: str, request) -> Ask:
    return call("generator", generator_pb2_grpc.GeneratorServiceStub, method, request)


def raw(service: str, method: str, payload: bytes, *, streaming: bool = False) -> Ask:
    """Sends bytes the generated classes would never serialize, straight onto the wire."""

    async def ask(mesh: Mesh) -> Answer:
        channel = mesh.channels[service]
        if streaming:
            return await _answer(channel.unary_stream(method)(payload))
        return await _answer(channel.unary_unary(method)(payload))

    return ask


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def with_raw_string(message_class, path: tuple[str, ...], value: bytes) -> bytes:
    """A serialized `message_class` whose string field at `path` (through nested messages)
    holds `value`, e.g. invalid UTF-8, which protobuf refuses to serialize itself."""
    descriptor, numbers = message_class.DESCRIPTOR, []
    for name in path:
        field = descriptor.fields_by_name[name]
        numbers.append(field.number)
        descriptor = field.message_type
    payload = value
    for number in reversed(numbers):
        payload = _varint(number << 3 | 2) + _varint(len(payload)) + payload
    return payload


def nested_groups(depth: int) -> bytes:
    """An unknown field nested `depth` groups deep: protobuf parsers stop at 100."""
    return _varint(15 << 3 | 3) * depth + _varint(15 << 3 | 4) * depth


INVALID_UTF8 = b"caf\xc3 \xff\xfe au lait"
SEARCH = "/clipmesh.orchestrator.v1.SearchService/SearchVideos"
INGEST = "/clipmesh.orchestrator.v1.IngestService/IngestVideos"
CREATE = "/clipmesh.orchestrator.v1.PrevisService/CreateProject"
EMBED_TEXTS = "/clipmesh.encoder.v1.EncoderService/EmbedTexts"
GENERATE = "/clipmesh.generator.v1.GeneratorService/Generate"
INDEX_SEARCH = "/clipmesh.index.v1.IndexService/Search"
NAN, INF = math.nan, math.inf
INVALID, NOT_FOUND, EXHAUSTED = Code.INVALID_ARGUMENT, Code.NOT_FOUND, Code.RESOURCE_EXHAUSTED


def clip(video_id: str, start_s: float, end_s: float) -> search_pb2.QueryPart:
    span = common_pb2.TimeRange(start_s=start_s, end_s=end_s)
    return search_pb2.QueryPart(clip=search_pb2.ClipReference(video_id=video_id, span=span))


def _filter(*clauses: common_pb2.FilterClause) -> common_pb2.MetadataFilter:
    return common_pb2.MetadataFilter(clauses=clauses)


def _huge_image() -> bytes:
    return b"\xff\xd8\xff\xe0" + bytes(17 * 1024 * 1024)  # a JPEG's start, 17 MiB long


# The catalogue

CASES = [
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
        search(image(_huge_image())),
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
            TEXT, filter=_filter(*[common_pb2.FilterClause(field="title", equals="a")] * 10_000)
        ),
        refused(INVALID, "FILTER_TOO_LARGE", "the limit is 64", "filter.clauses"),
        id="search/10000-filter-clauses",
    ),
    pytest.param(
        search(
            TEXT,
            filter=_filter(
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
            filter=_filter(
                common_pb2.FilterClause(field="duration_s", range=common_pb2.NumericRange(min=NAN))
            ),
        ),
        refused(INVALID, "BAD_FILTER", "finite", "filter.clauses[0]"),
        id="search/nan-filter-range",
    ),
    pytest.param(
        search(TEXT, filter=_filter(common_pb2.FilterClause(field="__class__", equals="x"))),
        refused(INVALID, "BAD_FILTER", "unknown field", "filter.clauses[0]"),
        id="search/unknown-filter-field",
    ),
    pytest.param(
        search(TEXT, collection="../../etc/passwd"),
        refused(INVALID, "BAD_COLLECTION", "must start with a letter", "collection"),
        id="search/path-as-collection",
    ),
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
    # PrevisService: scripts, numbers, reference images (decoded by the compliance check)
    pytest.param(
        reference(png_declaring(50_000, 50_000)),
        refused(INVALID, "IMAGE_TOO_MANY_PIXELS", "too many pixels", "references[0].image"),
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
        reference(_huge_image()),
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
            "orchestrator",
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
        previs("ExportCut", previs_pb2.ExportCutRequest(project_id="p" * 1_000_000)),
        refused(NOT_FOUND, "PROJECT_NOT_FOUND", "no project"),
        id="previs/1-mb-project-id",
    ),
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
        generator("DownloadJobOutput", generator_pb2.DownloadJobOutputRequest(job_id="0" * 32)),
        refused(NOT_FOUND, "JOB_NOT_FOUND", "no job"),
        id="generator/download-unknown-job",
    ),
    pytest.param(
        generator("ListJobs", generator_pb2.ListJobsRequest(states=[2**31 - 1])),
        refused(INVALID, "BAD_STATE", "is not a JobState", "states[0]"),
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


@pytest.mark.parametrize(("ask", "expected"), CASES)
async def test_hostile_input_is_refused_clearly(mesh: Mesh, ask: Ask, expected: Answer) -> None:
    answer = await ask(mesh)
    assert answer.code not in {Code.UNKNOWN, Code.INTERNAL}, answer
    assert (answer.code, answer.reason) == (expected.code, expected.reason), answer
    assert expected.message in answer.message, answer
    assert len(answer.message) < 1000, "messages must not echo huge inputs"
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
