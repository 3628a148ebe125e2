"""The output store: generated videos under the outputs dir, addressed by their SHA-256.

`outputs/ab/abcdef….mp4`: the same content is stored once however many jobs or cache entries
hold it, a file never changes after it is written (moved in atomically after an fsync), and
callers get it as a `file://` URI or streamed through `DownloadJobOutput`.

With several replicas the outputs dir is a volume they all mount (ReadWriteMany), usually not
the filesystem of a replica's scratch space: a file is then copied in beside its final name,
fsynced, and renamed, so a reader on any replica sees the whole file or none. An object store
instead would need the same two properties — a write that appears whole under its name
(an S3 PUT does) and reads by name from every replica — plus a URI scheme callers can fetch.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import uuid
from pathlib import Path

_CHUNK = 1 << 20


class OutputStore:
    """Content-addressed video files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}.mp4"

    def put(self, source: Path) -> tuple[str, Path, int]:
        """Moves `source` into the store; returns (sha256, stored path, size in bytes)."""
        digest = hashlib.sha256()
        with source.open("rb") as handle:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(chunk)
            os.fsync(handle.fileno())
        sha256 = digest.hexdigest()
        target = self.path_for(sha256)
        target.parent.mkdir(exist_ok=True)
        if target.exists():
            source.unlink()  # the same bytes are stored already
        else:
            _move(source, target)
            directory = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        return sha256, target, target.stat().st_size

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def delete(self, sha256: str) -> bool:
        """Removes the file; False when it was already gone."""
        try:
            self.path_for(sha256).unlink()
        except FileNotFoundError:
            return False
        return True

    def chunks(self, sha256: str, chunk_bytes: int = _CHUNK):
        """The file's bytes in order, `chunk_bytes` at a time."""
        with self.path_for(sha256).open("rb") as handle:
            yield from iter(lambda: handle.read(chunk_bytes), b"")


def _move(source: Path, target: Path) -> None:
    """Renames `source` to `target`; across filesystems, copies it in whole first."""
    try:
        os.replace(source, target)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
    try:
        with source.open("rb") as reader, partial.open("wb") as writer:
            shutil.copyfileobj(reader, writer, _CHUNK)
            writer.flush()
            os.fsync(writer.fileno())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    source.unlink()
