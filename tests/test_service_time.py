"""Service-time arithmetic, table-tested (hall: Mon–Fri 09:00–17:00, lunch 12:00–13:30)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from hallwatch.config.models import HallConfig
from hallwatch.service_time import (
    in_service_seconds,
    next_in_service,
    service_periods,
    when_in_service_reaches,
)
from tests.conftest import build_hall

SH = ZoneInfo("Asia/Shanghai")
DAYS = {"mon": 2, "tue": 3, "wed": 4, "thu": 5, "fri": 6, "sat": 7, "sun": 8, "mon2": 9}


def at(text: str) -> datetime:
    """``"mon 10:00"`` → aware UTC time of that Shanghai wall-clock time, in the week of
    Monday 2026-11-02 (``mon2`` is the next Monday)."""
    day, hhmm = text.split()
    parts = [int(p) for p in hhmm.split(":")]
    local = datetime(2026, 11, DAYS[day], parts[0], parts[1], parts[2] if len(parts) > 2 else 0)
    return local.replace(tzinfo=SH).astimezone(UTC)


LUNCH_CLOSED = build_hall(lunch_closed=True)
LUNCH_OPEN = build_hall(lunch_closed=False)
HOLIDAYS = build_hall(
    service_hours={
        "closed_dates": ["2026-11-04"],
        "working_dates": ["2026-11-07"],
    }
)
NEVER_OPEN = build_hall(service_hours={"open_weekdays": []})
FRIDAY_SHORT = build_hall(
    service_hours={
        "open_weekdays": ["mon", "tue", "wed", "thu", "fri"],
        "per_weekday": {"fri": {"open": "09:00", "close": "16:00", "lunch_start": None,
                                "lunch_end": None}},
    }
)  # fmt: skip


@pytest.mark.parametrize(
    ("hall", "start", "end", "seconds"),
    [
        pytest.param(LUNCH_CLOSED, "mon 10:00", "mon 10:30", 1800, id="morning"),
        pytest.param(LUNCH_CLOSED, "mon 11:50", "mon 13:40", 1200, id="lunch-closed"),
        pytest.param(LUNCH_OPEN, "mon 11:50", "mon 13:40", 6600, id="lunch-open"),
        pytest.param(LUNCH_CLOSED, "mon 12:10", "mon 13:20", 0, id="inside-lunch"),
        pytest.param(LUNCH_CLOSED, "mon 08:00", "mon 09:10", 600, id="before-open"),
        pytest.param(LUNCH_CLOSED, "mon 16:50", "mon 18:00", 600, id="after-close"),
        pytest.param(LUNCH_CLOSED, "mon 17:00", "tue 09:00", 0, id="overnight"),
        pytest.param(LUNCH_CLOSED, "sat 10:00", "sat 11:00", 0, id="weekend"),
        pytest.param(LUNCH_CLOSED, "fri 16:00", "mon2 10:00", 7200, id="over-weekend"),
        pytest.param(LUNCH_CLOSED, "mon 00:00", "tue 00:00", 23400, id="whole-day"),
        pytest.param(LUNCH_OPEN, "mon 00:00", "tue 00:00", 28800, id="whole-day-lunch-open"),
        pytest.param(HOLIDAYS, "wed 10:00", "wed 11:00", 0, id="closed-date"),
        pytest.param(HOLIDAYS, "sat 10:00", "sat 11:00", 3600, id="make-up-working-day"),
        pytest.param(FRIDAY_SHORT, "fri 15:30", "fri 17:00", 1800, id="per-weekday-hours"),
        pytest.param(LUNCH_CLOSED, "mon 10:30", "mon 10:00", 0, id="end-before-start"),
        pytest.param(NEVER_OPEN, "mon 00:00", "sun 23:00", 0, id="never-open"),
    ],
)
def test_in_service_seconds(hall: HallConfig, start: str, end: str, seconds: float) -> None:
    assert in_service_seconds(hall, at(start), at(end)) == seconds


@pytest.mark.parametrize(
    ("hall", "start", "seconds", "expected"),
    [
        pytest.param(LUNCH_CLOSED, "mon 10:00", 1800, "mon 10:30", id="morning"),
        pytest.param(LUNCH_CLOSED, "mon 11:50", 900, "mon 13:35", id="over-lunch-closed"),
        pytest.param(LUNCH_OPEN, "mon 11:50", 900, "mon 12:05", id="over-lunch-open"),
        pytest.param(LUNCH_CLOSED, "mon 11:00", 3600, "mon 12:00", id="exactly-to-lunch"),
        pytest.param(LUNCH_CLOSED, "mon 08:00", 60, "mon 09:01", id="before-open"),
        pytest.param(LUNCH_CLOSED, "mon 12:30", 60, "mon 13:31", id="from-lunch"),
        pytest.param(LUNCH_CLOSED, "fri 16:55", 600, "mon2 09:05", id="over-weekend"),
        pytest.param(HOLIDAYS, "tue 16:55", 600, "thu 09:05", id="over-closed-date"),
        pytest.param(LUNCH_CLOSED, "mon 10:00", 0, "mon 10:00", id="zero"),
        pytest.param(LUNCH_CLOSED, "sat 10:00", 0, "sat 10:00", id="zero-outside-service"),
        pytest.param(NEVER_OPEN, "mon 10:00", 60, None, id="never-open"),
    ],
)
def test_when_in_service_reaches(
    hall: HallConfig, start: str, seconds: float, expected: str | None
) -> None:
    result = when_in_service_reaches(hall, at(start), seconds)
    assert result == (at(expected) if expected else None)
    if result is not None:
        assert in_service_seconds(hall, at(start), result) == pytest.approx(seconds)
        assert result.tzinfo is not None


@pytest.mark.parametrize(
    ("hall", "moment", "expected"),
    [
        pytest.param(LUNCH_CLOSED, "mon 10:00", "mon 10:00", id="in-service"),
        pytest.param(LUNCH_CLOSED, "mon 08:30", "mon 09:00", id="before-open"),
        pytest.param(LUNCH_CLOSED, "mon 12:15", "mon 13:30", id="lunch-closed"),
        pytest.param(LUNCH_OPEN, "mon 12:15", "mon 12:15", id="lunch-open"),
        pytest.param(LUNCH_CLOSED, "fri 17:30", "mon2 09:00", id="weekend"),
        pytest.param(NEVER_OPEN, "mon 10:00", None, id="never-open"),
    ],
)
def test_next_in_service(hall: HallConfig, moment: str, expected: str | None) -> None:
    assert next_in_service(hall, at(moment)) == (at(expected) if expected else None)


@pytest.mark.parametrize("hall", [LUNCH_CLOSED, LUNCH_OPEN, HOLIDAYS, FRIDAY_SHORT])
def test_agrees_with_config_is_in_service(hall: HallConfig) -> None:
    """Every 7 minutes over a week: a second counts iff the config says it is in service."""
    t = at("mon 00:00")
    while t < at("sun 23:59"):
        counted = in_service_seconds(hall, t, t + timedelta(seconds=1)) == 1
        assert counted == hall.is_in_service(t), t.astimezone(SH)
        t += timedelta(minutes=7)


def test_periods_are_utc_and_clipped() -> None:
    periods = service_periods(LUNCH_CLOSED, at("mon 11:00"), at("mon 14:00"))
    assert periods == [(at("mon 11:00"), at("mon 12:00")), (at("mon 13:30"), at("mon 14:00"))]
    assert all(a.utcoffset() == timedelta(0) for a, _ in periods)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        in_service_seconds(LUNCH_CLOSED, datetime(2026, 11, 2, 10), at("mon 11:00"))
