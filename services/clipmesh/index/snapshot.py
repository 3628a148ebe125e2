"""Snapshots of every collection: written aside, checksummed, then swapped in atomically.

Layout under the data dir:

    CURRENT                      "snapshots/<sequence>" — which snapshot is live
    snapshots/<sequence>/        one directory per snapshot
        manifest.json            covered WAL sequence, collections, sha256 of every file
        <collection>.meta.json   videos (metadata + slots), per-slot thumbnails, index plan
        <collection>.times.npy   per-slot start/end/keyframe seconds
        <collection>.vectors.npy per-slot raw vectors (float16)
        <collection>.faiss       the ANN index, so a restart need not retrain

A snapshot is written into `snapshots/tmp-…`, fsynced, renamed, and only then named in CURRENT
(itself replaced by rename). Start-up verifies every checksum and refuses a damaged snapshot.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import faiss
import numpy as np

from clipmesh.index import ann
from clipmesh.index.collection import AnnSettings, Collection, VideoEntry
from clipmesh.index.records import VideoMeta
from clipmesh.index.vectors import RawVectors
from clipmesh.index.wal import fsync_path
from clipmesh.runtime.server import StartupError

FORMAT_VERSION = 1


class SnapshotCorruption(StartupError):
    """A snapshot's files do not match its manifest; the index will not serve from it."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_snapshot(data_dir: Path, sequence: int, collections: list[Collection]) -> Path:
    """Writes a snapshot covering WAL records up to `sequence`; returns its directory.

    The caller holds every collection's read lock, so the state is one consistent cut.
    """
    root = data_dir / "snapshots"
    root.mkdir(parents=True, exist_ok=True)
    scratch = root / f"tmp-{sequence}-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    manifest: dict[str, object] = {
        "format": FORMAT_VERSION,
        "sequence": sequence,
        "created_s": time.time(),
        "collections": {},
    }
    for collection in collections:
        files = _write_collection(scratch, collection)
        manifest["collections"][collection.name] = {  # type: ignore[index]
            "dimension": collection.dimension,
            "files": {name: _sha256(scratch / name) for name in files},
        }
    (scratch / "manifest.json").write_text(json.dumps(manifest, indent=1))
    for path in scratch.iterdir():
        fsync_path(path)
    final = root / f"{sequence:020d}"
    shutil.rmtree(final, ignore_errors=True)
    scratch.rename(final)
    fsync_path(root)
    pointer = data_dir / "CURRENT.tmp"
    pointer.write_text(f"snapshots/{final.name}\n")
    fsync_path(pointer)
    pointer.replace(data_dir / "CURRENT")
    fsync_path(data_dir)
    for old in root.iterdir():
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def _write_collection(directory: Path, collection: Collection) -> list[str]:
    name = collection.name
    count = len(collection.columns)
    meta = {
        "plan": dataclasses.asdict(collection.plan),
        "slots": count,
        "thumbnails": collection.columns.thumbnails,
        "videos": [
            {"meta": dataclasses.asdict(entry.meta), "slots": entry.slots.tolist()}
            for entry in collection.videos.values()
        ],
    }
    (directory / f"{name}.meta.json").write_text(json.dumps(meta, ensure_ascii=False))
    np.save(directory / f"{name}.times.npy", collection.columns.times[:count])
    collection.vectors.save(directory / f"{name}.vectors.npy")
    faiss.write_index(collection.index, str(directory / f"{name}.faiss"))
    return [f"{name}.meta.json", f"{name}.times.npy", f"{name}.vectors.npy", f"{name}.faiss"]


def load_snapshot(
    data_dir: Path, settings: AnnSettings
) -> tuple[int, list[Collection], float | None]:
    """Loads and verifies the live snapshot; returns (sequence, collections, created time).

    No snapshot yet: (0, [], None).

    Raises:
        SnapshotCorruption: a file is missing or its checksum does not match.
    """
    pointer = data_dir / "CURRENT"
    if not pointer.exists():
        return 0, [], None
    directory = data_dir / pointer.read_text().strip()
    manifest_path = directory / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise SnapshotCorruption(f"snapshot manifest {manifest_path} is unreadable: {exc}") from exc
    if manifest.get("format") != FORMAT_VERSION:
        raise SnapshotCorruption(
            f"snapshot {directory.name} has unknown format {manifest.get('format')}"
        )
    collections = []
    for name, entry in manifest["collections"].items():
        for file_name, expected in entry["files"].items():
            path = directory / file_name
            if not path.exists():
                raise SnapshotCorruption(f"snapshot {directory.name} is missing {file_name}")
            if _sha256(path) != expected:
                raise SnapshotCorruption(
                    f"snapshot {directory.name}: {file_name} does not match its checksum; "
                    "refusing to serve possibly wrong data (restore the data dir from backup)"
                )
        collections.append(_load_collection(directory, name, entry["dimension"], settings))
    return int(manifest["sequence"]), collections, float(manifest["created_s"])


def _load_collection(
    directory: Path, name: str, dimension: int, settings: AnnSettings
) -> Collection:
    meta = json.loads((directory / f"{name}.meta.json").read_text())
    collection = Collection(name, dimension, settings)
    collection.vectors = RawVectors.load(directory / f"{name}.vectors.npy")
    times = np.load(directory / f"{name}.times.npy")
    collection.columns.times = np.array(times, dtype=np.float64)
    collection.columns.thumbnails = list(meta["thumbnails"])
    video_ids = [""] * meta["slots"]
    for video in meta["videos"]:
        slots = np.asarray(video["slots"], dtype=np.int64)
        video_meta = VideoMeta(**video["meta"])
        collection.videos[video_meta.video_id] = VideoEntry(video_meta, slots)
        collection.live_segments += len(slots)
        for slot in slots:
            video_ids[slot] = video_meta.video_id
    collection.columns.video_ids = video_ids
    collection.plan = ann.AnnPlan(**meta["plan"])
    collection.index = faiss.read_index(str(directory / f"{name}.faiss"))
    return collection
