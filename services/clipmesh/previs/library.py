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

import numpy as np

from clipmesh.index.client import IndexClient
from clipmesh.index.filters import Clause, VideoFilter
from clipmesh.index.records import VideoResult
from clipmesh.media.ingest import VideoIngester
from clipmesh.media.paths import path_from_uri
from clipmesh.media.records import IngestItem
from clipmesh.previs.checks import ClipChecker
from clipmesh.previs.records import Clip, Project, Shot, ShotRevision
from clipmesh.runtime.errors import NotFound, ServiceError

log = logging.getLogger(__name__)

INDEX_TIMEOUT_S = 30.0


class Reference(NamedTuple):
    """A shot's reference image as a vector, and the library footage closest to it."""

    vector: np.ndarray
    video_id: str = ""
    score: float = 0.0
    title: str = ""


class ClipLibrary:
    """Previs's use of the library.

    Args:
        index: Searches the library.
        ingester: Ingests the clips.
        checker: Embeds reference images on the encoder.
    """

    def __init__(self, index: IndexClient, ingester: VideoIngester, checker: ClipChecker) -> None:
        self._index, self._ingester, self._checker = index, ingester, checker

    async def reference(self, collection: str, image: bytes) -> Reference:
        """The reference image's vector and the library footage that best matches it."""
        vector = (await self._checker.embed_images([image]))[0]
        vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
        hits = await self._search(collection, vector, "source", "ingested")
        if not hits:
            return Reference(vector)
        best = hits[0]
        return Reference(vector, best.meta.video_id, float(best.score), best.meta.title)

    async def add(
        self,
        project: Project,
        shot: Shot,
        revision: ShotRevision,
        clip: Clip,
        reference: Reference | None,
    ) -> None:
        labels = {
            "project": project.project_id,
            "shot": shot.shot_id,
            "revision": str(revision.revision),
            "variant": str(clip.variant),
            "prompt": clip.prompt[:500],
            "qa": "passed" if clip.scores.passed else "below_threshold",
        }
        item = IngestItem(
            uri=clip.uri,
            title=f"{project.title} · {shot.shot_id} r{revision.revision}",
            labels=labels,
        )
        try:
            outcome = await self._ingester.ingest(
                item,
                project.settings.collection,
                path=Path(path_from_uri(clip.uri)),
                source="generated",
            )
        except ServiceError as error:
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
        self, collection: str, vector: np.ndarray, field: str, equals: str
    ) -> list[VideoResult]:
        try:
            found = await self._index.search(
                collection,
                [(vector, 1.0)],
                top_k=1,
                max_moments=1,
                video_filter=VideoFilter((Clause(field, "equals", values=(equals,)),)),
                timeout_s=INDEX_TIMEOUT_S,
            )
        except NotFound:  # no such collection yet
            return []
        return found.videos
