"""What a bulk ingest tells its operator: a JSON-lines report with every file's outcome, the
running totals (videos, segments, video-hours, throughput, ETA), and the summary at the end.

Each report line is written and flushed as the file's outcome is known, so a driver killed
mid-run leaves a report that is true up to that moment.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from clipmesh.bulk import metrics
from clipmesh.bulk.records import FileOutcome, Outcome


@dataclass(frozen=True)
class Census:
    """What the source lists: its files and their bytes (-1 bytes where a manifest does not
    say)."""

    files: int
    known_bytes: int


@dataclass(frozen=True)
class Totals:
    """The run so far, or at its end (the summary).

    Attributes:
        listed: Files the source lists.
        finished: Files with an outcome.
        done, duplicates, failed: Files by outcome.
        segments: Segments written.
        video_seconds: Seconds of video written.
        wall_s: Seconds since the pipeline started.
        failure_reasons: Failed files by reason.
        eta_s: Seconds left at the current rate; -1 until it can be told.
    """

    listed: int
    finished: int
    done: int
    duplicates: int
    failed: int
    segments: int
    video_seconds: float
    wall_s: float
    failure_reasons: dict[str, int]
    eta_s: float = -1.0

    @property
    def realtime_factor(self) -> float:
        """Seconds of video written per second of wall time."""
        return self.video_seconds / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def videos_per_s(self) -> float:
        return self.finished / self.wall_s if self.wall_s > 0 else 0.0

    def line(self) -> str:
        """One progress line for people."""
        eta = f" · ETA {_duration(self.eta_s)}" if self.eta_s >= 0 else ""
        return (
            f"videos {self.finished}/{self.listed} (done {self.done}, duplicate "
            f"{self.duplicates}, failed {self.failed}) · segments {self.segments} · "
            f"{self.video_seconds / 3600:.2f} video-hours · {self.realtime_factor:.0f}× real "
            f"time · {self.videos_per_s:.2f} videos/s{eta}"
        )

    def as_dict(self) -> dict:
        fields = dataclasses.asdict(self)
        fields["realtime_factor"] = round(self.realtime_factor, 2)
        fields["videos_per_s"] = round(self.videos_per_s, 3)
        # The driver's own memory, which must stay flat however large the library is.
        fields["driver_peak_rss_mb"] = round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
        )
        return fields


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class ProgressLedger:
    """Counts outcomes, writes the report, and says how the run stands.

    Args:
        report_path: The JSON-lines report (replaced at the start of a run); None for none.
        census: What the source lists, for the ETA.
    """

    def __init__(self, report_path: Path | None, census: Census) -> None:
        self._census = census
        self._started = time.monotonic()
        self._outcomes: Counter[Outcome] = Counter()
        self._reasons: Counter[str] = Counter()
        self._segments = 0
        self._video_seconds = 0.0
        self._file: IO[str] | None = None
        if report_path is not None:
            report_path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(report_path, "w", encoding="utf-8", buffering=1)  # noqa: SIM115
        metrics.FILES_LISTED.set(census.files)

    def record(self, outcome: FileOutcome) -> None:
        """One file's outcome: counted, reported, measured."""
        self._outcomes[outcome.outcome] += 1
        metrics.VIDEOS.labels(outcome.outcome.value).inc()
        if outcome.outcome == Outcome.FAILED:
            self._reasons[outcome.reason] += 1
            metrics.FAILURES.labels(outcome.reason).inc()
        self._segments += outcome.segments
        self._video_seconds += outcome.video_seconds
        metrics.VIDEO_SECONDS.inc(outcome.video_seconds)
        if self._file is not None:
            line = dataclasses.asdict(outcome)
            line["outcome"] = outcome.outcome.value
            line["at_s"] = round(time.monotonic() - self._started, 3)
            self._file.write(json.dumps(line, ensure_ascii=False) + "\n")

    def totals(self) -> Totals:
        finished = sum(self._outcomes.values())
        wall_s = time.monotonic() - self._started
        remaining = self._census.files - finished
        eta_s = wall_s / finished * remaining if finished and remaining >= 0 else -1.0
        return Totals(
            listed=self._census.files,
            finished=finished,
            done=self._outcomes[Outcome.DONE],
            duplicates=self._outcomes[Outcome.DUPLICATE],
            failed=self._outcomes[Outcome.FAILED],
            segments=self._segments,
            video_seconds=self._video_seconds,
            wall_s=wall_s,
            failure_reasons=dict(self._reasons),
            eta_s=eta_s,
        )

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
