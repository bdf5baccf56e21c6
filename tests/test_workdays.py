"""Working-day deadlines of 异常办件 (docs/cases.md §4): national holidays, make-up days,
a hall's own dates, and a year the national calendar does not cover."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from aggregator.cases.lifecycle import deadline
from hallwatch import workdays
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
