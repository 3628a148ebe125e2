"""Write-ahead log: a write is acknowledged only after its record is on disk (fsync).

Records are framed as `magic | sequence | length | crc32 | payload` in segment files named by
their first sequence number. Concurrent appends are committed together (group commit: one
write and one fsync for everything pending), then applied in log order and only then
acknowledged, so memory never runs ahead of the disk and every caller sees log order.

On open, the log is replayed and verified. A torn record at the very end of the last segment
(a crash mid-write) was never acknowledged and is cut off. Any other damage — a bad checksum
followed by more records, a gap in sequence numbers — refuses start-up: serving from a log
that lies would be worse than not serving.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from clipmesh.runtime.server import StartupError

log = logging.getLogger(__name__)

MAGIC = b"CMW1"
HEADER = struct.Struct("<4sQII")  # magic, sequence, payload length, crc32(payload)
MAX_RECORD_BYTES = 1 << 30


class WalCorruption(StartupError):
    """The log is damaged in a way that cannot be explained by a crash mid-append."""


@dataclass(frozen=True)
class WalRecord:
    """One logged write."""

    sequence: int
    payload: bytes


def _segment_name(first_sequence: int) -> str:
    return f"wal-{first_sequence:020d}.log"


def fsync_path(path: Path) -> None:
    """fsyncs a file or a directory (a directory after creating, renaming or deleting in it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_segment(path: Path, *, is_last: bool) -> tuple[list[WalRecord], int]:
    """Reads one segment; returns its records and the byte length of its valid prefix.

    Raises:
        WalCorruption: damage anywhere but a torn tail of the last segment.
    """
    data = path.read_bytes()
    records: list[WalRecord] = []
    offset = 0
    while offset < len(data):
        torn = f"{path.name}: incomplete record at byte {offset}"
        if offset + HEADER.size > len(data):
            if is_last:
                log.warning("discarding torn tail (never acknowledged): %s", torn)
                break
            raise WalCorruption(torn)
        magic, sequence, length, crc = HEADER.unpack_from(data, offset)
        end = offset + HEADER.size + length
        if magic != MAGIC or length > MAX_RECORD_BYTES:
            raise WalCorruption(f"{path.name}: bad record header at byte {offset}")
        if end > len(data):
            if is_last:
                log.warning("discarding torn tail (never acknowledged): %s", torn)
                break
            raise WalCorruption(torn)
        payload = data[offset + HEADER.size : end]
        if zlib.crc32(payload) != crc:
            if is_last and end == len(data):
                log.warning("discarding torn tail (checksum) in %s at byte %d", path.name, offset)
                break
            raise WalCorruption(
                f"{path.name}: checksum mismatch in record {sequence} at byte {offset}"
            )
        records.append(WalRecord(sequence, payload))
        offset = end
    return records, offset


class WriteAheadLog:
    """An append-only, checksummed, fsynced log of writes in segment files.

    Args:
        directory: Where the segments live (created if missing).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._handle = None
        self._next_sequence = 1
        self._pending: list[tuple[bytes, Callable[[WalRecord], object], asyncio.Future]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._rotate_requested = False
        self._size_bytes = 0

    @property
    def next_sequence(self) -> int:
        """The sequence number the next record will get."""
        return self._next_sequence

    def segments(self) -> list[Path]:
        """Segment files, oldest first."""
        return sorted(self.directory.glob("wal-*.log"))

    def size_bytes(self) -> int:
        """Bytes of log on disk (kept in memory: checked after every write)."""
        return self._size_bytes

    def _measure(self) -> None:
        self._size_bytes = sum(p.stat().st_size for p in self.segments())

    def open(self, *, after_sequence: int = 0) -> list[WalRecord]:
        """Verifies the log, cuts a torn tail, and returns records after `after_sequence`.

        Raises:
            WalCorruption: the log is damaged or has a gap.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        segments = self.segments()
        replay: list[WalRecord] = []
        expected: int | None = None
        for position, path in enumerate(segments):
            is_last = position == len(segments) - 1
            records, valid_bytes = read_segment(path, is_last=is_last)
            if is_last and valid_bytes < path.stat().st_size:
                with path.open("r+b") as handle:
                    handle.truncate(valid_bytes)
                    os.fsync(handle.fileno())
            for record in records:
                if expected is not None and record.sequence != expected:
                    raise WalCorruption(
                        f"{path.name}: sequence gap, expected {expected} got {record.sequence}"
                    )
                expected = record.sequence + 1
                if record.sequence > after_sequence:
                    replay.append(record)
        if expected is None:
            expected = after_sequence + 1
        elif replay and replay[0].sequence != after_sequence + 1:
            raise WalCorruption(
                f"log starts at {replay[0].sequence} but the snapshot ends at {after_sequence}"
            )
        self._next_sequence = max(expected, after_sequence + 1)
        self._open_segment_for_append()
        self._measure()
        return replay

    def _open_segment_for_append(self) -> None:
        segments = self.segments()
        path = segments[-1] if segments else self.directory / _segment_name(self._next_sequence)
        self._handle = path.open("ab")
        if not segments:
            fsync_path(self.directory)

    def request_rotation(self) -> None:
        """Starts a new segment before the next write, so older ones can be dropped later."""
        self._rotate_requested = True

    def _rotate(self, first_sequence: int) -> None:
        if self._handle is not None:
            self._handle.close()
        self._handle = (self.directory / _segment_name(first_sequence)).open("ab")
        fsync_path(self.directory)
        self._rotate_requested = False

    def drop_through(self, sequence: int) -> None:
        """Deletes segments whose records are all at or below `sequence` (snapshotted).

        Call it on the event loop (where sequences are assigned): the open segment is dropped
        too when nothing after `sequence` was assigned and a rotation is pending, because the
        next write then starts a new segment before touching it.
        """
        segments = self.segments()
        for path, following in itertools.pairwise(segments):
            if int(following.name[4:24]) - 1 <= sequence:
                path.unlink()
        if segments and self._rotate_requested and self._next_sequence - 1 <= sequence:
            segments[-1].unlink()
        fsync_path(self.directory)
        self._measure()

    async def append(self, payload: bytes, apply: Callable[[WalRecord], object]) -> int:
        """Logs `payload` durably, then runs `apply(record)` in log order; returns its sequence.

        Appends that arrive while a commit is in progress share the next fsync.
        """
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((payload, apply, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await asyncio.shield(future)

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            records = []
            for payload, _, _ in batch:
                records.append(WalRecord(self._next_sequence, payload))
                self._next_sequence += 1
            try:
                await asyncio.to_thread(self._write, records)
            except Exception as exc:  # a failed disk write fails its callers
                log.exception("write-ahead log append failed")
                self._next_sequence -= len(records)
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for record, (_, apply, future) in zip(records, batch, strict=True):
                try:
                    # Off the event loop: applying may wait for a snapshot's read lock.
                    await asyncio.to_thread(apply, record)
                except Exception as exc:  # reported to that caller only
                    log.exception("applying record %d failed", record.sequence)
                    future.set_exception(exc)
                    continue
                future.set_result(record.sequence)

    def _write(self, records: list[WalRecord]) -> None:
        if self._rotate_requested:
            self._rotate(records[0].sequence)
        frames = b"".join(
            HEADER.pack(MAGIC, r.sequence, len(r.payload), zlib.crc32(r.payload)) + r.payload
            for r in records
        )
        start = self._handle.tell()
        try:
            self._handle.write(frames)
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._size_bytes += len(frames)
        except OSError:
            # Leave no partial frame behind for later records to follow (disk full, I/O error).
            self._handle.truncate(start)
            raise

    def close(self) -> None:
        """Closes the current segment."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
