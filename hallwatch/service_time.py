"""Service-time arithmetic: how much of an interval the hall was serving.

Supervision clocks (离岗, and later wait clocks) only run while the hall serves: between
opening and closing on an open day (weekday or make-up working day, not a closed date),
and not during a lunch break the hall closes for. Hours are written in the hall's
timezone; every argument and result here is a timezone-aware datetime.

Example:
    >>> from datetime import UTC, datetime
    >>> from hallwatch.config.models import HallConfig
    >>> hall = HallConfig.model_validate({
    ...     "hall": {"id": "h1", "name": "演示大厅"},
    ...     "cameras": [{"id": "c1", "url": "demo.mp4", "width": 640, "height": 480}],
    ...     "posts": [{"id": "w1", "name": "1号窗口", "kind": "front_desk", "camera": "c1",
    ...                "polygon": [[0, 0], [100, 0], [100, 100]]}]})
    >>> # Monday 2026-11-02, 11:50 → 13:40 Beijing time: 10 min before lunch, 10 after.
    >>> start = datetime(2026, 11, 2, 3, 50, tzinfo=UTC)
    >>> in_service_seconds(hall, start, datetime(2026, 11, 2, 5, 40, tzinfo=UTC))
    1200.0
    >>> when_in_service_reaches(hall, start, 900)
    datetime.datetime(2026, 11, 2, 5, 35, tzinfo=datetime.timezone.utc)
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta

from hallwatch.config.models import DayHours, HallConfig

HORIZON_DAYS = 400
"""How far ahead :func:`when_in_service_reaches` looks before giving up."""


def _check_aware(*values: datetime) -> None:
    for value in values:
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass timezone-aware times")


def day_periods(hours: DayHours) -> list[tuple[time, time]]:
    """Local service periods of one open day: ``[open, close)`` minus a closed lunch."""
    if hours.lunch_closed and hours.lunch_start is not None and hours.lunch_end is not None:
        return [(hours.open, hours.lunch_start), (hours.lunch_end, hours.close)]
    return [(hours.open, hours.close)]


def _periods_from(hall: HallConfig, day: date, days: int) -> Iterator[tuple[datetime, datetime]]:
    """UTC service periods of ``days`` local days starting at ``day``, in order."""
    tz = hall.tzinfo
    for offset in range(days):
        d = day + timedelta(days=offset)
        hours = hall.service_hours.hours_on(d)
        if hours is None:
            continue
        for a, b in day_periods(hours):
            yield (
                datetime.combine(d, a, tzinfo=tz).astimezone(UTC),
                datetime.combine(d, b, tzinfo=tz).astimezone(UTC),
            )


def service_periods(
    hall: HallConfig, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The parts of ``[start, end)`` in service time, as UTC ``(from, to)`` pairs.

    Args:
        hall: The hall's configuration (timezone, service hours).
        start: Interval start (aware).
        end: Interval end (aware); ``end <= start`` gives an empty list.
    """
    _check_aware(start, end)
    if end <= start:
        return []
    tz = hall.tzinfo
    first = start.astimezone(tz).date()
    last = end.astimezone(tz).date()
    out: list[tuple[datetime, datetime]] = []
    for a, b in _periods_from(hall, first, (last - first).days + 1):
        lo, hi = max(a, start), min(b, end)
        if lo < hi:
            out.append((lo.astimezone(UTC), hi.astimezone(UTC)))
    return out


def in_service_seconds(hall: HallConfig, start: datetime, end: datetime) -> float:
    """Seconds of ``[start, end)`` that fall in the hall's service time (0 if end <= start)."""
    return sum((hi - lo).total_seconds() for lo, hi in service_periods(hall, start, end))


def when_in_service_reaches(hall: HallConfig, start: datetime, seconds: float) -> datetime | None:
    """The earliest moment ``t >= start`` with ``in_service_seconds(start, t) >= seconds``.

    Args:
        hall: The hall's configuration.
        start: Where counting starts (aware).
        seconds: Service seconds to accumulate; ``<= 0`` returns ``start``.

    Returns:
        That moment (UTC), or None if the hall does not serve that long within
        :data:`HORIZON_DAYS` days (e.g. it never opens).
    """
    _check_aware(start)
    start = start.astimezone(UTC)
    if seconds <= 0:
        return start
    remaining = float(seconds)
    first = start.astimezone(hall.tzinfo).date()
    for a, b in _periods_from(hall, first, HORIZON_DAYS):
        lo = max(a, start)
        if lo >= b:
            continue
        length = (b - lo).total_seconds()
        if remaining <= length:
            return lo + timedelta(seconds=remaining)
        remaining -= length
    return None


def next_in_service(hall: HallConfig, at: datetime) -> datetime | None:
    """``at`` if the hall serves then, else the start of its next service period.

    Returns:
        A UTC moment, or None if the hall does not open within :data:`HORIZON_DAYS` days.
    """
    _check_aware(at)
    at = at.astimezone(UTC)
    first = at.astimezone(hall.tzinfo).date()
    for a, b in _periods_from(hall, first, HORIZON_DAYS):
        if at < b:
            return max(a, at)
    return None
