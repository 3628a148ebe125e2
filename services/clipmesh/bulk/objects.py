"""Objects in S3-compatible storage (AWS, MinIO, Ceph…): listed under a prefix, and streamed one
at a time into a local spool where FFmpeg can read them.

pyarrow's S3 file system does the talking: the AWS SDK's credential chain (the standard AWS
variables and files, an instance's role), request signing, retries and timeouts, with no SDK
of our own in the service. pyarrow initialises the SDK with the first file system and
finalises it at exit (`ensure_s3_finalized`, registered with atexit), so any number of stores
may live in one process. A process must not fork once it has a store (the SDK's threads do
not survive a fork): Ray workers create theirs after they start.

An object is as untrusted as a local file. Its size is checked before a byte is read and
counted while it streams, the spool's free space is checked first, and neither the key's
suffix nor the Content-Type decides anything: the spooled bytes meet `media.probe` like any
local file. The suffix is kept on the spool file only so FFmpeg's format probing starts from
the likeliest guess.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from pyarrow import ArrowInvalid, fs

from clipmesh.bulk.config import BulkIngestConfig
from clipmesh.bulk.sources import S3_SCHEME, SourceFile
from clipmesh.runtime.config import ConfigError
from clipmesh.runtime.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    ServiceError,
    Unavailable,
)

_MIB = 1 << 20
CHUNK_BYTES = 8 * _MIB
"""Bytes read per call; pyarrow sends one ranged GET per read, so larger chunks mean fewer
round trips, at this much memory per worker."""
SPOOL_RESERVE_BYTES = 256 * _MIB
"""Space left free in the spool beyond the object itself, for the other workers' objects and
FFmpeg's own temporary files."""
CONNECT_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 60.0  # the SDK applies it on Windows and macOS only (pyarrow's docs)
MAX_ATTEMPTS = 3
"""Tries per request (the SDK's standard strategy: exponential backoff with jitter)."""

CREDENTIAL_SOURCES = (
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN), else "
    "AWS_SHARED_CREDENTIALS_FILE (default ~/.aws/credentials) and AWS_PROFILE, else the "
    "instance's role"
)

# pyarrow reports storage failures as OSError whose text carries the SDK's error name
# ("AWS Error ACCESS_DENIED during …") and sometimes the S3 code or curl's words; the
# mapping reads those tokens, in this order, and nothing else.
_BUCKET_MISSING = ("NO_SUCH_BUCKET", "NoSuchBucket", "RESOURCE_NOT_FOUND")
_DENIED = (
    "ACCESS_DENIED",
    "AccessDenied",
    "INVALID_ACCESS_KEY_ID",
    "InvalidAccessKeyId",
    "SIGNATURE_DOES_NOT_MATCH",
    "SignatureDoesNotMatch",
    "INVALID_CLIENT_TOKEN_ID",
    "UNRECOGNIZED_CLIENT",
    "MISSING_AUTHENTICATION_TOKEN",
    "INVALID_SIGNATURE",
    "INCOMPLETE_SIGNATURE",
    "EXPIRED_TOKEN",
    "ExpiredToken",
    "REQUEST_EXPIRED",
    "REQUEST_TIME_TOO_SKEWED",
    "HTTP status 401",
    "HTTP status 403",
)
_UNREACHABLE = (
    "NETWORK_CONNECTION",
    "Couldn't connect",
    "Could not connect",
    "curlCode",
    "SERVICE_UNAVAILABLE",
    "SLOW_DOWN",
    "THROTTLING",
    "REQUEST_TIMEOUT",
    "INTERNAL_FAILURE",
    "HTTP status 5",
)
_SAFE_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,10}")


class ObjectStore:
    """One S3 endpoint, read only: listings and object downloads, with failures as ServiceErrors.

    Args:
        filesystem: pyarrow's S3 file system for the endpoint.
        endpoint: How messages name the endpoint (a URL, or "AWS S3").
    """

    def __init__(self, filesystem: fs.S3FileSystem, endpoint: str) -> None:
        self._fs = filesystem
        self.endpoint = endpoint

    @classmethod
    def from_config(cls, config: BulkIngestConfig) -> ObjectStore:
        """The store `s3_endpoint_url` and `s3_region` name; credentials from the AWS chain.

        Raises:
            ConfigError: the endpoint is not an http(s) URL of a host and port.
        """
        endpoint = _endpoint_options(config.s3_endpoint_url, config.env_name("s3_endpoint_url"))
        region = (
            config.s3_region
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or None  # the SDK's own default
        )
        filesystem = fs.S3FileSystem(
            region=region,
            connect_timeout=CONNECT_TIMEOUT_S,
            request_timeout=REQUEST_TIMEOUT_S,
            retry_strategy=fs.AwsStandardS3RetryStrategy(max_attempts=MAX_ATTEMPTS),
            allow_bucket_creation=False,
            allow_bucket_deletion=False,
            **endpoint,
        )
        name = config.s3_endpoint_url or "AWS S3" + (f" ({region})" if region else "")
        return cls(filesystem, name)

    def list(self, uri: str) -> Iterator[SourceFile]:
        """Every object under `s3://bucket/prefix`, recursively, in key order; a URI naming one
        object lists that object alone. Directory markers are left out.

        A prefix is a "directory": `s3://b/shoot` lists `shoot/…`, not `shoot-2/…`.

        Raises:
            InvalidArgument: INVALID_SOURCE, a URI without a bucket.
            NotFound: BUCKET_NOT_FOUND.
            PermissionDenied: STORAGE_ACCESS_DENIED.
            Unavailable: STORAGE_UNAVAILABLE, or STORAGE_ERROR for any other failure.
        """
        bucket, prefix = _split_uri(uri, field="source", reason="INVALID_SOURCE")
        path = f"{bucket}/{prefix}".rstrip("/")
        if prefix and not prefix.endswith("/"):
            with self._storage_errors(bucket):
                named = self._fs.get_file_info(path)
            if named.type == fs.FileType.File:
                yield SourceFile(S3_SCHEME + named.path, named.size)
                return
        # pyarrow gathers the whole recursive listing (every ListObjectsV2 page) before
        # returning it; the list is sorted in place and handed out from its end, so the
        # entries already yielded are freed and no second copy is made.
        try:
            with self._storage_errors(bucket):
                entries = self._fs.get_file_info(fs.FileSelector(path, recursive=True))
        except FileNotFoundError:
            return  # the bucket exists (else NO_SUCH_BUCKET) but nothing is under the prefix
        entries.sort(key=lambda entry: entry.path, reverse=True)
        while entries:
            entry = entries.pop()
            if entry.type == fs.FileType.File:
                yield SourceFile(S3_SCHEME + entry.path, entry.size)

    def fetch(self, file: SourceFile, spool_dir: Path, *, max_bytes: int) -> Path:
        """Streams the object into a new file in `spool_dir`; the caller deletes it after use.

        Raises:
            InvalidArgument: MEDIA_TOO_LARGE (before any byte is read when the listing of the
                object says so, else as soon as the stream passes `max_bytes`), INVALID_URI.
            NotFound: FILE_NOT_FOUND, BUCKET_NOT_FOUND.
            ResourceExhausted: SPOOL_FULL.
            FailedPrecondition: SPOOL_UNAVAILABLE (the spool cannot be written).
            PermissionDenied, Unavailable: as for `list`.
        """
        bucket, key = _split_uri(file.uri, field="uri", reason="INVALID_URI")
        if not key or key.endswith("/"):
            raise InvalidArgument(
                f"{file.uri!r} names no object (s3://bucket/key)", field="uri", reason="INVALID_URI"
            )
        path, name = f"{bucket}/{key}", PurePosixPath(key).name
        with self._storage_errors(bucket):
            info = self._fs.get_file_info(path)
        if info.type != fs.FileType.File:
            raise self._missing(file.uri, bucket)
        if info.size > max_bytes:
            raise _too_large(name, f"{info.size:,} bytes", max_bytes)
        _check_spool_room(spool_dir, name, info.size)
        suffix = PurePosixPath(key).suffix
        try:
            descriptor, spooled = tempfile.mkstemp(
                prefix="object-",
                suffix=suffix if _SAFE_SUFFIX.fullmatch(suffix) else "",
                dir=spool_dir,
            )
        except OSError as exc:
            raise _spool_error(spool_dir, exc) from None
        try:
            with open(descriptor, "wb") as out:
                for chunk in self._chunks(file.uri, bucket, max_bytes):
                    try:
                        out.write(chunk)
                    except OSError as exc:
                        raise _spool_error(spool_dir, exc) from None
        except BaseException:
            Path(spooled).unlink(missing_ok=True)
            raise
        return Path(spooled)

    def _chunks(self, uri: str, bucket: str, max_bytes: int) -> Iterator[bytes]:
        """The object's bytes a chunk at a time, counted: it may have been replaced by a larger
        one since its size was checked."""
        path = uri.removeprefix(S3_SCHEME)
        try:
            with self._storage_errors(bucket):
                stream = self._fs.open_input_stream(path, compression=None)  # never unzip
        except FileNotFoundError:
            raise self._missing(uri, bucket) from None
        with stream:
            read_bytes = 0
            while True:
                with self._storage_errors(bucket):
                    chunk = stream.read(min(CHUNK_BYTES, max_bytes + 1 - read_bytes))
                if not chunk:
                    return
                read_bytes += len(chunk)
                if read_bytes > max_bytes:
                    name = PurePosixPath(path).name
                    raise _too_large(name, f"more than {max_bytes:,} bytes", max_bytes)
                yield chunk

    @contextlib.contextmanager
    def _storage_errors(self, bucket: str) -> Iterator[None]:
        """Turns pyarrow's storage failures into ServiceErrors; FileNotFoundError passes, for
        the caller to say what was not found."""
        try:
            yield
        except FileNotFoundError:
            raise
        except ArrowInvalid as exc:  # a path pyarrow cannot address, e.g. with '//' in it
            raise InvalidArgument(str(exc), field="uri", reason="INVALID_URI") from None
        except OSError as exc:
            raise self._storage_error(exc, bucket) from None

    def _storage_error(self, exc: OSError, bucket: str) -> ServiceError:
        """The one mapping of a storage failure to the error the caller is given."""
        detail = _detail(exc)
        where = {"bucket": bucket, "endpoint": self.endpoint}
        if any(token in detail for token in _BUCKET_MISSING):
            return self._no_bucket(bucket)
        if any(token in detail for token in _DENIED):
            return PermissionDenied(
                f"{self.endpoint} denied access to bucket {bucket!r}: check the credentials "
                f"(from {CREDENTIAL_SOURCES}) and that they may read it. {detail}",
                reason="STORAGE_ACCESS_DENIED",
                metadata=where,
            )
        if any(token in detail for token in _UNREACHABLE):
            return Unavailable(
                f"object storage at {self.endpoint} cannot be reached. {detail}",
                reason="STORAGE_UNAVAILABLE",
                metadata=where,
            )
        return Unavailable(
            f"object storage at {self.endpoint} failed. {detail}",
            reason="STORAGE_ERROR",
            metadata=where,
        )

    def _no_bucket(self, bucket: str) -> NotFound:
        return NotFound(
            f"bucket {bucket!r} does not exist at {self.endpoint}",
            reason="BUCKET_NOT_FOUND",
            metadata={"bucket": bucket, "endpoint": self.endpoint},
        )

    def _missing(self, uri: str, bucket: str) -> NotFound:
        """FILE_NOT_FOUND, or BUCKET_NOT_FOUND when it is the bucket that is missing (a manifest
        naming a wrong bucket is told so, once per object)."""
        try:
            bucket_missing = self._fs.get_file_info(bucket).type == fs.FileType.NotFound
        except OSError:
            bucket_missing = False  # may not look at the bucket: report the object
        if bucket_missing:
            return self._no_bucket(bucket)
        return NotFound(
            f"{uri}: no such object at {self.endpoint}",
            reason="FILE_NOT_FOUND",
            metadata={"uri": uri},
        )


def _split_uri(uri: str, *, field: str, reason: str) -> tuple[str, str]:
    """(bucket, key or prefix) of `s3://bucket/key`, the key taken literally (S3 keys may hold
    '?', '#' or '%')."""
    bucket, _, key = uri.removeprefix(S3_SCHEME).partition("/")
    if not uri.startswith(S3_SCHEME) or not bucket:
        raise InvalidArgument(
            f"{uri!r}: expected s3://bucket/prefix (a bucket at least)", field=field, reason=reason
        )
    if "//" in key or key.startswith("/"):
        raise InvalidArgument(
            f"{uri!r}: keys with empty path segments ('//') cannot be read",
            field=field,
            reason=reason,
        )
    return bucket, key


def _endpoint_options(url: str, setting_name: str) -> dict[str, str]:
    """pyarrow's `scheme` and `endpoint_override` for an endpoint URL; none for AWS itself."""
    if not url:
        return {}
    parts = urlsplit(url if "://" in url else f"https://{url}")
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username
        or parts.path.strip("/")
        or parts.query
        or parts.fragment
    ):
        raise ConfigError(
            f"{setting_name}: {url!r} is not an http(s) URL of a host and port, like "
            "https://minio.storage:9000 (credentials belong in the AWS variables, not the URL)"
        )
    return {"scheme": parts.scheme, "endpoint_override": parts.netloc}


def _detail(exc: OSError) -> str:
    """pyarrow's message from the SDK's error on ("AWS Error X during Op: …"), without the
    request id: short enough to fit the caller's message whole."""
    text = str(exc)
    text = text[text.find("AWS Error") :] if "AWS Error" in text else text
    return re.sub(r"\s*\(Request ID: [^)]*\)", "", text).strip()


def _too_large(name: str, size: str, max_bytes: int) -> InvalidArgument:
    """MEDIA_TOO_LARGE in `media.probe.check_file_size`'s words."""
    return InvalidArgument(
        f"{name}: {size}; the limit is {max_bytes:,} bytes per file",
        field="uri",
        reason="MEDIA_TOO_LARGE",
    )


def _check_spool_room(spool_dir: Path, name: str, size_bytes: int) -> None:
    try:
        free_bytes = shutil.disk_usage(spool_dir).free
    except OSError as exc:
        raise _spool_error(spool_dir, exc) from None
    if free_bytes < size_bytes + SPOOL_RESERVE_BYTES:
        raise ResourceExhausted(
            f"spool {spool_dir} has {free_bytes:,} bytes free; {name} needs {size_bytes:,} "
            f"and {SPOOL_RESERVE_BYTES:,} are kept free",
            reason="SPOOL_FULL",
            metadata={"spool_dir": spool_dir, "free_bytes": free_bytes},
        )


def _spool_error(spool_dir: Path, exc: OSError) -> ServiceError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ResourceExhausted(
            f"spool {spool_dir} is full: {exc.strerror}",
            reason="SPOOL_FULL",
            metadata={"spool_dir": spool_dir},
        )
    return FailedPrecondition(
        f"spool {spool_dir} cannot be written: {exc.strerror}", reason="SPOOL_UNAVAILABLE"
    )
