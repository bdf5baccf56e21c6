"""Which scheduled reports are due, for a hall, at a local moment (working-day aware).

- ``daily`` (日报): on every working day at ``daily_report_at`` (before 17:00, the
  reporting deadline). Its period runs from the previous working day's cut-off to this
  day's cut-off, so data of weekends and holidays goes with the first working day after
  them (Art. 12: "周末、节假日期间产生的办件数据,在上班第一天同步报送").
- ``monthly`` (月度统计): the previous calendar month, due from the first working day of
  the month at ``daily_report_at`` ("每月5日前上报"); when no working day falls on the
  1st … 5th (National Day week), on the 1st.
- ``bulletin`` (通报): the previous month's ranking, due from the last working day on or
  before the 25th ("每月25日前通报"); the 25th if the 1st … 25th hold no working day.

A report stays due until it is produced (the runner skips those already in
``report_runs``), so a missed monthly or bulletin run is caught up at the next tick.

Example:
    >>> from datetime import datetime, time
    >>> from hallwatch.workdays import WorkCalendar
    >>> due = due_reports(datetime(2026, 11, 2, 16, 0), WorkCalendar(), time(16, 0))
    >>> [(d.kind.value, d.period) for d in due]
    [('daily', '2026-11-02'), ('monthly', '2026-10')]
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum

from hallwatch.workdays import WorkCalendar

MONTHLY_BY_DAY = 5
BULLETIN_BY_DAY = 25


class ReportKind(StrEnum):
    """Kinds of scheduled report."""

    DAILY = "daily"
    MONTHLY = "monthly"
    BULLETIN = "bulletin"


@dataclass(frozen=True, slots=True)
class DueReport:
    """A report that should exist: its kind and period key (``YYYY-MM-DD`` or ``YYYY-MM``)."""

    kind: ReportKind
    period: str


def previous_month(day: date) -> str:
    """``YYYY-MM`` of the month before ``day``'s."""
    first = day.replace(day=1) - timedelta(days=1)
    return f"{first.year:04d}-{first.month:02d}"


def monthly_day(year: int, month: int, calendar: WorkCalendar) -> date:
    """The day the previous month's statistics are produced in ``year``-``month``."""
    for d in range(1, MONTHLY_BY_DAY + 1):
        if calendar.is_working_day(date(year, month, d)):
            return date(year, month, d)
    return date(year, month, 1)


def bulletin_day(year: int, month: int, calendar: WorkCalendar) -> date:
    """The day the previous month's bulletin is produced in ``year``-``month``."""
    for d in range(BULLETIN_BY_DAY, 0, -1):
        if calendar.is_working_day(date(year, month, d)):
            return date(year, month, d)
    return date(year, month, BULLETIN_BY_DAY)


def previous_cutoff_day(day: date, calendar: WorkCalendar) -> date:
    """The working day before ``day`` (where the previous daily period ended)."""
    prev = day - timedelta(days=1)
    for _ in range(366):
        if calendar.is_working_day(prev):
            return prev
        prev -= timedelta(days=1)
    return day - timedelta(days=1)


def due_reports(local_now: datetime, calendar: WorkCalendar, daily_at: time) -> list[DueReport]:
    """The reports due at ``local_now`` (naive, hall-local), in kind order.

    Args:
        local_now: The hall's local time.
        calendar: The hall's working days.
        daily_at: Local time of day reports are produced at.

    Returns:
        ``daily`` for today once ``daily_at`` has passed on a working day; ``monthly`` and
        ``bulletin`` for the previous month from their day's ``daily_at`` on.
    """
    today = local_now.date()
    at_or_after = local_now.time() >= daily_at
    due: list[DueReport] = []
    if calendar.is_working_day(today) and at_or_after:
        due.append(DueReport(ReportKind.DAILY, today.isoformat()))
    prev = previous_month(today)
    for kind, day in (
        (ReportKind.MONTHLY, monthly_day(today.year, today.month, calendar)),
        (ReportKind.BULLETIN, bulletin_day(today.year, today.month, calendar)),
    ):
        if today > day or (today == day and at_or_after):
            due.append(DueReport(kind, prev))
    return due
