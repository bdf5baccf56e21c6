"""Working-day deadlines of 异常办件 (docs/cases.md §4): national holidays, make-up days,
a hall's own dates, and a year the national calendar does not cover; the calendar's and
a hall's hours remembered per date."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

import hallwatch.config.hours as hours_module
from aggregator.cases.lifecycle import deadline
from hallwatch import workdays
from hallwatch.config.hours import DayHours, ServiceHoursConfig
from hallwatch.workdays import WorkCalendar
from tests.conftest import build_hall

SH = ZoneInfo("Asia/Shanghai")


def local(y: int, m: int, d: int, hh: int = 10, mm: int = 0) -> datetime:
    """A Shanghai wall-clock time as aware UTC."""
    return datetime(y, m, d, hh, mm, tzinfo=SH).astimezone(UTC)


def midnight(y: int, m: int, d: int) -> datetime:
    """Shanghai midnight at the start of that day, as aware UTC."""
    return local(y, m, d, 0, 0)


def test_national_day_2026_and_its_make_up_saturday() -> None:
    hall = build_hall()
    opened = local(2026, 9, 30)  # Wednesday, the eve of National Day (Oct 1–7 off)
    # Oct 8 (Thu) 1, Oct 9 (Fri) 2, Oct 10 (make-up Sat) 3, Oct 12–16 4–8, Oct 19 9, Oct 20 10
    assert deadline(hall, opened, 10) == midnight(2026, 10, 21)
    # Oct 8, 9, 10 (Sat, 调休), 12, 13 → end of Tuesday Oct 13
    assert deadline(hall, opened, 5) == midnight(2026, 10, 14)
    assert deadline(hall, opened, 3) == midnight(2026, 10, 11)  # ends with the Saturday


def test_make_up_sunday_counts() -> None:
    hall = build_hall()
    opened = local(2026, 9, 18, 15)  # Friday; Sun 2026-09-20 is a make-up working day
    assert deadline(hall, opened, 1) == midnight(2026, 9, 21)
    assert deadline(hall, opened, 2) == midnight(2026, 9, 22)


def test_the_local_day_counts_not_the_utc_day() -> None:
    hall = build_hall()
    opened = datetime(2026, 9, 29, 17, 30, tzinfo=UTC)  # 01:30 on Sep 30 in Shanghai
    assert deadline(hall, opened, 1) == midnight(2026, 10, 9)  # Oct 8 is the first
    assert deadline(hall, opened, 1) == datetime(2026, 10, 8, 16, tzinfo=UTC)


def test_hall_closed_and_working_dates_override_the_national_calendar() -> None:
    hours = {
        "default": {"open": "09:00", "close": "17:00"},
        "closed_dates": ["2026-11-06"],  # a Friday the hall is closed
        "working_dates": ["2026-11-08"],  # a Sunday it works
    }
    hall = build_hall(service_hours=hours)
    opened = local(2026, 11, 5)  # Thursday
    assert deadline(hall, opened, 1) == midnight(2026, 11, 9)  # Sun Nov 8 is the first
    assert deadline(hall, opened, 2) == midnight(2026, 11, 10)
    plain = build_hall()
    assert deadline(plain, opened, 1) == midnight(2026, 11, 7)


def test_uncovered_year_falls_back_to_weekdays_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(workdays, "_warned_years", set())
    hall = build_hall()
    with caplog.at_level(logging.WARNING, logger="hallwatch.workdays"):
        # Thu 2026-12-31 + 1: Fri 2027-01-01 counts (Mon–Fri fallback, no holiday data)
        assert deadline(hall, local(2026, 12, 31), 1) == midnight(2027, 1, 2)
        # Fri 2027-01-01 + 1: the weekend is skipped → Monday Jan 4
        assert deadline(hall, local(2027, 1, 1), 1) == midnight(2027, 1, 5)
    warnings = [r for r in caplog.records if "2027" in r.getMessage()]
    assert len(warnings) == 1


def test_calendar_local_dates_beat_the_fallback() -> None:
    cal = WorkCalendar(days_off=[date(2027, 1, 4)], working_days=[date(2027, 1, 9)])
    assert not cal.is_working_day(date(2027, 1, 4))  # a Monday off
    assert cal.is_working_day(date(2027, 1, 9))  # a Saturday on
    assert cal.add_working_days(date(2027, 1, 1), 2) == date(2027, 1, 6)


def test_the_national_calendar_is_asked_once_a_date_within_a_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The package takes tens of microseconds a date and the supervision clocks ask for
    the same dates after every batch: a calendar remembers its answers, a bounded number
    of dates (emptied when full)."""
    asked: list[date] = []
    real = workdays.chinese_calendar.get_holiday_detail

    def counting(day: date) -> tuple[bool, str | None]:
        asked.append(day)
        return real(day)

    monkeypatch.setattr(workdays.chinese_calendar, "get_holiday_detail", counting)
    monkeypatch.setattr(workdays, "_DETAILS_MAX", 2)
    cal = WorkCalendar()
    oct1, oct10, nov2 = date(2026, 10, 1), date(2026, 10, 10), date(2026, 11, 2)
    assert [cal.national_holiday(d) for d in (oct1, oct10, oct1, oct10)] == [
        True, False, True, False,
    ]  # fmt: skip
    assert asked == [oct1, oct10]
    assert cal.national_holiday(nov2) is None  # a third date: the memory was full
    assert cal.national_holiday(oct1) is True
    assert asked == [oct1, oct10, nov2, oct1]


def test_a_halls_hours_are_worked_out_once_a_date_within_a_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hours = build_hall().service_hours
    asked: list[date] = []
    real = ServiceHoursConfig._hours_on_day

    def counting(self: ServiceHoursConfig, day: date) -> DayHours | None:
        asked.append(day)
        return real(self, day)

    monkeypatch.setattr(ServiceHoursConfig, "_hours_on_day", counting)
    monkeypatch.setattr(hours_module, "_HOURS_ON_MAX", 2)
    oct1, nov2, nov7 = date(2026, 10, 1), date(2026, 11, 2), date(2026, 11, 7)
    got = [hours.hours_on(d) for d in (oct1, nov2, oct1, nov2)]
    assert got[0] is None and got[1] is not None and got[2:] == got[:2]  # holiday, Monday
    assert asked == [oct1, nov2]
    assert hours.hours_on(nov7) is None  # a Saturday, and the memory was full
    assert hours.hours_on(nov2) == got[1]
    assert asked == [oct1, nov2, nov7, nov2]
    # a copy (pydantic would share the private attributes) works out its own, calendar too
    closed = hours.model_copy(update={"closed_dates": [nov2]})
    assert closed.hours_on(nov2) is None and hours.hours_on(nov2) == got[1]
    copy_of_copy = hours.model_copy().model_copy(update={"closed_dates": [nov2]})
    assert copy_of_copy.hours_on(nov2) is None
    local_only = hours.model_copy(update={"national_calendar": False})
    assert local_only.hours_on(oct1) is not None  # a Thursday, no national holiday then
