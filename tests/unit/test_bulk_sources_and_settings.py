"""Bulk ingest without Ray or servers: how SOURCE is read (a directory walked in a stable
order without hidden files, a manifest's lines, refusals naming SOURCE), the settings' own
checks, how workers are planned on a cluster, and the progress line's figures."""

from __future__ import annotations

import pytest

from clipmesh.bulk.config import BulkIngestConfig
from clipmesh.bulk.pipeline import plan_workers
from clipmesh.bulk.progress import Census, ProgressLedger
from clipmesh.bulk.records import FileOutcome, Outcome
from clipmesh.bulk.sources import MediaFetcher, Source, SourceFile
from clipmesh.runtime.config import ConfigError, load_config
from clipmesh.runtime.errors import InvalidArgument, PermissionDenied


def config(**settings: str) -> BulkIngestConfig:
    environ = {BulkIngestConfig.env_name(name): value for name, value in settings.items()}
    return load_config(BulkIngestConfig, environ=environ)


def test_a_directory_is_walked_in_name_order_without_hidden_files(tmp_path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / ".cache").mkdir()
    for name in ("b/2.mp4", "b/1.mp4", "a.mp4", ".hidden.mp4", ".cache/x.mp4"):
        (tmp_path / name).write_bytes(b"x" * len(name))
    (tmp_path / "link.mp4").symlink_to(tmp_path / "a.mp4")
    source = Source.parse(str(tmp_path), config())
    files = list(source.files(config()))
    assert [f.uri for f in files] == [
        str(tmp_path / "a.mp4"),
        str(tmp_path / "b/1.mp4"),
        str(tmp_path / "b/2.mp4"),
        str(tmp_path / "link.mp4"),
    ]
    assert files[0].size_bytes == len("a.mp4") and files[-1].size_bytes == -1
    assert source.roots == (tmp_path.resolve(),)


def test_a_manifest_lists_its_lines_and_roots_default_to_its_directory(tmp_path) -> None:
    manifest = tmp_path / "list.txt"
    manifest.write_text("# comment\n\n /media/a.mp4 \ns3://bucket/b.mp4\n")
    source = Source.parse(str(manifest), config())
    assert list(source.files(config())) == [
        SourceFile("/media/a.mp4"),
        SourceFile("s3://bucket/b.mp4"),
    ]
    assert source.roots == (tmp_path.resolve(),)
    elsewhere = Source.parse(str(manifest), config(allowed_roots="/media,/archive"))
    assert [str(root) for root in elsewhere.roots] == ["/media", "/archive"]


def test_a_missing_or_unreadable_source_is_named(tmp_path) -> None:
    with pytest.raises(InvalidArgument) as missing:
        Source.parse(str(tmp_path / "nope"), config())
    assert missing.value.reason == "SOURCE_NOT_FOUND" and "nope" in missing.value.message


def test_a_local_file_outside_the_roots_is_refused(tmp_path) -> None:
    inside, outside = tmp_path / "in", tmp_path / "out.mp4"
    inside.mkdir()
    outside.write_bytes(b"x")
    fetcher = MediaFetcher(config(), [inside])
    with pytest.raises(PermissionDenied) as refused, fetcher.local_path(SourceFile(str(outside))):
        pass
    assert refused.value.reason == "OUTSIDE_ALLOWED_ROOTS"


def test_settings_are_checked_with_the_setting_named() -> None:
    with pytest.raises(ConfigError, match="CLIPMESH_BULK_INGEST_COLLECTION"):
        config(collection="no-hyphens")
    with pytest.raises(ConfigError, match="CLIPMESH_BULK_INGEST_EMBED_STAGE"):
        config(embed_stage="fused", embed_gpus="1")
    with pytest.raises(ConfigError, match="CLIPMESH_BULK_INGEST_ALLOWED_ROOTS"):
        config(allowed_roots="relative/dir")
    assert config(embed_gpus="1").separate_embedding
    assert not config().separate_embedding
    assert not config(embed_stage="separate", encoder_target="e:1").separate_embedding


def test_workers_are_planned_on_the_cluster() -> None:
    assert plan_workers(config(), {"CPU": 8}) == (8, 0)  # each CPU worker embeds its own
    assert plan_workers(config(embed_stage="separate", embed_workers="2"), {"CPU": 8}) == (6, 2)
    assert plan_workers(config(embed_gpus="1", embed_workers="2"), {"CPU": 8, "GPU": 2}) == (8, 2)
    assert plan_workers(config(cpu_workers="3"), {"CPU": 8}) == (3, 0)


def test_the_progress_line_tells_throughput_and_eta(tmp_path) -> None:
    ledger = ProgressLedger(tmp_path / "report.jsonl", Census(files=4, known_bytes=0))
    ledger.record(FileOutcome("/a.mp4", Outcome.DONE, "v1", segments=3, video_seconds=120.0))
    ledger.record(FileOutcome("/b.mp4", Outcome.FAILED, reason="NOT_A_VIDEO", message="no"))
    totals = ledger.totals()
    ledger.close()
    assert (totals.finished, totals.done, totals.failed, totals.segments) == (2, 1, 1, 3)
    assert totals.failure_reasons == {"NOT_A_VIDEO": 1}
    assert totals.eta_s >= 0 and totals.realtime_factor > 0
    line = totals.line()
    assert "videos 2/4" in line and "failed 1" in line and "ETA" in line
    assert (tmp_path / "report.jsonl").read_text().count("\n") == 2
