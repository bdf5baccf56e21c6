"""Service hours (办公时间) of a hall: open weekdays, daily hours, lunch breaks, holidays.

:class:`ServiceHoursConfig` is the ``service_hours`` section of a hall configuration
(:class:`hallwatch.config.models.HallConfig`); it answers whether the hall serves at a
given hall-local time, which is when off-post rules apply.
"""

from __future__ import annotations

import itertools
import re
from datetime import date, datetime, time
from enum import StrEnum
from typing import Any, Self

from pydantic import Field, PrivateAttr, field_validator, model_validator

from hallwatch.config.errors import Loc, _Base, _raise_if
from hallwatch.memo import BoundedMemo
from hallwatch.workdays import WorkCalendar

_HOURS_ON_MAX = 4096
"""Dates a :class:`ServiceHoursConfig` remembers the hours of (emptied when full)."""
_TIME_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")


def _parse_hhmm(value: Any) -> Any:
    """Accept ``"HH:MM"``/``"H:MM"``/``"HH:MM:SS"`` strings and ``time``; refuse numbers."""
    if isinstance(value, time) or value is None:
        return value
    if isinstance(value, str):
        m = _TIME_RE.match(value.strip())
        if m:
            return time(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))
    raise ValueError('expected a time written as a quoted "HH:MM" string, e.g. "08:30"')


class Weekday(StrEnum):
    """Days of the week, as written in the YAML."""

    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"

    @classmethod
    def of(cls, day: date) -> Weekday:
        """The weekday of a date."""
        return list(cls)[day.weekday()]


class DayHours(_Base):
    """Opening hours of one day, with an optional lunch break (午休)."""

    open: time = Field(description='Opening time, "HH:MM".')
    close: time = Field(description='Closing time, "HH:MM".')
    lunch_start: time | None = Field(
        default=None, description='Lunch break (午休) start, "HH:MM"; null: no break.'
    )
    lunch_end: time | None = Field(
        default=None, description='Lunch break end, "HH:MM"; null: no break.'
    )
    lunch_closed: bool = Field(
        default=True,
        description="True: the hall closes at lunch (no off-post alerts then). "
        "False: it keeps serving (午间不打烊) and off-post rules apply.",
    )

    @field_validator("open", "close", "lunch_start", "lunch_end", mode="before")
    @classmethod
    def _parse_times(cls, value: Any) -> Any:
        return _parse_hhmm(value)

    @model_validator(mode="after")
    def _ordered(self) -> DayHours:
        if (self.lunch_start is None) != (self.lunch_end is None):
            missing = "lunch_end" if self.lunch_end is None else "lunch_start"
            _raise_if([((missing,), "set both lunch_start and lunch_end, or neither")])
        names = ["open", "lunch_start", "lunch_end", "close"]
        seq = [(n, t) for n in names if (t := getattr(self, n)) is not None]
        for (first, t1), (second, t2) in itertools.pairwise(seq):
            if t2 <= t1:  # blame the lunch break rather than the opening hours
                if first == "lunch_end":
                    msg = f"{first} {t1:%H:%M} must be before {second} {t2:%H:%M}"
                    _raise_if([((first,), msg)])
                _raise_if([((second,), f"{second} {t2:%H:%M} must be after {first} {t1:%H:%M}")])
        return self

    def is_open_at(self, t: time) -> bool:
        """Whether the hall serves at local time ``t`` on a day with these hours."""
        if not self.open <= t < self.close:
            return False
        if self.lunch_closed and self.lunch_start is not None and self.lunch_end is not None:
            return not self.lunch_start <= t < self.lunch_end
        return True


def _default_hours() -> DayHours:
    return DayHours(open=time(9), close=time(17), lunch_start=time(12), lunch_end=time(13, 30))


def _workdays() -> list[Weekday]:
    return [Weekday.MON, Weekday.TUE, Weekday.WED, Weekday.THU, Weekday.FRI]


class ServiceHoursConfig(_Base):
    """办公时间: when the hall serves, so when off-post rules apply."""

    open_weekdays: list[Weekday] = Field(
        default_factory=_workdays,
        max_length=7,
        description="Weekdays the hall opens (mon … sun); weekends closed by default.",
    )
    default: DayHours = Field(
        default_factory=_default_hours,
        description="Hours of every open weekday not in per_weekday.",
    )
    per_weekday: dict[Weekday, DayHours] = Field(
        default_factory=dict,
        description="Hours of particular weekdays (e.g. sat), replacing default. "
        "Each key must be in open_weekdays.",
    )
    closed_dates: list[date] = Field(
        default_factory=list,
        description="Dates the hall is closed (holidays, 节假日), YYYY-MM-DD.",
    )
    working_dates: list[date] = Field(
        default_factory=list,
        description="Make-up working days (调休上班日) on a closed weekday; default hours.",
    )
    national_calendar: bool = Field(
        default=True,
        description="Follow the national holiday calendar (法定节假日 closed, 调休 make-up "
        "days open with default hours) on top of open_weekdays; closed_dates and "
        "working_dates override it. Also the working-day calendar of case deadlines.",
    )

    _calendar: WorkCalendar | None = PrivateAttr(default=None)
    _hours_on: BoundedMemo[date, DayHours | None] | None = PrivateAttr(default=None)

    def __copy__(self) -> Self:
        """A copy (``model_copy``, which may change fields) works out its own calendar and
        hours: pydantic would share the original's private attributes."""
        copied = super().__copy__()
        copied._calendar = None
        copied._hours_on = None
        return copied

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        copied = super().__deepcopy__(memo)
        copied._calendar = None
        copied._hours_on = None
        return copied

    @model_validator(mode="after")
    def _consistent(self) -> ServiceHoursConfig:
        problems: list[tuple[Loc, str]] = []
        seen: set[Weekday] = set()
        for i, day in enumerate(self.open_weekdays):
            if day in seen:
                problems.append((("open_weekdays", i), f"{day.value} is listed twice"))
            seen.add(day)
        for day in self.per_weekday:
            if day not in seen:
                msg = f"{day.value} has hours but is not in open_weekdays; add it there"
                problems.append((("per_weekday", day.value), msg))
        closed = set(self.closed_dates)
        for i, d in enumerate(self.working_dates):
            if d in closed:
                problems.append((("working_dates", i), f"{d} is also in closed_dates"))
        _raise_if(problems)
        return self

    def calendar(self) -> WorkCalendar:
        """The hall's working-day calendar (national calendar plus its own dates)."""
        cal = self._calendar
        if cal is None:
            cal = WorkCalendar(
                self.closed_dates, self.working_dates, national=self.national_calendar
            )
            self._calendar = cal
        return cal

    def hours_on(self, day: date) -> DayHours | None:
        """The hours that apply on a local date, or ``None`` if the hall is closed
        (remembered per date, as :meth:`calendar` is: a config is not changed in place; a
        copy works out its own)."""
        memo = self._hours_on
        if memo is None:
            memo = self._hours_on = BoundedMemo(self._hours_on_day, _HOURS_ON_MAX)
        return memo(day)

    def _hours_on_day(self, day: date) -> DayHours | None:
        if day in self.closed_dates:
            return None
        if day in self.working_dates:
            return self.default
        holiday = self.calendar().national_holiday(day)
        if holiday is True:
            return None  # 法定节假日
        weekday = Weekday.of(day)
        if holiday is False and weekday not in self.open_weekdays:
            return self.default  # 调休: a weekend made a working day
        if weekday not in self.open_weekdays:
            return None
        return self.per_weekday.get(weekday, self.default)

    def is_in_service(self, local_dt: datetime) -> bool:
        """Whether the hall serves at a naive hall-local date and time."""
        hours = self.hours_on(local_dt.date())
        return hours is not None and hours.is_open_at(local_dt.time())
