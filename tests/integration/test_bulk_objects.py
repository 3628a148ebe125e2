"""Bulk ingest's object-storage source against a real S3 endpoint (moto's server, tests/s3.py):
listing a prefix, streaming an object into the spool, and each way storage can refuse.

Credentials reach pyarrow as they would in production: the standard AWS variables, or a
shared credentials file.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
from pyarrow import fs

from clipmesh.bulk import objects
from clipmesh.bulk.config import BulkIngestConfig
from clipmesh.bulk.objects import ObjectStore
from clipmesh.bulk.sources import MediaFetcher, Source, SourceFile
from clipmesh.demo.library import make_video
from clipmesh.media.probe import probe
from clipmesh.runtime.config import load_config
from clipmesh.runtime.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
)
from tests.conftest import distinct_free_port
from tests.media import encode, gradient_image
from tests.s3 import S3Server

LIMIT = 1 << 30


def bulk_config(endpoint_url: str, spool_dir: Path) -> BulkIngestConfig:
    return load_config(
        BulkIngestConfig,
        environ={
            "CLIPMESH_BULK_INGEST_S3_ENDPOINT_URL": endpoint_url,
            "CLIPMESH_BULK_INGEST_SPOOL_DIR": str(spool_dir),
        },
    )


@pytest.fixture
def aws_environment(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The server's key in the AWS variables, and nothing of the machine's own AWS setup."""
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    directory = tmp_path / "spool"
    directory.mkdir()
    return directory


@pytest.fixture
def config(s3_server: S3Server, spool: Path, aws_environment: None) -> BulkIngestConfig:
    return bulk_config(s3_server.endpoint_url, spool)


@pytest.fixture
def store(config: BulkIngestConfig) -> ObjectStore:
    return ObjectStore.from_config(config)


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    return s3_server.create_bucket()


@pytest.fixture(scope="module")
def video_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    make_video(path, seed=3, duration_s=2, size=(160, 90), shots=1)
    return path.read_bytes()


def put(s3_server: S3Server, bucket: str, key: str, body: bytes, **extra: str) -> None:
    s3_server.client().put_object(Bucket=bucket, Key=key, Body=body, **extra)


def test_lists_every_object_under_a_prefix_in_key_order(
    s3_server: S3Server, store: ObjectStore, bucket: str
) -> None:
    objects_under_shoot = {
        "shoot/b.mp4": b"b" * 5,
        "shoot/a/2.mp4": b"2" * 7,
        "shoot/a/1.mp4": b"1" * 3,
        "shoot/a-c.mp4": b"c" * 11,  # '-' sorts before '/': key order, not a directory walk
        "shoot/deep/er/still/x.mov": b"x" * 13,
    }
    for key, body in objects_under_shoot.items():
        put(s3_server, bucket, key, body)
    for marker in ("shoot/", "shoot/a/", "shoot/empty/"):  # what consoles create as folders
        put(s3_server, bucket, marker, b"")
    put(s3_server, bucket, "shooting/other.mp4", b"o")
    put(s3_server, bucket, "top.mp4", b"t")

    expected = [
        SourceFile(f"s3://{bucket}/{key}", len(body))
        for key, body in sorted(objects_under_shoot.items())
    ]
    assert list(store.list(f"s3://{bucket}/shoot/")) == expected
    assert list(store.list(f"s3://{bucket}/shoot")) == expected  # a prefix is a folder
    assert [file.uri for file in store.list(f"s3://{bucket}")] == [
        *(file.uri for file in expected),
        f"s3://{bucket}/shooting/other.mp4",
        f"s3://{bucket}/top.mp4",
    ]
    assert list(store.list(f"s3://{bucket}/shoot/a/2.mp4")) == [
        SourceFile(f"s3://{bucket}/shoot/a/2.mp4", 7)
    ]


def test_an_empty_bucket_or_prefix_lists_nothing(
    s3_server: S3Server, store: ObjectStore, bucket: str
) -> None:
    assert list(store.list(f"s3://{bucket}/")) == []
    put(s3_server, bucket, "shoot/a.mp4", b"a")
    assert list(store.list(f"s3://{bucket}/nothing/here/")) == []
    assert list(store.list(f"s3://{bucket}/nothing")) == []


@pytest.mark.parametrize("uri", ["s3://", "s3:///key", "s3:///"])
def test_a_uri_without_a_bucket_is_refused(store: ObjectStore, uri: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        list(store.list(uri))
    assert refused.value.reason == "INVALID_SOURCE"


def test_streams_a_video_into_the_spool_byte_for_byte(
    s3_server: S3Server, store: ObjectStore, bucket: str, spool: Path, video_bytes: bytes
) -> None:
    put(s3_server, bucket, "shoot/day 1/clip.mp4", video_bytes, ContentType="video/mp4")
    (file,) = store.list(f"s3://{bucket}/shoot/")

    spooled = store.fetch(file, spool, max_bytes=LIMIT)

    assert spooled.parent == spool
    assert spooled.suffix == ".mp4"
    assert spooled.read_bytes() == video_bytes
    assert probe(spooled).duration_s == pytest.approx(2, abs=0.1)


def test_a_compressed_looking_object_is_copied_as_it_is(
    s3_server: S3Server, store: ObjectStore, bucket: str, spool: Path
) -> None:
    body = b"\x1f\x8b not really gzip"
    put(s3_server, bucket, "clip.mp4.gz", body)

    spooled = store.fetch(SourceFile(f"s3://{bucket}/clip.mp4.gz"), spool, max_bytes=LIMIT)

    assert spooled.read_bytes() == body  # pyarrow would have unzipped by suffix


def test_an_object_over_the_limit_is_refused_before_a_byte_is_downloaded(
    s3_server: S3Server, store: ObjectStore, bucket: str, spool: Path
) -> None:
    put(s3_server, bucket, "big/clip.mp4", b"v" * 1000)
    (file,) = store.list(f"s3://{bucket}/big/")

    with pytest.raises(InvalidArgument) as refused:
        store.fetch(file, spool, max_bytes=999)

    assert refused.value.reason == "MEDIA_TOO_LARGE"
    assert refused.value.message == "clip.mp4: 1,000 bytes; the limit is 999 bytes per file"
    assert list(spool.iterdir()) == []
    requests = [line for line in s3_server.requests_logged() if f"/{bucket}/big/clip.mp4" in line]
    assert requests
    assert not [line for line in requests if '"GET ' in line]  # only HEAD: the size, no bytes


class ReplacedAfterItsSizeIsRead:
    """pyarrow's S3 file system as it is, with another writer replacing each object right after
    its size has been read: the race between the size check and the download, made certain."""

    def __init__(self, filesystem: fs.S3FileSystem, replace) -> None:
        self._filesystem = filesystem
        self._replace = replace

    def get_file_info(self, path):
        info = self._filesystem.get_file_info(path)
        self._replace()
        return info

    def __getattr__(self, name: str):
        return getattr(self._filesystem, name)


def test_an_object_that_grows_past_the_limit_while_downloading_is_cut_off(
    s3_server: S3Server, config: BulkIngestConfig, bucket: str, spool: Path
) -> None:
    put(s3_server, bucket, "clip.mp4", b"v" * 100)
    filesystem = ReplacedAfterItsSizeIsRead(
        fs.S3FileSystem(
            endpoint_override=s3_server.endpoint_url.removeprefix("http://"), scheme="http"
        ),
        lambda: put(s3_server, bucket, "clip.mp4", b"v" * 5000),
    )
    store = ObjectStore(filesystem, s3_server.endpoint_url)

    with pytest.raises(InvalidArgument) as refused:
        store.fetch(SourceFile(f"s3://{bucket}/clip.mp4"), spool, max_bytes=1000)

    assert refused.value.reason == "MEDIA_TOO_LARGE"
    assert refused.value.message == (
        "clip.mp4: more than 1,000 bytes; the limit is 1,000 bytes per file"
    )
    assert list(spool.iterdir()) == []  # the part already written is gone


def test_a_spool_without_room_for_the_object_is_refused(
    s3_server: S3Server,
    store: ObjectStore,
    bucket: str,
    spool: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    put(s3_server, bucket, "clip.mp4", b"v" * 1000)
    monkeypatch.setattr(objects, "SPOOL_RESERVE_BYTES", 2 * shutil.disk_usage(spool).free)

    with pytest.raises(ResourceExhausted) as refused:
        store.fetch(SourceFile(f"s3://{bucket}/clip.mp4"), spool, max_bytes=LIMIT)

    assert refused.value.reason == "SPOOL_FULL"
    assert list(spool.iterdir()) == []


@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param(lambda server: (server.access_key_id, "wrong-secret"), id="wrong secret"),
        pytest.param(lambda server: ("AKIAUNKNOWNKEY000000", "secret"), id="unknown key"),
    ],
)
def test_bad_credentials_are_refused_saying_where_credentials_come_from(
    s3_server: S3Server,
    config: BulkIngestConfig,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    credentials,
) -> None:
    spool = Path(config.spool_dir)
    put(s3_server, bucket, "clip.mp4", b"v")
    key_id, secret = credentials(s3_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    store = ObjectStore.from_config(config)

    with pytest.raises(PermissionDenied) as listing:
        list(store.list(f"s3://{bucket}/"))
    with pytest.raises(PermissionDenied) as fetching:
        store.fetch(SourceFile(f"s3://{bucket}/clip.mp4"), spool, max_bytes=LIMIT)

    for refused in (listing, fetching):
        assert refused.value.reason == "STORAGE_ACCESS_DENIED"
        assert s3_server.endpoint_url in refused.value.message
        assert bucket in refused.value.message
        assert "AWS_ACCESS_KEY_ID" in refused.value.message
        assert "AWS_SHARED_CREDENTIALS_FILE" in refused.value.message
    assert secret not in listing.value.message
    assert list(spool.iterdir()) == []


def test_credentials_are_read_from_a_shared_credentials_file(
    s3_server: S3Server,
    config: BulkIngestConfig,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    put(s3_server, bucket, "clip.mp4", b"v")
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[bulk]\n"
        f"aws_access_key_id = {s3_server.access_key_id}\n"
        f"aws_secret_access_key = {s3_server.secret_access_key}\n"
    )
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_PROFILE", "bulk")

    listed = list(ObjectStore.from_config(config).list(f"s3://{bucket}/"))

    assert listed == [SourceFile(f"s3://{bucket}/clip.mp4", 1)]


def test_a_missing_bucket_is_named(store: ObjectStore, spool: Path) -> None:
    with pytest.raises(NotFound) as listing:
        list(store.list("s3://no-such-bucket-here/shoot/"))
    with pytest.raises(NotFound) as fetching:
        store.fetch(SourceFile("s3://no-such-bucket-here/clip.mp4"), spool, max_bytes=LIMIT)

    for refused in (listing, fetching):
        assert refused.value.reason == "BUCKET_NOT_FOUND"
        assert "'no-such-bucket-here'" in refused.value.message


def test_a_missing_object_is_not_found(
    s3_server: S3Server, store: ObjectStore, bucket: str, spool: Path
) -> None:
    put(s3_server, bucket, "shoot/there.mp4", b"v")

    for key in ("shoot/gone.mp4", "shoot"):  # nothing, and a prefix rather than an object
        with pytest.raises(NotFound) as refused:
            store.fetch(SourceFile(f"s3://{bucket}/{key}"), spool, max_bytes=LIMIT)
        assert refused.value.reason == "FILE_NOT_FOUND"
        assert f"s3://{bucket}/{key}" in refused.value.message
    assert list(spool.iterdir()) == []


def test_an_unreachable_endpoint_is_unavailable_quickly(aws_environment: None, spool: Path) -> None:
    endpoint = f"http://127.0.0.1:{distinct_free_port()}"  # nobody listens there
    store = ObjectStore.from_config(bulk_config(endpoint, spool))
    started = time.monotonic()

    with pytest.raises(Unavailable) as listing:
        list(store.list("s3://clips/shoot/"))
    with pytest.raises(Unavailable) as fetching:
        store.fetch(SourceFile("s3://clips/clip.mp4"), spool, max_bytes=LIMIT)

    assert time.monotonic() - started < 15  # retried a few times, then given up
    for refused in (listing, fetching):
        assert refused.value.reason == "STORAGE_UNAVAILABLE"
        assert endpoint in refused.value.message


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"just some text, not a video\n" * 20, id="text"),
        pytest.param(encode(gradient_image(64, 64), "PNG"), id="png"),
    ],
)
def test_an_object_that_lies_about_its_type_is_fetched_and_then_refused_by_the_probe(
    s3_server: S3Server, store: ObjectStore, bucket: str, spool: Path, body: bytes
) -> None:
    put(s3_server, bucket, "shoot/clip.mp4", body, ContentType="video/mp4")

    spooled = store.fetch(SourceFile(f"s3://{bucket}/shoot/clip.mp4"), spool, max_bytes=LIMIT)

    assert spooled.read_bytes() == body  # the bytes are what they are
    with pytest.raises(InvalidArgument) as refused:
        probe(spooled)
    assert refused.value.reason in ("NOT_A_VIDEO", "CORRUPT_MEDIA")


def test_a_source_lists_and_a_fetcher_spools_each_object_for_one_block(
    s3_server: S3Server, config: BulkIngestConfig, bucket: str, video_bytes: bytes
) -> None:
    put(s3_server, bucket, "library/a.mp4", video_bytes)
    put(s3_server, bucket, "library/b/c.mp4", video_bytes[:100])

    files = list(Source.parse(f"s3://{bucket}/library", config).files(config))
    assert files == [
        SourceFile(f"s3://{bucket}/library/a.mp4", len(video_bytes)),
        SourceFile(f"s3://{bucket}/library/b/c.mp4", 100),
    ]

    fetcher = MediaFetcher(config, ())
    with fetcher.local_path(files[0]) as local:
        assert local.read_bytes() == video_bytes
        assert local.is_relative_to(Path(config.spool_dir))
    assert not local.exists()
    with fetcher.local_path(files[1]) as local:
        assert local.stat().st_size == 100
    assert not local.exists()


def test_stores_in_several_threads_of_one_process_work_side_by_side(
    s3_server: S3Server, config: BulkIngestConfig, bucket: str, spool: Path
) -> None:
    for index in range(8):
        put(s3_server, bucket, f"clip-{index}.mp4", bytes([index]) * 1000)
    fetched: dict[int, bytes] = {}

    def fetch(index: int) -> None:
        store = ObjectStore.from_config(config)
        file = SourceFile(f"s3://{bucket}/clip-{index}.mp4")
        fetched[index] = store.fetch(file, spool, max_bytes=LIMIT).read_bytes()

    threads = [threading.Thread(target=fetch, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert fetched == {index: bytes([index]) * 1000 for index in range(8)}
    assert len(list(spool.iterdir())) == 8  # one spool file each, none shared
