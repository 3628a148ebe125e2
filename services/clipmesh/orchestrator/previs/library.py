"""The retrieval loop of previs: generated clips into the library, reference images out of it.

Every made clip is ingested like any footage (source = generated; project, shot, revision,
variant, prompt and QA result as labels), so a project's shots can be searched and filtered. A
shot's reference image is searched among ingested footage (never the project's own clips), the
best match informing the prompt; each new clip is then searched with the same image,
restricted to that clip, and the score is its consistency with the reference.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

import grpc
import numpy as np

from clipmesh.orchestrator.dependencies import Dependencies, translate
from clipmesh.orchestrator.ingest import IngestPipeline
from clipmesh.orchestrator.paths import path_from_uri
from clipmesh.orchestrator.previs.checks import ClipChecker
from clipmesh.runtime.errors import ClipmeshError
from clipmesh_api.common.v1 import common_pb2
from clipmesh_api.index.v1 import index_pb2

log = logging.getLogger(__name__)

INDEX_TIMEOUT_S = 30.0


class Reference(NamedTuple):
    """A shot's reference image as a vector, and the library footage closest to it."""

    vector: list[float]
    video_id: str = ""
    score: float = 0.0
    title: str = ""


def _unit(vector: list[float]) -> list[float]:
    array = np.asarray(vector, dtype=np.float32)
    return (array / max(float(np.linalg.norm(array)), 1e-12)).tolist()


class ClipLibrary:
    """Previs's use of the library.

    Args:
        deps: The index stub.
        ingest: Ingests the clips.
        checker: Embeds reference images on the encoder.
    """

    def __init__(self, deps: Dependencies, ingest: IngestPipeline, checker: ClipChecker) -> None:
        self._deps, self._ingest, self._checker = deps, ingest, checker

    async def reference(self, collection: str, image: bytes) -> Reference:
        """The reference image's vector and the library footage that best matches it."""
        vector = _unit((await self._checker.embed_images([image]))[0])
        hits = await self._search(collection, vector, "source", "ingested")
        if not hits:
            return Reference(vector)
        best = hits[0]
        return Reference(vector, best.video.video_id, float(best.score), best.video.title)

    async def add(self, project, shot, revision, clip, reference) -> None:
        labels = {
            "project": project.project_id,
            "shot": shot.shot_id,
            "revision": str(revision.revision),
            "variant": str(clip.variant),
            "prompt": clip.prompt[:500],
            "qa": "passed" if clip.scores.passed else "below_threshold",
        }
        try:
            outcome = await self._ingest.ingest_own_file(
                Path(path_from_uri(clip.uri)),
                collection=project.settings.collection,
                title=f"{project.title} · {shot.shot_id} r{revision.revision}",
                labels=labels,
                source=common_pb2.VIDEO_SOURCE_GENERATED,
            )
        except ClipmeshError as error:
            log.warning("previs clip not ingested: %s", error.message)
            return
        clip.video_id = outcome.video_id
        if reference is not None and clip.video_id:
            hits = await self._search(
                project.settings.collection, reference.vector, "video_id", clip.video_id
            )
            if hits:
                clip.consistency = float(hits[0].score)

    async def _search(
        self, collection: str, vector: list[float], field: str, equals: str
    ) -> list[common_pb2.VideoHit]:
        request = index_pb2.SearchRequest(
            collection=collection,
            queries=[index_pb2.WeightedVector(vector=vector, weight=1.0)],
            top_k=1,
            max_moments_per_video=1,
            filter=common_pb2.MetadataFilter(
                clauses=[common_pb2.FilterClause(field=field, equals=equals)]
            ),
        )
        try:
            response = await self._deps.index.Search(request, timeout=INDEX_TIMEOUT_S)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:  # no such collection yet
                return []
            raise translate(error, "index") from error
        return list(response.hits)
