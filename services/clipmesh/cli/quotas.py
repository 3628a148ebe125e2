"""How quotas read in a terminal: amounts in the units people think in, resets as a time.

The API counts ingest in bytes and generation in seconds of video; a person reads "48.2 GiB"
and "1 h 30 min" faster than 51754816307 and 5400. Bytes use binary units, as the policy's
limits do (`50GiB`), and a reset time says when (UTC) and how long until then.
"""

from __future__ import annotations

from datetime import UTC, datetime

from rich.filesize import pick_unit_and_suffix

from clipmesh.runtime.policy import Quota

_BYTE_SUFFIXES = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
_DURATION_PARTS = (("h", 3600), ("min", 60), ("s", 1))


def quota_unit(quota: str) -> str:
    """The unit a quota counts in ("bytes", "seconds", "jobs"), or "" for one this release
    does not know."""
    try:
        return Quota(quota).unit
    except ValueError:
        return ""


def human_amount(value: float | None, unit: str) -> str:
    """`value` of `unit` for people: "48.2 GiB", "1 h 30 min", "3 jobs"; None is "unlimited"."""
    if value is None:
        return "unlimited"
    if unit == "bytes":
        return human_bytes(value)
    if unit == "seconds":
        return human_duration(value)
    if unit == "jobs":
        return f"{_plain(value)} job" + ("" if value == 1 else "s")
    return f"{_plain(value)} {unit}".rstrip()


def human_bytes(size: float) -> str:
    """A size in binary units with one decimal ("1.5 GiB"); whole bytes below 1 KiB."""
    base, suffix = pick_unit_and_suffix(int(size), _BYTE_SUFFIXES, 1024)
    if base == 1:
        return f"{int(size)} B"
    return f"{size / base:.1f} {suffix}"


def human_duration(seconds: float) -> str:
    """A duration in its two largest parts ("1 h 30 min", "2 min 5 s"); below a minute, in
    seconds as given ("12.5 s")."""
    if seconds < 60:
        return f"{_plain(seconds)} s"
    remaining = round(seconds)
    parts = []
    for suffix, size in _DURATION_PARTS:
        count, remaining = divmod(remaining, size)
        if count or parts:
            parts.append((count, suffix))
    return " ".join(f"{count} {suffix}" for count, suffix in parts[:2] if count)


def human_reset(when: datetime, now: datetime | None = None) -> str:
    """When a daily quota resets: "2026-12-03 00:00 UTC (in 4 h 12 min)"."""
    now = now or datetime.now(UTC)
    left_s = (when - now).total_seconds()
    moment = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if left_s <= 0:
        return f"{moment} (now)"
    return f"{moment} (in {human_duration(left_s)})"


def _plain(value: float) -> str:
    """A number without a needless ".0"."""
    return str(int(value)) if value == int(value) else f"{value:.1f}"
