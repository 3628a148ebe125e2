"""Where ingest may read: turning a caller's URI into a local regular file under an allowed root.

The orchestrator reads media only from local files under the roots it was configured with.
Every other scheme (http, rtsp, FFmpeg's `concat:`, `pipe:`, `data:` …) is refused before
anything touches the file system, so a request cannot make FFmpeg fetch a URL or read a pipe.
Symlinks are resolved first and the root check runs on the real path, so a link inside a root
cannot point outside it. The checks run in an order that leaks nothing: a caller learns whether
a file exists only once the path is known to be inside a root.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote_to_bytes, urlsplit

from clipmesh.runtime.errors import InvalidArgument, NotFound, PermissionDenied

MAX_PATH_BYTES = 4096
"""Longest accepted path, in bytes of its file-system encoding (Linux's PATH_MAX)."""

# RFC 3986 scheme syntax. A bare path on POSIX never matches (it would need a colon before
# its first slash), while FFmpeg's protocol prefixes like `concat:` and `pipe:` do.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_LOCAL_HOSTS = ("", "localhost")


def path_from_uri(uri: str) -> str:
    """The local path a `file://` URI or plain path names, still unresolved."""
    match = _SCHEME.match(uri)
    if match is None:
        return uri
    scheme = match.group(1).lower()
    if scheme != "file":
        raise PermissionDenied(
            f"{uri!r}: the {scheme!r} scheme is not accepted; give a local path or file:// URI",
            reason="UNSUPPORTED_URI_SCHEME",
            metadata={"scheme": scheme},
        )
    parts = urlsplit(uri)
    if parts.netloc.lower() not in _LOCAL_HOSTS:
        raise PermissionDenied(
            f"{uri!r}: file:// URIs must name a local file (host empty or localhost)",
            reason="UNSUPPORTED_URI_SCHEME",
            metadata={"host": parts.netloc},
        )
    if "?" in uri or "#" in uri:
        raise InvalidArgument(
            f"{uri!r}: a file:// URI takes no query or fragment; percent-encode '?' and '#'",
            field="uri",
            reason="INVALID_URI",
        )
    # Decode to bytes, then to a str the way the OS does, so non-UTF-8 names survive.
    return os.fsdecode(unquote_to_bytes(parts.path))


def _check_syntax(uri: str, path: str) -> None:
    if "\x00" in path:
        raise InvalidArgument(f"{uri!r}: contains a NUL byte", field="uri", reason="INVALID_PATH")
    if len(os.fsencode(path)) > MAX_PATH_BYTES:
        raise InvalidArgument(
            f"path is longer than {MAX_PATH_BYTES} bytes", field="uri", reason="INVALID_PATH"
        )
    if not os.path.isabs(path):
        raise InvalidArgument(
            f"{uri!r}: relative paths are ambiguous on a server; give an absolute path",
            field="uri",
            reason="RELATIVE_PATH",
        )


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def resolve_media_path(uri: str, allowed_roots: Sequence[Path]) -> Path:
    """The real local file a caller's path or `file://` URI names, if it may be read.

    Args:
        uri: An absolute local path, or a `file://` URI (host empty or `localhost`,
            percent-encoded).
        allowed_roots: Directories ingest may read below; each is resolved with `realpath`
            too, so roots given through symlinks work.

    Returns:
        The resolved path (no symlinks left) of a regular file inside one of the roots.

    Raises:
        PermissionDenied: `UNSUPPORTED_URI_SCHEME` for any scheme but `file`, or a remote
            host; `OUTSIDE_ALLOWED_ROOTS` when the real path is not below a root;
            `FILE_NOT_READABLE` for a symlink loop or a directory the server may not enter.
        InvalidArgument: `INVALID_URI`, `INVALID_PATH` (empty, NUL byte, too long),
            `RELATIVE_PATH`, or `NOT_A_FILE` for a directory, device, FIFO or socket.
        NotFound: `FILE_NOT_FOUND` when nothing exists at the path.
    """
    if not uri.strip():
        raise InvalidArgument("uri is empty", field="uri", reason="INVALID_PATH")
    if len(uri) > 3 * MAX_PATH_BYTES:  # even fully percent-encoded it cannot fit; don't echo it
        raise InvalidArgument(
            f"uri is longer than {3 * MAX_PATH_BYTES} characters",
            field="uri",
            reason="INVALID_PATH",
        )
    path = path_from_uri(uri)
    _check_syntax(uri, path)
    real = os.path.realpath(path)
    roots = [os.path.realpath(root) for root in allowed_roots]
    if not any(_inside(real, root) for root in roots):
        # Name only what the caller sent: neither the symlink's target nor the roots.
        raise PermissionDenied(
            f"{uri!r} is outside the directories this server may read",
            reason="OUTSIDE_ALLOWED_ROOTS",
        )
    try:
        mode = os.stat(real).st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(f"{uri!r}: no such file", reason="FILE_NOT_FOUND") from None
    except OSError as exc:  # a symlink loop, or a directory the server may not enter
        raise PermissionDenied(
            f"{uri!r} cannot be read: {exc.strerror}", reason="FILE_NOT_READABLE"
        ) from None
    if not stat.S_ISREG(mode):
        raise InvalidArgument(f"{uri!r} is not a regular file", field="uri", reason="NOT_A_FILE")
    return Path(real)


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of a file's bytes, read in chunks (videos do not fit in memory)."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()
