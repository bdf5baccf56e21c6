"""Scheduled reports: the daily report's figures on a fixture day (per window, per
department, hall totals), its files (byte-stable: fixed workbook times), idempotent
production, the push (success, 5xx retried, unreachable then retried at the next tick),
the schedule across a week with holidays and a month end, monthly statistics and the
bulletin ranking, the API."""

from __future__ import annotations

import json
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from pydantic import SecretStr, ValidationError
from sqlalchemy import func, select

from aggregator.api.deps import ApiServices, Caller, Role, get_caller
from aggregator.cases.models import Anomaly, TicketCall
from aggregator.reports.daily import department_days
from aggregator.reports.monthly import bulletin_document, monthly_document, rank
from aggregator.reports.push import push_report
from aggregator.reports.runs import PushState, PushTarget, ReportRun, ReportRunner, daily_period
from aggregator.reports.schedule import ReportKind, due_reports
from aggregator.scores import ScoreInputs
from aggregator.settings import AggregatorSettings
from aggregator.store.state import Alert, StateStore
from aggregator.store.timeseries import (
    MEASUREMENT_RATING,
    MEASUREMENT_TICKET,
    MEASUREMENT_WAIT,
    Point,
    SqliteTimeSeriesStore,
)
from hallwatch.config.models import HallConfig
from hallwatch.workdays import WorkCalendar
from tests.support.api import signed_in_app
from tests.test_anomaly_register import case_hall

H = "h-cases"
DAY = "2026-11-23"  # a Monday; its period starts Friday 2026-11-20 16:00 (08:00 UTC)
FRI_CUT = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
MON_CUT = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
AT = time(16, 0)


def anomaly(n: int, window: str | None, at: datetime, **kw: Any) -> Anomaly:
    return Anomaly(
        id=f"an-{n}",
        hall=H,
        dedup_key=f"manual:{n}",
        kind=kw.get("kind", "wait_over_limit"),
        state="open",
        level=kw.get("level", "warning"),
        window=window,
        source="manual",
        opened=at,
        appeal_deadline=at + timedelta(days=14),
        created_at=at,
        updated_at=at,
    )


def alert(n: int, kind: str, start: datetime, end: datetime | None, **kw: Any) -> Alert:
    return Alert(
        id=f"al-{n}",
        hall=H,
        kind=kind,
        state="open" if end is None else "resolved",
        start=start,
        end=end,
        opened_at=start,
        resolved_at=end,
        **kw,
    )


def call(n: int, window: str, at: datetime) -> TicketCall:
    return TicketCall(
        fact_id=f"f{n}", hall=H, ticket_id=f"A{n}", at=at, window=window, staff=None, payload={}
    )


@dataclass
class Env:
    state: StateStore
    series: SqliteTimeSeriesStore
    hall: HallConfig
    runner: ReportRunner
    tmp: Path


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    state = StateStore(f"sqlite:///{tmp_path / 'r.sqlite'}")
    state.create_all()
    series = SqliteTimeSeriesStore(":memory:")
    hall = case_hall()
    m = timedelta(minutes=1)
    with state.session() as s:
        s.add_all(
            [
                anomaly(1, "1", datetime(2026, 11, 21, 2, tzinfo=UTC)),  # Saturday: in
                anomaly(2, "1", MON_CUT - 5 * 60 * m, level="red"),
                anomaly(3, "2", MON_CUT - 4 * 60 * m, kind="bad_rating"),
                anomaly(4, "1", FRI_CUT - m),  # before the period
                anomaly(5, "1", MON_CUT),  # after it (exclusive end)
                alert(1, "off_post", MON_CUT - 10 * m, None, window="1", post="p1"),
                alert(2, "off_post", FRI_CUT - 30 * m, FRI_CUT + 20 * m, window="3", post="p3"),
                alert(3, "hygiene_bad", MON_CUT - 7 * 60 * m, MON_CUT - 390 * m, zone="z1"),
                alert(4, "device_offline", MON_CUT - 120 * m, None, device="cam-1"),
                alert(5, "hygiene_bad", FRI_CUT - 60 * m, None, zone="z1"),  # started before
                call(1, "1", MON_CUT - 6 * 60 * m),
                call(2, "1", MON_CUT - 5 * 60 * m),
                call(3, "2", FRI_CUT - m),  # before
            ]
        )
    t = MON_CUT - timedelta(hours=3)
    series.write(
        [
            Point(MEASUREMENT_RATING, {"hall": H, "level": "dissatisfied", "window": "2"},
                  {"bad": 1, "evaluation": 1}, t, "r1"),
            Point(MEASUREMENT_RATING, {"hall": H, "level": "satisfied", "window": "1"},
                  {"bad": 0, "evaluation": 1}, t, "r2"),
            Point(MEASUREMENT_RATING, {"hall": H, "level": "satisfied", "window": "1"},
                  {"bad": 0, "evaluation": 2}, t, "r3"),  # follow-up: not counted
            Point(MEASUREMENT_WAIT, {"hall": H, "service": "A"},
                  {"waited_s": 1800.0, "limit_s": 1200.0, "leg": 1}, t, "w1"),
            Point(MEASUREMENT_WAIT, {"hall": H, "service": "A"},
                  {"waited_s": 1500.0, "limit_s": 1200.0, "leg": 1}, t, "w2"),
            Point(MEASUREMENT_TICKET, {"hall": H, "service": "A", "event": "issued"},
                  {"count": 1}, t, "t1"),
            Point(MEASUREMENT_TICKET, {"hall": H, "service": "A", "event": "called"},
                  {"count": 1}, t, "t2"),
        ]
    )  # fmt: skip
    runner = ReportRunner(state, series, {H: hall}, tmp_path / "reports", AT)
    yield Env(state, series, hall, runner, tmp_path)
    series.close()
    state.dispose()


def test_daily_figures(env: Env) -> None:
    assert daily_period(date(2026, 11, 23), env.hall, AT).since == FRI_CUT
    doc = env.runner.document(ReportKind.DAILY, H, DAY)
    assert doc["since"] == "2026-11-20T16:00:00+08:00"
    assert doc["until"] == "2026-11-23T16:00:00+08:00"
    w = {x["window"]: x for x in doc["windows"]}
    assert (w["1"]["warnings"], w["1"]["red_cards"], w["1"]["cases_handled"]) == (1, 1, 2)
    assert w["1"]["off_post_minutes"] == 10.0  # open alert runs to the cut-off
    assert w["3"]["off_post_minutes"] == 20.0  # clipped at the period's start
    assert (w["2"]["warnings"], w["2"]["bad_ratings"], w["2"]["cases_handled"]) == (0, 1, 0)
    assert doc["anomalies_by_kind"] == {"bad_rating": 1, "wait_over_limit": 2}
    assert doc["ratings_by_level"] == {"dissatisfied": 1, "satisfied": 1}
    assert doc["tickets_by_event"] == {"called": 1, "issued": 1}
    assert doc["waits"] == {"count": 2, "longest_s": 1800.0}
    assert [(i["kind"], i["subject"], i["minutes"]) for i in doc["incidents"]] == [
        ("hygiene_bad", "z1", 30.0),
        ("device_offline", "cam-1", 120.0),
    ]
    assert doc["totals"]["off_post_minutes"] == 30.0
    assert doc["totals"]["hygiene_bad"] == 1 and doc["totals"]["device_offline"] == 1


def test_daily_departments(env: Env) -> None:
    doc = env.runner.document(ReportKind.DAILY, H, DAY)
    depts = {d["department"]: d for d in doc["departments"]}
    assert [d["department"] for d in doc["departments"]] == ["social", "tax", None]
    assert (depts["tax"]["name"], depts["tax"]["windows"]) == ("县税务局", ["1"])
    tax = depts["tax"]
    assert (tax["warnings"], tax["red_cards"], tax["cases_handled"]) == (1, 1, 2)
    assert tax["off_post_minutes"] == 10.0
    assert (depts["social"]["windows"], depts["social"]["bad_ratings"]) == (["2"], 1)
    assert (depts[None]["name"], depts[None]["windows"]) == ("", ["3"])  # no department
    assert depts[None]["off_post_minutes"] == 20.0
    totals = doc["totals"]
    assert sum(d["off_post_minutes"] for d in doc["departments"]) == totals["off_post_minutes"]
    assert sum(d["cases_handled"] for d in doc["departments"]) == totals["cases_called"]
    assert sum(d["bad_ratings"] for d in doc["departments"]) == totals["bad_ratings"]
    env.runner.produce(ReportKind.DAILY, H, DAY, MON_CUT)
    path = env.runner.paths(H, "daily", DAY)[1]
    sheet = load_workbook(path)["departments"]
    rows = [[c.value for c in r] for r in sheet.iter_rows()]
    assert rows[0][:3] == ["department", "name", "windows"]
    assert rows[2][:3] == ["tax", "县税务局", "1"] and rows[3][0] is None


def test_department_days_lists_every_department() -> None:
    hall = case_hall()
    extra = [*hall.departments, hall.departments[0].model_copy(update={"id": "zz", "name": "Z"})]
    hall = hall.model_copy(update={"departments": extra})
    windows = (
        ScoreInputs("1", "tax", warnings=2, off_post_minutes=1.25),
        ScoreInputs("4", "tax", warnings=1, off_post_minutes=2.5),
        ScoreInputs("9", "gone"),  # a department not configured: counted without one
    )
    got = {d.department: d for d in department_days(windows, hall)}
    assert list(got) == ["social", "tax", "zz", None]
    assert (got["tax"].windows, got["tax"].warnings, got["tax"].off_post_minutes) == (
        ("1", "4"),
        3,
        3.75,
    )
    assert got["zz"].windows == () and got["zz"].warnings == 0 and got[None].windows == ("9",)
    assert [d.department for d in department_days(windows[:2], hall)] == ["social", "tax", "zz"]


def test_files_written_and_produced_twice_same(env: Env) -> None:
    now = datetime(2026, 11, 23, 8, 1, tzinfo=UTC)
    first = env.runner.produce(ReportKind.DAILY, H, DAY, now)
    assert first.changed and first.push_state == PushState.OFF
    doc = json.loads(first.json_path.read_text(encoding="utf-8"))
    assert doc["hall"] == H and doc["day"] == DAY
    sheets = load_workbook(first.xlsx_path).sheetnames
    assert sheets == ["summary", "windows", "departments", "incidents"]
    json_bytes, xlsx_bytes = first.json_path.read_bytes(), first.xlsx_path.read_bytes()
    with zipfile.ZipFile(first.xlsx_path) as z:  # no clock in the file: same bytes later
        assert {i.date_time for i in z.infolist()} == {(2000, 1, 1, 0, 0, 0)}
        assert b"<dcterms:modified" in z.read("docProps/core.xml")
        assert b"2000-01-01T00:00:00Z</dcterms:modified>" in z.read("docProps/core.xml")
    second = env.runner.produce(ReportKind.DAILY, H, DAY, now + timedelta(days=3))
    assert (second.digest, second.run_id, second.changed) == (first.digest, first.run_id, False)
    assert first.json_path.read_bytes() == json_bytes
    assert first.xlsx_path.read_bytes() == xlsx_bytes
    with env.state.read_session() as s:
        assert s.scalar(select(func.count()).select_from(ReportRun)) == 1
        assert s.scalars(select(ReportRun.produced_at)).one() == now
    # a late fact changes the digest: same row, new digest
    with env.state.session() as s:
        s.add(anomaly(9, "2", MON_CUT - timedelta(hours=1)))
    third = env.runner.produce(ReportKind.DAILY, H, DAY, now + timedelta(days=4))
    assert third.changed and third.run_id == first.run_id and third.digest != first.digest


@dataclass
class Endpoint:
    statuses: list[int]
    bodies: list[dict[str, Any]] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)


@pytest.fixture
def endpoint() -> Iterator[tuple[str, Endpoint]]:
    ep = Endpoint(statuses=[])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            ep.bodies.append(json.loads(self.rfile.read(length)))
            ep.auth.append(self.headers.get("Authorization"))
            self.send_response(ep.statuses.pop(0) if ep.statuses else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/reports", ep
    server.shutdown()
    server.server_close()


def no_sleep(_s: float) -> None:
    return None


def test_push_outcomes(endpoint: tuple[str, Endpoint]) -> None:
    url, ep = endpoint
    assert push_report(url, {"a": 1}, sleep=no_sleep).attempts == 1
    ep.statuses[:] = [500, 503]
    out = push_report(url, {"a": 2}, sleep=no_sleep)
    assert (out.ok, out.attempts, out.status) == (True, 3, 200)
    ep.statuses[:] = [400]
    out = push_report(url, {"a": 3}, sleep=no_sleep)
    assert (out.ok, out.attempts, out.error) == (False, 1, "HTTP 400")  # 4xx: final
    with pytest.raises(ValueError):
        push_report("ftp://x/y", {})


def test_runner_push_retry_and_next_tick(env: Env, endpoint: tuple[str, Endpoint]) -> None:
    url, ep = endpoint
    env.runner.push = PushTarget(url, SecretStr("tok"), retries=2, backoff_s=0.0)
    ep.statuses[:] = [500]
    result = env.runner.produce(ReportKind.DAILY, H, DAY, MON_CUT)
    assert result.push_state == PushState.SENT
    assert len(ep.bodies) == 2 and ep.auth[-1] == "Bearer tok"
    assert ep.bodies[-1]["digest"] == result.digest and ep.bodies[-1]["report"]["day"] == DAY
    again = env.runner.produce(ReportKind.DAILY, H, DAY, MON_CUT)
    assert again.push_state == PushState.SENT and len(ep.bodies) == 2  # not pushed twice
    # unreachable: failed, reported; the next tick pushes it
    env.runner.push = PushTarget("http://127.0.0.1:9/x", retries=1, backoff_s=0.0, timeout_s=2)
    monthly = env.runner.produce(ReportKind.MONTHLY, H, "2026-10", MON_CUT)
    assert monthly.push_state == PushState.FAILED
    with env.state.read_session() as s:
        row = s.get(ReportRun, monthly.run_id)
        assert row is not None and row.push_attempts == 2 and row.push_error
    env.runner.push = PushTarget(url, retries=0)
    env.runner.tick(datetime(2026, 11, 22, 2, 0, tzinfo=UTC))  # a Sunday: nothing new due
    with env.state.read_session() as s:
        row = s.get(ReportRun, monthly.run_id)
        assert row is not None and (row.push_state, row.push_attempts) == ("sent", 3)
    assert ep.bodies[-1]["report"]["kind"] == "monthly"


def test_schedule_across_national_day() -> None:
    cal = WorkCalendar()

    def due(y: int, mo: int, d: int, hh: int, mm: int = 0) -> list[tuple[str, str]]:
        return [(x.kind.value, x.period) for x in due_reports(datetime(y, mo, d, hh, mm), cal, AT)]

    # Sep 25 (Mid-Autumn) is off: the August bulletin was due from Thursday Sep 24
    assert due(2026, 9, 24, 15, 59) == [("monthly", "2026-08")]
    assert due(2026, 9, 24, 16) == [("daily", "2026-09-24"), ("monthly", "2026-08"),
                                    ("bulletin", "2026-08")]  # fmt: skip
    assert ("daily", "2026-09-25") not in due(2026, 9, 25, 16)
    assert due(2026, 9, 30, 16)[0] == ("daily", "2026-09-30")
    # Oct 1 … 5 hold no working day: the September statistics are due on the 1st
    assert due(2026, 10, 1, 16) == [("monthly", "2026-09")]
    assert due(2026, 10, 1, 15) == []
    for d in range(2, 8):
        assert due(2026, 10, d, 16) == [("monthly", "2026-09")]  # until produced
    assert due(2026, 10, 10, 16)[0] == ("daily", "2026-10-10")  # make-up Saturday
    assert due(2026, 10, 11, 16) == [("monthly", "2026-09")]  # Sunday
    assert ("bulletin", "2026-09") in due(2026, 10, 23, 16)
    assert ("bulletin", "2026-09") not in due(2026, 10, 22, 16)
    # Oct 8's daily period starts at Sep 30's cut-off
    assert daily_period(date(2026, 10, 8), case_hall(), AT).since == datetime(
        2026, 9, 30, 8, tzinfo=UTC
    )


def test_monthly_and_bulletin(env: Env) -> None:
    doc = monthly_document(env.state, env.series, env.hall, "2026-11")
    assert doc["totals"]["warnings"] == 3 and doc["totals"]["red_cards"] == 1
    assert doc["anomalies_by_kind"] == {"bad_rating": 1, "wait_over_limit": 4}
    scores = {w["window"]: w["score"] for w in doc["windows"]}
    assert scores["3"] > scores["1"] and scores["2"] > scores["1"]
    other = case_hall("h-other")
    b = bulletin_document(env.state, env.series, {H: env.hall, "h-other": other}, "2026-11")
    assert [r["subject"] for r in b["halls"]] == ["h-other", H]
    assert b["windows"][-1]["subject"] == f"{H}/1"
    assert b["windows"][0]["rank"] == 1 and b["windows"][1]["rank"] == 1  # ties share
    assert b == bulletin_document(env.state, env.series, {H: env.hall, "h-other": other}, "2026-11")
    assert [r["rank"] for r in rank([("a", 9.0), ("b", 8.0), ("c", 8.0), ("d", 7.0)])] == [
        1,
        2,
        2,
        4,
    ]


def test_tick_produces_once(env: Env) -> None:
    monday_4pm = MON_CUT + timedelta(seconds=1)
    made = env.runner.tick(monday_4pm)
    kinds = sorted((r.json_path.parent.name, r.json_path.stem) for r in made)
    assert kinds == [("daily", DAY), ("monthly", "2026-10")]  # bulletin: from Wed 25th
    assert env.runner.tick(monday_4pm + timedelta(minutes=1)) == []
    made = env.runner.tick(datetime(2026, 11, 25, 8, 0, tzinfo=UTC))
    assert [(r.json_path.parent.name, r.json_path.stem) for r in made] == [
        ("daily", "2026-11-24"),  # no tick on Tuesday: caught up, first
        ("daily", "2026-11-25"),
        ("bulletin", "2026-10"),
    ]
    assert (env.runner.report_dir / "all" / "bulletin" / "2026-10.xlsx").is_file()


def test_settings_daily_report_at() -> None:
    assert AggregatorSettings(daily_report_at="16:30").daily_report_time() == time(16, 30)
    for bad in ("17:00", "18:15", "4pm"):
        with pytest.raises(ValidationError):
            AggregatorSettings(daily_report_at=bad)


def test_api(env: Env) -> None:
    halls = {H: env.hall}
    app = signed_in_app(ApiServices(state=env.state, halls=halls, series=env.series))
    with TestClient(app) as c:
        assert c.get(f"/api/v1/halls/{H}/reports").status_code == 503
        app.state.services.reports = env.runner
        r = c.post(f"/api/v1/halls/{H}/reports/daily/{DAY}")
        assert r.status_code == 200 and r.json()["changed"] is True
        r2 = c.post(f"/api/v1/halls/{H}/reports/daily/{DAY}")
        assert r2.json()["changed"] is False and r2.json()["run"]["id"] == r.json()["run"]["id"]
        runs = c.get(f"/api/v1/halls/{H}/reports", params={"kind": "daily"}).json()
        assert [(x["period"], x["push_state"]) for x in runs] == [(DAY, "off")]
        f = c.get(f"/api/v1/halls/{H}/reports/daily/{DAY}")
        assert f.status_code == 200 and f.json()["day"] == DAY
        x = c.get(f"/api/v1/halls/{H}/reports/daily/{DAY}", params={"format": "xlsx"})
        assert x.status_code == 200 and x.content[:2] == b"PK"
        assert c.get(f"/api/v1/halls/{H}/reports/daily/2026-11-24").status_code == 404
        assert c.post(f"/api/v1/halls/{H}/reports/daily/2026-11").status_code == 422
        assert c.post(f"/api/v1/halls/{H}/reports/monthly/2026-13").status_code == 422
        assert c.post("/api/v1/reports/bulletin/2026-11").status_code == 200
        assert c.get("/api/v1/reports/bulletin/2026-11").json()["kind"] == "bulletin"
        app.dependency_overrides[get_caller] = lambda: Caller(
            "m", Role.HALL_MANAGER, frozenset({H})
        )
        assert c.post(f"/api/v1/halls/{H}/reports/daily/{DAY}").status_code == 403
        assert c.get("/api/v1/reports/bulletin/2026-11").status_code == 403
