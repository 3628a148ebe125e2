"""The settings that bound every ingested file, declared once for each service that ingests
(the orchestrator's IngestVideos, `clipmesh bulk-ingest`): the same names, defaults and limits,
so a file refused by one is refused by the other for the same reason."""

from __future__ import annotations

from dataclasses import dataclass

from clipmesh.media.probe import MediaLimits
from clipmesh.runtime.config import ServiceConfig, setting


@dataclass(frozen=True)
class MediaIngestConfig(ServiceConfig):
    """How videos are cut into segments and the bounds each file is held to."""

    max_window_s: float = setting(
        10.0,
        help="Longest segment inside one shot; longer shots are split.",
        minimum=0.5,
        maximum=600,
    )
    ingest_max_file_gb: float = setting(
        20.0, help="Largest video file ingest reads, in GiB (checked before hashing).", minimum=0
    )
    ingest_max_duration_s: float = setting(
        4 * 3600.0, help="Longest video ingest accepts.", minimum=1
    )
    ingest_max_frame_side: int = setting(
        8192, help="Longest frame side ingest accepts, in pixels.", minimum=16, maximum=65_536
    )
    ingest_max_frame_megapixels: float = setting(
        36.0,
        help="Most pixels in one frame, in millions (8K is 35.4); the decoders refuse to "
        "allocate larger frames, whatever the file's header claims.",
        minimum=0.01,
    )
    ingest_max_decode_s: float = setting(
        1800.0,
        help="Longest probing and decoding of one file may take, all passes together; a "
        "file past it fails with MEDIA_TOO_SLOW (raise it for videos of several hours).",
        minimum=1,
    )

    def media_limits(self) -> MediaLimits:
        """The bounds every ingested file is held to."""
        return MediaLimits(
            max_file_bytes=int(self.ingest_max_file_gb * (1 << 30)),
            max_duration_s=self.ingest_max_duration_s,
            max_side=self.ingest_max_frame_side,
            max_frame_pixels=int(self.ingest_max_frame_megapixels * 1_000_000),
            max_decode_s=self.ingest_max_decode_s,
        )
