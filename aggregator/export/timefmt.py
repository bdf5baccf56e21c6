"""Timestamps of exports: ISO 8601 with the hall's offset, or GB/T 39046 style.

Example:
    >>> from datetime import UTC, datetime
    >>> from zoneinfo import ZoneInfo
    >>> at = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
    >>> format_time(at, ZoneInfo("Asia/Shanghai"), TimeFormat.ISO)
    '2026-11-02T10:00:00+08:00'
    >>> format_time(at, ZoneInfo("Asia/Shanghai"), TimeFormat.GBT)
    '2026-11-02 10:00:00'
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from enum import StrEnum


class TimeFormat(StrEnum):
    """How times are written in an export."""

    ISO = "iso"
    """ISO 8601 in the hall's timezone, with its offset: ``2026-11-02T10:00:00+08:00``."""
    GBT = "gbt"
    """GB/T 39046 style, hall-local: ``yyyy-MM-dd HH:mm:ss`` (``2026-11-02 10:00:00``)."""


def format_time(at: datetime | None, tz: tzinfo, fmt: TimeFormat) -> str | None:
    """``at`` (timezone-aware) in ``tz``, written as ``fmt`` (None stays None)."""
    if at is None:
        return None
    local = at.astimezone(tz)
    if fmt is TimeFormat.GBT:
        return local.strftime("%Y-%m-%d %H:%M:%S")
    return local.isoformat(timespec="seconds")
