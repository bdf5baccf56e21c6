"""Catch-up of the report scheduler: the aggregator down across a daily report time, a
weekend, the 25th and a month end, the 5th; the look-back bound; a fresh install does not
backfill; running the tick again produces nothing twice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from aggregator.reports.runs import ReportRun, ReportRunner, RunResult
from aggregator.reports.schedule import (
    DueReport,
    ReportKind,
    due_at,
    due_reports,
    missed_reports,
)
from aggregator.store.state import StateStore
from aggregator.store.timeseries import SqliteTimeSeriesStore
from hallwatch.workdays import WorkCalendar
from tests.test_anomaly_register import case_hall

H = "h-cases"
AT = time(16, 0)
CAL = WorkCalendar()


def local(y: int, mo: int, d: int, hh: int, mm: int = 0) -> datetime:
    """A hall-local (Asia/Shanghai) moment as UTC."""
    return datetime(y, mo, d, hh, mm, tzinfo=case_hall().tzinfo).astimezone(UTC)


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[ReportRunner]:
    state = StateStore(f"sqlite:///{tmp_path / 'c.sqlite'}")
    state.create_all()
    series = SqliteTimeSeriesStore(":memory:")
    yield ReportRunner(state, series, {H: case_hall()}, tmp_path / "reports", AT)
    series.close()
    state.dispose()


def made(results: list[RunResult]) -> list[tuple[str, str]]:
    return [(r.json_path.parent.name, r.json_path.stem) for r in results]


def run_rows(runner: ReportRunner) -> list[tuple[str, str, str]]:
    with runner.state.read_session() as s:
        rows = s.execute(select(ReportRun.hall, ReportRun.kind, ReportRun.period)).all()
        return sorted((h, k, p) for h, k, p in rows)


def test_down_across_daily_times(runner: ReportRunner) -> None:
    assert made(runner.tick(local(2026, 11, 23, 16, 0))) == [
        ("daily", "2026-11-23"),
        ("monthly", "2026-10"),
    ]
    # down from Monday 16:05 to Wednesday 16:30: Tuesday's and Wednesday's dailies
    assert made(runner.tick(local(2026, 11, 25, 16, 30))) == [
        ("daily", "2026-11-24"),
        ("daily", "2026-11-25"),
        ("bulletin", "2026-10"),
    ]
    before = run_rows(runner)
    assert runner.tick(local(2026, 11, 25, 16, 31)) == []
    assert run_rows(runner) == before and len(before) == 5


def test_down_across_a_weekend(runner: ReportRunner) -> None:
    runner.tick(local(2026, 11, 20, 16, 1))  # Friday
    # back on Tuesday morning: Monday's daily only (no weekend days, Tuesday not yet due)
    assert made(runner.tick(local(2026, 11, 24, 9, 0))) == [("daily", "2026-11-23")]
    assert made(runner.tick(local(2026, 11, 24, 16, 0))) == [("daily", "2026-11-24")]
    dailies = [p for _, k, p in run_rows(runner) if k == "daily"]
    assert dailies == ["2026-11-20", "2026-11-23", "2026-11-24"]


def test_down_across_the_25th_and_month_end(runner: ReportRunner) -> None:
    runner.tick(local(2026, 10, 22, 16, 1))  # daily + the September statistics
    # down from Thursday Oct 22 to Tuesday Nov 3, 10:00: the September bulletin (due Fri
    # Oct 23) and the October statistics (due Mon Nov 2) were missed, and 7 dailies
    got = made(runner.tick(local(2026, 11, 3, 10, 0)))
    assert got == [
        ("daily", "2026-10-23"),
        ("bulletin", "2026-09"),
        ("daily", "2026-10-26"),
        ("daily", "2026-10-27"),
        ("daily", "2026-10-28"),
        ("daily", "2026-10-29"),
        ("daily", "2026-10-30"),
        ("daily", "2026-11-02"),
        ("monthly", "2026-10"),
    ]
    assert runner.tick(local(2026, 11, 3, 10, 1)) == []
    assert (runner.report_dir / "all" / "bulletin" / "2026-09.json").is_file()


def test_down_across_the_5th(runner: ReportRunner) -> None:
    runner.tick(local(2026, 10, 30, 16, 0))
    # down from Friday Oct 30 to Monday Nov 9: the statistics due Nov 2 and five dailies
    got = made(runner.tick(local(2026, 11, 9, 8, 0)))
    assert got == [
        ("daily", "2026-11-02"),
        ("monthly", "2026-10"),
        ("daily", "2026-11-03"),
        ("daily", "2026-11-04"),
        ("daily", "2026-11-05"),
        ("daily", "2026-11-06"),
    ]
    assert runner.tick(local(2026, 11, 9, 8, 1)) == []


def test_look_back_is_bounded(runner: ReportRunner) -> None:
    runner.tick(local(2026, 11, 2, 16, 0))
    got = made(runner.tick(local(2026, 11, 30, 9, 0)))  # down four weeks
    dailies = [p for k, p in got if k == "daily"]
    assert dailies == ["2026-11-19", "2026-11-20", "2026-11-23", "2026-11-24",
                       "2026-11-25", "2026-11-26", "2026-11-27"]  # fmt: skip
    assert ("bulletin", "2026-10") in got  # due Nov 25, within the look-back
    runner.catch_up_days = 0
    assert made(runner.tick(local(2026, 12, 2, 16, 0))) == [  # no Dec 1 daily
        ("daily", "2026-12-02"),
        ("monthly", "2026-11"),  # due Dec 1: still the previous month's, not a catch-up
    ]


def test_fresh_install_does_not_backfill(runner: ReportRunner) -> None:
    # first start ever on Wednesday: no dailies of Monday and Tuesday
    assert made(runner.tick(local(2026, 11, 25, 16, 0))) == [
        ("daily", "2026-11-25"),
        ("monthly", "2026-10"),
        ("bulletin", "2026-10"),
    ]
    # down Thursday; back Friday: Thursday caught up, nothing before the first run
    assert made(runner.tick(local(2026, 11, 27, 16, 0))) == [
        ("daily", "2026-11-26"),
        ("daily", "2026-11-27"),
    ]
    with runner.state.read_session() as s:
        assert s.scalar(select(func.count()).select_from(ReportRun)) == 5


def test_due_reports_catch_up_order() -> None:
    now = datetime(2026, 11, 3, 10, 0)
    since = datetime(2026, 10, 22, 16, 1)
    plain = due_reports(now, CAL, AT)
    assert plain == [DueReport(ReportKind.MONTHLY, "2026-10")]
    full = due_reports(now, CAL, AT, catch_up_from=since)
    assert full[-1] == plain[0] and len(full) == len(set(full)) == 9
    moments = [due_at(r, CAL, AT) for r in full]
    assert moments == sorted(moments) and all(since <= m <= now for m in moments)
    assert missed_reports(now, CAL, AT, since, days=0) == []
    assert missed_reports(now, CAL, AT, datetime(2026, 11, 2, 16, 0), days=7) == [
        DueReport(ReportKind.DAILY, "2026-11-02"),
        DueReport(ReportKind.MONTHLY, "2026-10"),
    ]
    assert due_at(DueReport(ReportKind.BULLETIN, "2026-12"), CAL, AT) == datetime(
        2027, 1, 25, 16, 0
    )
