"""Timestamps of exports: ISO 8601 with the hall's offset, or GB/T 39046 style.

:func:`format_time` writes one time; :func:`format_times` writes a column of them
(microseconds since the epoch) with numpy and pyarrow, the same text as
:func:`format_time` gives for each: every distinct second is written once, and the
timezone's offset is looked up per run of equal offsets (found by bisection), not per row.

Example:
    >>> from datetime import UTC, datetime
    >>> from zoneinfo import ZoneInfo
    >>> at = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
    >>> format_time(at, ZoneInfo("Asia/Shanghai"), TimeFormat.ISO)
    '2026-11-02T10:00:00+08:00'
    >>> format_time(at, ZoneInfo("Asia/Shanghai"), TimeFormat.GBT)
    '2026-11-02 10:00:00'
    >>> import numpy as np
    >>> us = np.array([1793584800_000000, 1793584800_500000], dtype=np.int64)
    >>> format_times(us, ZoneInfo("Europe/Berlin"), TimeFormat.ISO).to_pylist()
    ['2026-11-02T03:00:00+01:00', '2026-11-02T03:00:00+01:00']
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone, tzinfo
from enum import StrEnum

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc


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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STEADY_S = 6 * 3600
"""Two offset changes of a timezone are never closer than this: a span whose ends have the
same offset and that is at most this long has that offset throughout."""


def format_times(time_us: npt.NDArray[np.int64], tz: tzinfo, fmt: TimeFormat) -> pa.StringArray:
    """UTC times (microseconds since the epoch) written as ``fmt`` in ``tz``, vectorised.

    The text of each time equals :func:`format_time`'s (sub-second digits dropped).
    Sorted input is cheapest (points of one instant share one text).
    """
    n = int(time_us.shape[0])
    if n == 0:
        return pa.array([], pa.string())
    seconds = np.floor_divide(time_us, 1_000_000)
    starts = np.empty(n, dtype=bool)
    starts[0] = True
    np.not_equal(seconds[1:], seconds[:-1], out=starts[1:])
    distinct = seconds[starts]
    offsets = utc_offsets(distinct, tz)
    local = pa.array(distinct + offsets, pa.timestamp("s")).cast(pa.string())  # "Y-m-d H:M:S"
    if fmt is TimeFormat.ISO:
        values, codes = np.unique(offsets, return_inverse=True)
        suffix = pa.array([_offset_text(int(v)) for v in values]).take(pa.array(codes))
        local = pc.binary_join_element_wise(
            pc.replace_substring(local, " ", "T", max_replacements=1), suffix, ""
        )
    return local.take(pa.array(np.cumsum(starts) - 1))


def utc_offsets(seconds: npt.NDArray[np.int64], tz: tzinfo) -> npt.NDArray[np.int64]:
    """The UTC offset of ``tz`` (seconds) at each time (seconds since the epoch).

    Python's timezone is asked at the ends of spans, halved until each span's ends agree
    and it is at most 6 hours long: a few calls per chunk of points, not one per point.
    """
    order = np.argsort(seconds, kind="stable")
    ordered = seconds[order]
    out = np.empty(ordered.shape[0], dtype=np.int64)
    known: dict[int, int] = {}

    def offset(i: int) -> int:
        if i not in known:
            at = _EPOCH + timedelta(seconds=int(ordered[i]))
            delta = at.astimezone(tz).utcoffset() or timedelta(0)
            known[i] = int(delta.total_seconds())
        return known[i]

    spans = [(0, ordered.shape[0] - 1)]
    while spans:
        lo, hi = spans.pop()
        first, last = offset(lo), offset(hi)
        if first == last and ordered[hi] - ordered[lo] <= _STEADY_S:
            out[lo : hi + 1] = first
        elif hi - lo <= 1:
            out[lo], out[hi] = first, last
        else:
            mid = (lo + hi) // 2
            spans += [(lo, mid), (mid, hi)]
    result = np.empty_like(out)
    result[order] = out
    return result


def _offset_text(seconds: int) -> str:
    """``+08:00`` as :meth:`datetime.isoformat` writes an offset of ``seconds``."""
    zone = timezone(timedelta(seconds=seconds))
    return datetime(2000, 1, 1, tzinfo=zone).isoformat(timespec="seconds")[19:]
