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
import dataclasses
import math
import time
from collections.abc import Iterator

import numpy as np
from opentelemetry import trace

from clipmesh.encoder.client import Embeddings, EncoderClient
from clipmesh.index.client import IndexClient
from clipmesh.orchestrator import metrics
from clipmesh.orchestrator.budget import IndexReserve
from clipmesh.orchestrator.cache import QueryCache
from clipmesh.orchestrator.records import (
    ClipRef,
    QueryPart,
    SearchRequest,
    SearchResponse,
    StageTiming,
)
from clipmesh.runtime.dependencies import remaining_s
from clipmesh.runtime.errors import DeadlineExceeded, InvalidArgument, ServiceError

tracer = trace.get_tracer(__name__)


class SearchEngine:
    """Answers searches over the encoder and the index."""

    def __init__(self, encoder: EncoderClient, index: IndexClient, cache: QueryCache) -> None:
        self._encoder = encoder
        self._index = index
        self._cache = cache
        self._random_models: dict[str, bool] = {}
        self.index_reserve = IndexReserve()

    async def search(
        self, request: SearchRequest, *, call_deadline: float | None
    ) -> SearchResponse:
        """The best videos and moments for `request`, within its budget and `call_deadline`."""
        started = time.monotonic()
        deadline = min(started + request.budget_s, call_deadline or math.inf)
        # On the RPC's server span: what was asked, never the query's texts or images.
        span = trace.get_current_span()
        span.set_attributes(
            {
                "clipmesh.collection": request.collection,
                "clipmesh.search.query_kind": request.kind,
                "clipmesh.search.parts": len(request.parts),
                "clipmesh.search.top_k": request.top_k,
            }
        )
        key = self._cache.key(request) if self._cache.enabled else b""
        if key and not request.skip_cache:
            cached = self._cache.get(key)
            metrics.CACHE_LOOKUPS.labels("hit" if cached else "miss").inc()
            span.set_attribute("clipmesh.search.cache_hit", cached is not None)
            if cached is not None:
                timing = StageTiming("cache", _ms_since(started))
                answer = dataclasses.replace(cached, cache_hit=True, timings=(timing,))
                return above_threshold(answer, request.min_score)
        try:
            response = await self._search(request, deadline)
        except Exception as error:
            # Out of time, whether noticed here (too little left to call a service) or by a
            # service whose deadline passed; other failures are not the budget's.
            if isinstance(error, DeadlineExceeded) or time.monotonic() >= deadline:
                metrics.BUDGET_EXCEEDED.inc()
            raise
        elapsed = time.monotonic() - started
        response = dataclasses.replace(
            response,
            timings=(*response.timings, StageTiming("total", round(elapsed * 1000, 3))),
        )
        metrics.SEARCH_SECONDS.labels(request.kind).observe(elapsed)
        if elapsed > request.budget_s:
            metrics.BUDGET_EXCEEDED.inc()
        if key and not response.degraded:
            self._cache.put(key, response)  # whole: another threshold may ask for the same
        return above_threshold(response, request.min_score)

    async def _search(self, request: SearchRequest, deadline: float) -> SearchResponse:
        timings: list[StageTiming] = []
        # The encoder is told to be done early enough to leave the index its usual time.
        embed_by = deadline - self.index_reserve.seconds(request.budget_s)
        vectors, model_id, part_warnings = await self._embed_parts(request, embed_by, timings)
        queries = [
            (vector, part.weight) for vector, part in zip(vectors, request.parts, strict=True)
        ]
        with _stage(timings, "index", {"clipmesh.search.queries": len(queries)}) as span:
            found = await self._index.search(
                request.collection,
                queries,
                top_k=request.top_k,
                max_moments=request.max_moments,
                video_filter=request.video_filter,
                timeout_s=remaining_s(deadline, "index"),
                names={"queries": "parts"},
            )
            span.set_attribute("clipmesh.search.hits", len(found.videos))
            span.set_attribute("clipmesh.search.degraded", found.degraded)
        self.index_reserve.record(timings[-1].duration_ms / 1000)
        timings += [StageTiming(f"index.{stage}", ms) for stage, ms in found.timings_ms.items()]
        warnings = []
        if model_id and await self._is_random(model_id, deadline):
            warnings.append(
                "the encoder runs on random weights: scores carry no meaning "
                "(mount real weights: CLIPMESH_ENCODER_WEIGHTS=checkpoint:/path)"
            )
        if found.degraded:
            warnings.append(f"results degraded to meet the budget: {found.degraded_reason}")
        warnings += part_warnings
        return SearchResponse(
            collection=request.collection,
            hits=tuple(found.videos),
            degraded=found.degraded,
            timings=tuple(timings),
            model_id=model_id,
            warnings=tuple(warnings),
        )

    async def _embed_parts(
        self, request: SearchRequest, deadline: float, timings: list[StageTiming]
    ) -> tuple[list[np.ndarray], str, list[str]]:
        """One vector per part, in order; the encoder's model id ("" if unused); and its
        warnings about the parts (a text in a language the model was not trained on)."""
        indexed = list(enumerate(request.parts))
        images = [(i, p) for i, p in indexed if p.kind == "image"]
        texts = [(i, p) for i, p in indexed if p.kind == "text"]
        clips = [(i, p) for i, p in indexed if p.kind == "clip"]
        counts = {"images": len(images), "texts": len(texts), "clips": len(clips)}
        with _stage(timings, "encode", {f"clipmesh.search.{k}": n for k, n in counts.items()}):
            # gather wraps each call in a task, which copies the context: the stage's span
            # stays the parent of the encoder and index calls made inside it.
            results = await asyncio.gather(
                self._embed("image", images, deadline),
                self._embed("text", texts, deadline),
                *(self._clip_vector(i, p.clip, request.collection, deadline) for i, p in clips),
            )
        vectors: dict[int, np.ndarray] = {}
        model_ids, warnings = set(), []
        for batch, embeddings in zip((images, texts), results[:2], strict=True):
            if embeddings is None:
                continue
            vectors.update(
                (index, row) for (index, _), row in zip(batch, embeddings.vectors, strict=True)
            )
            model_ids.add(embeddings.model_id)
            warnings += embeddings.warnings
        for (index, _), row in zip(clips, results[2:], strict=True):
            vectors[index] = row
        ordered = [vectors[i] for i in range(len(request.parts))]
        return ordered, next(iter(model_ids), ""), warnings

    async def _embed(
        self, kind: str, items: list[tuple[int, QueryPart]], deadline: float
    ) -> Embeddings | None:
        """Embeds the image or text parts `items` ((part index, part) pairs) in one call."""
        if not items:
            return None
        embed = self._encoder.embed_images if kind == "image" else self._encoder.embed_texts
        return await embed(
            [part.image if kind == "image" else part.text for _, part in items],
            interactive=True,
            timeout_s=remaining_s(deadline, "encoder"),
            names=[f"parts[{i}].{kind}" for i, _ in items],
        )

    async def _clip_vector(
        self, index: int, clip: ClipRef, collection: str, deadline: float
    ) -> np.ndarray:
        """The mean of the indexed segment vectors overlapping the clip's span."""
        where = f"parts[{index}].clip"
        segments = await self._index.get_segments(
            collection,
            clip.video_id,
            clip.span,
            timeout_s=remaining_s(deadline, "index"),
            names={"video_id": f"{where}.video_id"},
        )
        if not len(segments):
            raise InvalidArgument(
                f"{where}: no segment of {clip.video_id!r} overlaps that span",
                field=where,
                reason="EMPTY_CLIP",
            )
        mean = segments.vectors.astype(np.float64).mean(axis=0)
        return mean / np.linalg.norm(mean)

    async def _is_random(self, model_id: str, deadline: float) -> bool:
        if model_id not in self._random_models:
            timeout_s = remaining_s(deadline, "encoder")
            try:
                info = await self._encoder.model_info(timeout_s=timeout_s)
            except ServiceError:
                return False  # unknown this time; asked again next search
            self._random_models[model_id] = info.random_weights
        return self._random_models[model_id]


def above_threshold(response: SearchResponse, min_score: float | None) -> SearchResponse:
    """`response` without the videos and moments scoring below `min_score` (None: as it is).

    A video's score is its best moment's, so every video kept keeps at least that moment.
    """
    if min_score is None:
        return response
    kept = tuple(
        dataclasses.replace(hit, moments=tuple(m for m in hit.moments if m.score >= min_score))
        for hit in response.hits
        if hit.score >= min_score
    )
    return dataclasses.replace(
        response, hits=kept, hits_below_min_score=len(response.hits) - len(kept)
    )


@contextlib.contextmanager
def _stage(
    timings: list[StageTiming], stage: str, attributes: dict[str, object]
) -> Iterator[trace.Span]:
    """Runs one stage of a search inside a span named `search.<stage>`; when it succeeds,
    records its time in `timings` and the stage histogram (the same stage names)."""
    mark = time.monotonic()
    with tracer.start_as_current_span(f"search.{stage}", attributes=attributes) as span:
        yield span
    elapsed = time.monotonic() - mark
    metrics.SEARCH_STAGE_SECONDS.labels(stage).observe(elapsed)
    timings.append(StageTiming(stage, round(elapsed * 1000, 3)))


def _ms_since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 3)
