"""What a bulk ingest reads: a directory, a manifest of URIs, or a prefix in object storage —
listed as it is walked, and each file opened as a local path only for as long as it is used.

Every file is untrusted wherever it comes from. A local path must resolve (symlinks included)
under the allowed roots, exactly as IngestVideos checks it (`media.paths`); an object is
streamed into a bounded local spool by `objects.ObjectStore` and then meets the same size,
pixel, duration and container limits as a local file.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from clipmesh.bulk.config import BulkIngestConfig
from clipmesh.media.paths import path_from_uri, resolve_media_path
from clipmesh.runtime.errors import FailedPrecondition, InvalidArgument

S3_SCHEME = "s3://"
MAX_MANIFEST_LINE_BYTES = 8192


@dataclass(frozen=True)
class SourceFile:
    """One file to ingest, as listed.

    Attributes:
        uri: An absolute local path, or `s3://bucket/key`.
        size_bytes: Its size as the listing saw it; -1 when unknown (a manifest line).
    """

    uri: str
    size_bytes: int = -1

    @property
    def title(self) -> str:
        """The default title: the file name without its extension."""
        return PurePosixPath(self.uri).stem

    @property
    def in_object_storage(self) -> bool:
        return self.uri.startswith(S3_SCHEME)


@dataclass(frozen=True)
class Source:
    """A SOURCE argument, understood: what to list and where local paths may lie.

    Attributes:
        spec: As given: a directory, a manifest file, or `s3://bucket/prefix`.
        roots: Directories local paths must resolve under.
    """

    spec: str
    roots: tuple[Path, ...]

    @classmethod
    def parse(cls, spec: str, config: BulkIngestConfig) -> Source:
        """Reads SOURCE.

        Raises:
            InvalidArgument: SOURCE_NOT_FOUND or SOURCE_NOT_READABLE, naming it.
        """
        if spec.startswith(S3_SCHEME):
            return cls(spec, tuple(Path(root) for root in config.allowed_roots))
        path = Path(path_from_uri(spec)).expanduser()
        try:
            real = path.resolve(strict=True)
        except OSError:
            raise InvalidArgument(
                f"{spec!r}: no such directory or manifest file",
                field="source",
                reason="SOURCE_NOT_FOUND",
            ) from None
        if real.is_dir():
            return cls(str(real), (real,))
        if not real.is_file() or not os.access(real, os.R_OK):
            raise InvalidArgument(
                f"{spec!r} is neither a readable directory nor a readable manifest file",
                field="source",
                reason="SOURCE_NOT_READABLE",
            )
        roots = tuple(Path(root) for root in config.allowed_roots) or (real.parent,)
        return cls(str(real), roots)

    def files(self, config: BulkIngestConfig) -> Iterator[SourceFile]:
        """Every file of the source, as it is walked (never the whole listing at once).

        Raises:
            ServiceError: the object store refused the listing (reasons in `objects.py`).
        """
        if self.spec.startswith(S3_SCHEME):
            from clipmesh.bulk.objects import ObjectStore

            yield from ObjectStore.from_config(config).list(self.spec)
        elif Path(self.spec).is_dir():
            yield from _walk(Path(self.spec))
        else:
            yield from _manifest(Path(self.spec))


def _walk(directory: Path) -> Iterator[SourceFile]:
    """Regular files under `directory`, depth first in name order (a stable order, so a re-run
    meets the files as the last run did); hidden files and directories are left out, symlinks
    are not followed here (the fetch resolves and checks each file)."""
    with os.scandir(directory) as scan:
        entries = sorted(scan, key=lambda entry: entry.name)
    for entry in entries:
        if entry.name.startswith("."):
            continue
        info = entry.stat(follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode):
            yield from _walk(Path(entry.path))
        elif stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode):
            yield SourceFile(entry.path, info.st_size if stat.S_ISREG(info.st_mode) else -1)


def _manifest(path: Path) -> Iterator[SourceFile]:
    """One URI a line; blank lines and `#` comments are skipped. A line too long to be a path
    is listed as it is and fails alone when fetched."""
    with open(path, encoding="utf-8", errors="surrogateescape") as manifest:
        for line in manifest:
            uri = line.strip()
            if uri and not uri.startswith("#"):
                yield SourceFile(uri[:MAX_MANIFEST_LINE_BYTES])


class MediaFetcher:
    """Opens listed files as local paths in a worker: local files checked against the roots,
    objects streamed into the spool and deleted after use.

    Args:
        config: The spool, the object store's endpoint and the media bounds.
        roots: Directories local paths must resolve under.
    """

    def __init__(self, config: BulkIngestConfig, roots: Sequence[Path]) -> None:
        self._config = config
        self._roots = list(roots)
        self._store = None
        self._spool: Path | None = None  # made on the first object, then kept

    @contextlib.contextmanager
    def local_path(self, file: SourceFile) -> Iterator[Path]:
        """The file as a local path, for the duration of the block.

        Raises:
            ServiceError: outside the roots, missing, unreadable, too large, or the object
                store failing; the reason says which.
        """
        if not file.in_object_storage:
            yield resolve_media_path(file.uri, self._roots)
            return
        if self._store is None:
            from clipmesh.bulk.objects import ObjectStore

            self._store = ObjectStore.from_config(self._config)
        limit = self._config.media_limits().max_file_bytes
        if self._spool is None:
            self._spool = self._spool_dir()
        spooled = self._store.fetch(file, self._spool, max_bytes=limit)
        try:
            yield spooled
        finally:
            spooled.unlink(missing_ok=True)

    def _spool_dir(self) -> Path:
        base = Path(self._config.spool_dir or tempfile.gettempdir())
        directory = base / f"clipmesh-spool-{os.getpid()}"
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FailedPrecondition(
                f"spool directory {directory} cannot be created: {exc.strerror}",
                reason="SPOOL_UNAVAILABLE",
            ) from None
        return directory
