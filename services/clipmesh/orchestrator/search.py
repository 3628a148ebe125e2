"""SearchVideos: image, text and clip parts → one weighted query → videos and moments, inside
a latency budget.

The budget (the request's, else the service default) and the caller's own deadline give one
deadline; every downstream call gets the time left as its deadline, so a slow or absent
encoder fails fast and clearly instead of hanging. Images and texts are embedded concurrently
(as interactive work, ahead of ingest), a clip part becomes the mean of the indexed segment
vectors overlapping its span, and the index answers with videos and moments. Query images are
never written anywhere or logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Iterator

import grpc
import numpy as np
from opentelemetry import trace

from clipmesh.orchestrator import metrics
from clipmesh.orchestrator.cache import QueryCache
from clipmesh.orchestrator.config import OrchestratorConfig
from clipmesh.orchestrator.dependencies import Dependencies, remaining_s, translate
from clipmesh.runtime.errors import DeadlineExceeded, InvalidArgument
from clipmesh_api.common.v1 import common_pb2
from clipmesh_api.encoder.v1 import encoder_pb2
from clipmesh_api.index.v1 import index_pb2
from clipmesh_api.orchestrator.v1 import search_pb2

MAX_PARTS = 16
MAX_MOMENTS = 20
MAX_BUDGET_MS = 60_000

tracer = trace.get_tracer(__name__)


class SearchEngine:
    """Answers SearchVideos over the encoder and the index."""

    def __init__(self, deps: Dependencies, config: OrchestratorConfig, cache: QueryCache) -> None:
        self._deps = deps
        self._config = config
        self._cache = cache
        self._random_models: dict[str, bool] = {}

    async def search(
        self, request: search_pb2.SearchVideosRequest, *, call_deadline: float | None
    ) -> search_pb2.SearchVideosResponse:
        started = time.monotonic()
        budget_s = (request.budget_ms or self._config.search_budget_ms) / 1000
        deadline = min(started + budget_s, call_deadline or math.inf)
        collection = request.collection or self._config.default_collection
        top_k = request.top_k or 10
        moments = request.max_moments_per_video or 3
        kind = _validate(request, top_k, moments, self._config)
        # On the RPC's server span: what was asked, never the query's texts or images.
        span = trace.get_current_span()
        span.set_attributes(
            {
                "clipmesh.collection": collection,
                "clipmesh.search.query_kind": kind,
                "clipmesh.search.parts": len(request.parts),
                "clipmesh.search.top_k": top_k,
            }
        )
        key = self._cache.key(request, collection, top_k, moments) if self._cache.enabled else b""
        if key and not request.skip_cache:
            cached = self._cache.get(key)
            metrics.CACHE_LOOKUPS.labels("hit" if cached else "miss").inc()
            span.set_attribute("clipmesh.search.cache_hit", cached is not None)
            if cached is not None:
                cached.cache_hit = True
                del cached.timings[:]
                cached.timings.add(stage="cache", duration_ms=_ms_since(started))
                return cached
        try:
            response = await self._search(request, collection, top_k, moments, deadline)
        except Exception as error:
            # Out of time, whether noticed here (too little left to call a service) or by a
            # service whose deadline passed; other failures are not the budget's.
            if isinstance(error, DeadlineExceeded) or time.monotonic() >= deadline:
                metrics.BUDGET_EXCEEDED.inc()
            raise
        elapsed = time.monotonic() - started
        response.timings.add(stage="total", duration_ms=round(elapsed * 1000, 3))
        metrics.SEARCH_SECONDS.labels(kind).observe(elapsed)
        if elapsed > budget_s:
            metrics.BUDGET_EXCEEDED.inc()
        if key and not response.degraded:
            self._cache.put(key, response)
        return response

    async def _search(
        self, request, collection, top_k, moments, deadline
    ) -> search_pb2.SearchVideosResponse:
        timings: list[common_pb2.StageTiming] = []
        vectors, model_id = await self._embed_parts(request, collection, deadline, timings)
        queries = [
            index_pb2.WeightedVector(vector=vector, weight=part.weight or 1.0)
            for vector, part in zip(vectors, request.parts, strict=True)
        ]
        with _stage(timings, "index", {"clipmesh.search.queries": len(queries)}) as span:
            try:
                found = await self._deps.index.Search(
                    index_pb2.SearchRequest(
                        collection=collection,
                        queries=queries,
                        top_k=top_k,
                        max_moments_per_video=moments,
                        filter=request.filter,
                    ),
                    timeout=remaining_s(deadline, "index"),
                )
            except grpc.RpcError as error:
                raise translate(error, "index", {"queries": "parts"}) from error
            span.set_attribute("clipmesh.search.hits", len(found.hits))
            span.set_attribute("clipmesh.search.degraded", found.degraded)
        timings += [
            common_pb2.StageTiming(stage=f"index.{t.stage}", duration_ms=t.duration_ms)
            for t in found.timings
        ]
        warnings = []
        if model_id and await self._is_random(model_id, deadline):
            warnings.append(
                "the encoder runs on random weights: scores carry no meaning "
                "(mount real weights: CLIPMESH_ENCODER_WEIGHTS=checkpoint:/path)"
            )
        if found.degraded:
            warnings.append(f"results degraded to meet the budget: {found.degraded_reason}")
        return search_pb2.SearchVideosResponse(
            hits=found.hits,
            degraded=found.degraded,
            timings=timings,
            model_id=model_id,
            warnings=warnings,
        )

    async def _embed_parts(
        self, request, collection, deadline, timings
    ) -> tuple[list[list[float]], str]:
        """One vector per part, in order; and the encoder's model id ("" if unused)."""
        images = [
            (i, p.image) for i, p in enumerate(request.parts) if p.WhichOneof("kind") == "image"
        ]
        texts = [(i, p.text) for i, p in enumerate(request.parts) if p.WhichOneof("kind") == "text"]
        clips = [(i, p.clip) for i, p in enumerate(request.parts) if p.WhichOneof("kind") == "clip"]
        counts = {"images": len(images), "texts": len(texts), "clips": len(clips)}
        with _stage(timings, "encode", {f"clipmesh.search.{k}": n for k, n in counts.items()}):
            # gather wraps each call in a task, which copies the context: the stage's span
            # stays the parent of the encoder and index calls made inside it.
            results = await asyncio.gather(
                self._embed("image", images, deadline),
                self._embed("text", texts, deadline),
                *(self._clip_vector(i, clip, collection, deadline) for i, clip in clips),
            )
        vectors: dict[int, list[float]] = {}
        model_ids = set()
        for batch, (model_id, rows) in zip((images, texts), results[:2], strict=True):
            vectors.update((index, row) for (index, _), row in zip(batch, rows, strict=True))
            model_ids.add(model_id)
        for (index, _), row in zip(clips, results[2:], strict=True):
            vectors[index] = row
        return [vectors[i] for i in range(len(request.parts))], next(iter(model_ids - {""}), "")

    async def _embed(self, kind: str, items, deadline) -> tuple[str, list[list[float]]]:
        """Embeds the image or text parts `items` ((part index, value) pairs) in one call."""
        if not items:
            return "", []
        plural = f"{kind}s"
        fields = {f"{plural}[{j}]": f"parts[{i}].{kind}" for j, (i, _) in enumerate(items)}
        values = [value for _, value in items]
        priority = encoder_pb2.PRIORITY_INTERACTIVE
        try:
            if kind == "image":
                call = self._deps.encoder.EmbedImages(
                    encoder_pb2.EmbedImagesRequest(images=values, priority=priority),
                    timeout=remaining_s(deadline, "encoder"),
                )
            else:
                call = self._deps.encoder.EmbedTexts(
                    encoder_pb2.EmbedTextsRequest(texts=values, priority=priority),
                    timeout=remaining_s(deadline, "encoder"),
                )
            response = await call
        except grpc.RpcError as error:
            raise translate(error, "encoder", fields) from error
        return response.model_id, [list(e.vector) for e in response.embeddings]

    async def _clip_vector(self, index: int, clip, collection: str, deadline: float) -> list[float]:
        """The mean of the indexed segment vectors overlapping the clip's span."""
        where = f"parts[{index}].clip"
        span = clip.span if clip.HasField("span") else None
        if span is not None and not (
            math.isfinite(span.start_s)
            and math.isfinite(span.end_s)
            and 0 <= span.start_s < span.end_s
        ):
            raise InvalidArgument(
                f"{where}.span needs 0 ≤ start_s < end_s", field=f"{where}.span", reason="BAD_TIME"
            )
        try:
            found = await self._deps.index.GetSegments(
                index_pb2.GetSegmentsRequest(
                    collection=collection, video_id=clip.video_id, span=span
                ),
                timeout=remaining_s(deadline, "index"),
            )
        except grpc.RpcError as error:
            raise translate(error, "index", {"video_id": f"{where}.video_id"}) from error
        if not found.segments:
            raise InvalidArgument(
                f"{where}: no segment of {clip.video_id!r} overlaps that span",
                field=where,
                reason="EMPTY_CLIP",
            )
        mean = np.mean([list(s.vector) for s in found.segments], axis=0)
        return (mean / np.linalg.norm(mean)).tolist()

    async def _is_random(self, model_id: str, deadline: float) -> bool:
        if model_id not in self._random_models:
            try:
                info = await self._deps.encoder.GetModelInfo(
                    encoder_pb2.GetModelInfoRequest(), timeout=remaining_s(deadline, "encoder")
                )
            except grpc.RpcError:
                return False  # unknown this time; asked again next search
            self._random_models[model_id] = info.random_weights
        return self._random_models[model_id]


def _validate(
    request: search_pb2.SearchVideosRequest, top_k: int, moments: int, config: OrchestratorConfig
) -> str:
    """Checks the query; returns its kind for metrics (image, text, clip or mixed)."""
    max_image_bytes = int(config.max_query_image_mb * 1024 * 1024)
    if not request.parts:
        raise InvalidArgument(
            "parts is empty: give an image, a text or a clip", field="parts", reason="EMPTY_QUERY"
        )
    if len(request.parts) > MAX_PARTS:
        raise InvalidArgument(
            f"parts has {len(request.parts)} entries; the limit is {MAX_PARTS}",
            field="parts",
            reason="TOO_MANY_ITEMS",
        )
    kinds = set()
    for index, part in enumerate(request.parts):
        kind = part.WhichOneof("kind")
        if kind is None:
            raise InvalidArgument(
                f"parts[{index}] sets none of image, text or clip",
                field=f"parts[{index}]",
                reason="EMPTY_PART",
            )
        # The encoder refuses these too, but only after the bytes crossed to it: on a busy
        # machine a 17 MiB image could spend the whole budget on the way there.
        if kind == "image" and not part.image:
            raise InvalidArgument(
                f"parts[{index}].image is empty",
                field=f"parts[{index}].image",
                reason="EMPTY_IMAGE",
            )
        if kind == "image" and len(part.image) > max_image_bytes:
            raise InvalidArgument(
                f"parts[{index}].image is {len(part.image)} bytes; the limit is {max_image_bytes}",
                field=f"parts[{index}].image",
                reason="IMAGE_TOO_LARGE",
            )
        if not math.isfinite(part.weight):
            raise InvalidArgument(
                f"parts[{index}].weight must be finite",
                field=f"parts[{index}].weight",
                reason="BAD_WEIGHT",
            )
        kinds.add(kind)
    if all((p.weight or 1.0) < 0 for p in request.parts):
        raise InvalidArgument(
            "at least one part needs a positive weight", field="parts", reason="BAD_WEIGHT"
        )
    if not 0 <= request.budget_ms <= MAX_BUDGET_MS:
        raise InvalidArgument(
            f"budget_ms must be 0 (the service default) to {MAX_BUDGET_MS}",
            field="budget_ms",
            reason="BAD_BUDGET",
        )
    if not 1 <= top_k <= config.max_top_k:
        raise InvalidArgument(
            f"top_k must be 0 (default 10) to {config.max_top_k}", field="top_k", reason="BAD_TOP_K"
        )
    if not 1 <= moments <= MAX_MOMENTS:
        raise InvalidArgument(
            f"max_moments_per_video must be 0 (default 3) to {MAX_MOMENTS}",
            field="max_moments_per_video",
            reason="BAD_MOMENTS",
        )
    return kinds.pop() if len(kinds) == 1 else "mixed"


@contextlib.contextmanager
def _stage(
    timings: list[common_pb2.StageTiming], stage: str, attributes: dict[str, object]
) -> Iterator[trace.Span]:
    """Runs one stage of a search inside a span named `search.<stage>`; when it succeeds,
    records its time in `timings` and the stage histogram (the same stage names)."""
    mark = time.monotonic()
    with tracer.start_as_current_span(f"search.{stage}", attributes=attributes) as span:
        yield span
    elapsed = time.monotonic() - mark
    metrics.SEARCH_STAGE_SECONDS.labels(stage).observe(elapsed)
    timings.append(common_pb2.StageTiming(stage=stage, duration_ms=round(elapsed * 1000, 3)))


def _ms_since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 3)
