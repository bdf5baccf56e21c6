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

Catch-up (:func:`missed_reports`): reports whose time passed while the aggregator was down
are due too, bounded twice: only those of the last ``catch_up_days`` working days before
today (the dailies of those days, and a monthly or bulletin whose time fell within them),
and none due before ``catch_up_from`` (the hall's first report ever: a fresh install does
not backfill). Missed reports come first, oldest first.

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
CATCH_UP_WORKING_DAYS = 7
"""Default look-back of the catch-up: the dailies of this many working days before today."""
_KIND_ORDER = {"daily": 0, "monthly": 1, "bulletin": 2}


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


def next_month(month: str) -> tuple[int, int]:
    """(year, month) after ``YYYY-MM``."""
    year, mon = int(month[:4]), int(month[5:7])
    return (year + 1, 1) if mon == 12 else (year, mon + 1)


def due_at(report: DueReport, calendar: WorkCalendar, daily_at: time) -> datetime:
    """The local moment ``report`` became due (naive, hall-local).

    Example:
        >>> due_at(DueReport(ReportKind.MONTHLY, "2026-09"), WorkCalendar(), time(16, 0))
        datetime.datetime(2026, 10, 1, 16, 0)
    """
    if report.kind is ReportKind.DAILY:
        return datetime.combine(date.fromisoformat(report.period), daily_at)
    year, month = next_month(report.period)
    day_of = monthly_day if report.kind is ReportKind.MONTHLY else bulletin_day
    return datetime.combine(day_of(year, month, calendar), daily_at)


def missed_reports(
    local_now: datetime,
    calendar: WorkCalendar,
    daily_at: time,
    since: datetime,
    days: int = CATCH_UP_WORKING_DAYS,
) -> list[DueReport]:
    """Reports due on a day before today, within the look-back, at or after ``since``,
    oldest first.

    Args:
        local_now: The hall's local time (naive).
        calendar: The hall's working days.
        daily_at: Local time of day reports are produced at.
        since: Local moment before which nothing is caught up.
        days: Working days before today to look back (0: none).

    Returns:
        The dailies of the last ``days`` working days before today, and the monthly and
        bulletin runs whose time fell between the earliest of those days' cut-off and now;
        only those due at or after ``since``.
    """
    today = local_now.date()
    working: list[date] = []
    day = today
    for _ in range(days * 7 + 366):
        if len(working) >= days:
            break
        day -= timedelta(days=1)
        if calendar.is_working_day(day):
            working.append(day)
    if not working:
        return []
    start = max(datetime.combine(working[-1], daily_at), since)
    found = [DueReport(ReportKind.DAILY, d.isoformat()) for d in working]
    year, month = working[-1].year, working[-1].month
    while (year, month) <= (today.year, today.month):
        prev = previous_month(date(year, month, 1))
        found += [DueReport(ReportKind.MONTHLY, prev), DueReport(ReportKind.BULLETIN, prev)]
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    moments = {r: due_at(r, calendar, daily_at) for r in found}
    due = [r for r, at in moments.items() if start <= at <= local_now and at.date() < today]
    return sorted(due, key=lambda r: (moments[r], _KIND_ORDER[r.kind.value]))


def due_reports(
    local_now: datetime,
    calendar: WorkCalendar,
    daily_at: time,
    *,
    catch_up_from: datetime | None = None,
    catch_up_days: int = CATCH_UP_WORKING_DAYS,
) -> list[DueReport]:
    """The reports due at ``local_now`` (naive, hall-local): missed ones, then today's.

    Args:
        local_now: The hall's local time.
        calendar: The hall's working days.
        daily_at: Local time of day reports are produced at.
        catch_up_from: Catch up reports missed since this local moment (None: none).
        catch_up_days: Look-back of the catch-up, in working days before today.

    Returns:
        With ``catch_up_from``, first :func:`missed_reports` (due before today, oldest
        first); then, not listed already, ``daily`` for today once ``daily_at`` has passed
        on a working day, and ``monthly`` and ``bulletin`` for the previous month from
        their day's ``daily_at`` on (kind order).
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
    if catch_up_from is None:
        return due
    missed = missed_reports(local_now, calendar, daily_at, catch_up_from, catch_up_days)
    return missed + [r for r in due if r not in missed]
