"""`clipmesh bulk-ingest s3://bucket/prefix` against a local S3 protocol server (moto's server
mode) and a real local Ray cluster: objects are listed, streamed into the spool and ingested
with the ids their bytes give anywhere; an object that lies about its type fails alone; the
workers find the credentials where the driver does (a shared credentials file), and the command
names a missing bucket and refused credentials before it starts any work."""

from __future__ import annotations

import hashlib

import pytest
import pytest_asyncio

from clipmesh.bulk import pipeline
from clipmesh.demo.library import make_library
from tests.bulk import bulk_config, bulk_environ, bulk_run, held_videos, report_lines
from tests.mesh import TINY_ENCODER_ENV
from tests.support import run_cli

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(mesh_factory, tmp_path_factory):
    async with mesh_factory.in_process("encoder", "index") as running:
        running.media = tmp_path_factory.mktemp("media")
        yield running


@pytest.fixture
def aws_files(s3_server, tmp_path, monkeypatch):
    """The server's key in a shared credentials file, the only place anything may find it."""
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[default]\n"
        f"aws_access_key_id = {s3_server.access_key_id}\n"
        f"aws_secret_access_key = {s3_server.secret_access_key}\n"
    )
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_REGION", s3_server.environment()["AWS_REGION"])
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return credentials


async def test_a_prefix_is_streamed_and_ingested_with_content_ids(
    mesh, s3_server, aws_files, ray_cluster, tmp_path
) -> None:
    specs = make_library(mesh.media / "s3", count=3, seed=21)
    bucket = s3_server.create_bucket()
    client = s3_server.client()
    for spec in specs:
        client.upload_file(str(spec.path), bucket, f"library/{spec.path.name}")
    client.put_object(
        Bucket=bucket,
        Key="library/lies.mp4",
        Body=b"<html>not a video</html>",
        ContentType="video/mp4",
    )
    client.put_object(Bucket=bucket, Key="elsewhere/other.mp4", Body=b"not listed")
    spool = tmp_path / "spool"
    config = bulk_config(
        mesh.target("index"),
        tmp_path,
        collection="s3",
        s3_endpoint_url=s3_server.endpoint_url,
        spool_dir=spool,
    )
    report = tmp_path / "report.jsonl"
    try:
        totals = await bulk_run(
            f"s3://{bucket}/library/",
            config,
            mesh.configs["encoder"],
            ray_address=ray_cluster.address,
            report=report,
        )
    finally:
        pipeline.disconnect()

    assert (totals.listed, totals.done, totals.failed) == (4, 3, 1)
    lines = report_lines(report)
    assert lines[f"s3://{bucket}/library/lies.mp4"]["reason"] == "NOT_A_VIDEO"
    held = await held_videos(mesh, "s3")
    expected = {hashlib.sha256(spec.path.read_bytes()).hexdigest(): spec for spec in specs}
    assert held.keys() == expected.keys(), "the ids are not those the bytes give"
    for sha, video in held.items():
        assert video.meta.uri == f"s3://{bucket}/library/{expected[sha].path.name}"
        assert video.meta.title == expected[sha].path.stem
    assert not any(spool.rglob("*.mp4")), "a spooled object was left behind"


async def test_the_command_names_a_missing_bucket_and_refused_credentials(
    mesh, s3_server, aws_files, tmp_path, monkeypatch
) -> None:
    environ = {
        **bulk_environ(mesh.target("index"), tmp_path, s3_endpoint_url=s3_server.endpoint_url),
        **TINY_ENCODER_ENV,
    }
    for name, value in environ.items():
        monkeypatch.setenv(name, value)

    code, _, err = await run_cli("bulk-ingest", "s3://no-such-bucket-here/", "--dry-run")
    assert code == 1 and "BUCKET_NOT_FOUND" in err and "no-such-bucket-here" in err

    bucket = s3_server.create_bucket()
    aws_files.write_text("[default]\naws_access_key_id = AKIAWRONG\naws_secret_access_key = x\n")
    code, _, err = await run_cli("bulk-ingest", f"s3://{bucket}/", "--dry-run")
    assert code == 1 and "STORAGE_ACCESS_DENIED" in err
