"""Working days (工作日) on the Chinese calendar: public holidays and make-up days (调休).

National holidays and make-up working days come from the maintained ``chinesecalendar``
package (it follows the State Council's yearly notice); a hall adds its own days off and
extra working days in its config (``service_hours.closed_dates`` / ``working_dates``).
For a year the package does not cover yet (the notice for next year comes out in
November), the calendar falls back to the hall's open weekdays and logs a warning once
per year: update the package when the notice is out.

Example:
    >>> from datetime import date
    >>> cal = WorkCalendar()
    >>> cal.is_working_day(date(2026, 10, 1)), cal.is_working_day(date(2026, 10, 10))
    (False, True)
    >>> # Appeal deadline: 10 working days after Wednesday 2026-09-30 (National Day).
    >>> cal.add_working_days(date(2026, 9, 30), 10)
    datetime.date(2026, 10, 20)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import date, timedelta

import chinese_calendar

from hallwatch.memo import BoundedMemo

logger = logging.getLogger(__name__)

_WEEKDAYS = frozenset(range(5))
_warned_years: set[int] = set()
_warn_lock = threading.Lock()
_DETAILS_MAX = 4096
"""Dates a :class:`WorkCalendar` remembers the national calendar's word on (emptied when
full)."""


class WorkCalendar:
    """Which dates are working days, for one hall.

    Args:
        days_off: Local days off (the hall closes): never working days.
        working_days: Local extra working days: always working days (unless also in
            ``days_off``, which config validation forbids).
        open_weekdays: Weekday numbers (Monday = 0) that are working days in a year the
            national calendar does not cover, or with ``national=False``; Monday to
            Friday by default.
        national: Follow the national calendar (holidays, make-up days). False: only
            weekdays and the local lists (a hall that keeps its own calendar).
    """

    def __init__(
        self,
        days_off: Iterable[date] = (),
        working_days: Iterable[date] = (),
        *,
        open_weekdays: Iterable[int] = _WEEKDAYS,
        national: bool = True,
    ) -> None:
        self.days_off = frozenset(days_off)
        self.working_days = frozenset(working_days)
        self.open_weekdays = frozenset(open_weekdays)
        self.national = national
        self._details = BoundedMemo(self._national_detail, _DETAILS_MAX)

    def national_status(self, day: date) -> bool | None:
        """Whether ``day`` is a national working day; ``None`` if the year is not covered."""
        detail = self._detail(day)
        if detail is None:
            return None
        is_holiday, name = detail
        return not is_holiday if name is not None else day.weekday() < 5

    def national_holiday(self, day: date) -> bool | None:
        """True on a public holiday (法定节假日, in lieu days included), False on a make-up
        working day (调休), ``None`` on an ordinary day or a year not covered."""
        detail = self._detail(day)
        if detail is None or detail[1] is None:
            return None
        return bool(detail[0])

    def _detail(self, day: date) -> tuple[bool, str | None] | None:
        """The national calendar's word on ``day``, remembered: the package takes tens of
        microseconds a date, and the supervision clocks ask for the same few dates again
        and again (service time of every absent post, after every batch of facts)."""
        if not self.national:
            return None
        return self._details(day)

    @staticmethod
    def _national_detail(day: date) -> tuple[bool, str | None] | None:
        try:
            is_holiday, name = chinese_calendar.get_holiday_detail(day)
            return bool(is_holiday), name
        except NotImplementedError:
            with _warn_lock:
                if day.year not in _warned_years:
                    _warned_years.add(day.year)
                    logger.warning(
                        "the installed chinesecalendar does not cover %d: working days of "
                        "that year are the open weekdays plus the hall's own dates; upgrade "
                        "the package once the State Council publishes the holidays",
                        day.year,
                    )
            return None

    def is_working_day(self, day: date) -> bool:
        """Whether ``day`` is a working day in this hall."""
        if day in self.days_off:
            return False
        if day in self.working_days:
            return True
        national = self.national_status(day)
        if national is not None:
            return national
        return day.weekday() in self.open_weekdays

    def add_working_days(self, start: date, n: int) -> date:
        """The ``n``-th working day after ``start`` (``start`` itself not counted).

        A deadline of "within 10 working days" of an event on ``start`` ends at the end of
        ``add_working_days(start, 10)``.

        Raises:
            ValueError: ``n`` is negative.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        day = start
        while n > 0:
            day += timedelta(days=1)
            if self.is_working_day(day):
                n -= 1
        return day

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in ``(start, end]``: how many of a deadline's days have passed."""
        count = 0
        day = start
        while day < end:
            day += timedelta(days=1)
            count += self.is_working_day(day)
        return count
