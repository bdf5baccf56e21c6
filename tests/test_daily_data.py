"""Daily data from systems that cannot push: manual entry, replacement on re-entry, CSV
import (all lines or none, every bad line reported), roles and hall scope, the template,
and the daily report's ``reported`` section."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from aggregator.api.deps import ApiServices, Caller, Role, get_caller
from aggregator.reports.daily_data import DailyData, parse_csv
from aggregator.reports.runs import ReportRunner
from aggregator.reports.schedule import ReportKind
from aggregator.store.state import StateStore
from aggregator.store.timeseries import SqliteTimeSeriesStore
from tests.support.api import signed_in_app
from tests.test_anomaly_register import case_hall

H = "h-cases"
DAY = "2026-11-23"
URL = f"/api/v1/halls/{H}/daily-data"
HEADER = "day,source,item,window,value,note\n"


@dataclass
class Env:
    state: StateStore
    runner: ReportRunner
    app: Any
    client: TestClient


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    state = StateStore(f"sqlite:///{tmp_path / 'd.sqlite'}")
    state.create_all()
    series = SqliteTimeSeriesStore(":memory:")
    halls = {H: case_hall()}
    runner = ReportRunner(state, series, halls, tmp_path / "reports", time(16, 0))
    app = signed_in_app(ApiServices(state=state, halls=halls, series=series, reports=runner))
    with TestClient(app) as client:
        yield Env(state, runner, app, client)
    series.close()
    state.dispose()


def rows(state: StateStore) -> int:
    with state.read_session() as s:
        return int(s.scalar(select(func.count()).select_from(DailyData)) or 0)


def entry(**kw: Any) -> dict[str, Any]:
    base = {"day": DAY, "source": "zwfw", "item": "cases_received", "value": 12}
    return base | kw


def test_entry_then_reentry_replaces(env: Env) -> None:
    c = env.client
    r = c.post(URL, json=[entry(), entry(item="complaints", window="2", value=1, note="x")])
    assert r.status_code == 200 and r.json() == {"created": 2, "replaced": 0}
    r = c.post(URL, json=[entry(value=15, note="corrected")])
    assert r.json() == {"created": 0, "replaced": 1}
    got = c.get(URL, params={"day": DAY}).json()
    assert [(g["item"], g["window"], g["value"], g["note"]) for g in got] == [
        ("cases_received", None, 15.0, "corrected"),
        ("complaints", "2", 1.0, "x"),
    ]
    assert got[0]["entered_by"] == "test-admin" and rows(env.state) == 2
    assert c.get(URL, params={"day": "2026-11-24"}).json() == []


def test_bad_entries_rejected_all(env: Env) -> None:
    r = env.client.post(URL, json=[entry(), entry(item="visitors"), entry(value=-1, window="99")])
    assert r.status_code == 422
    assert r.json()["detail"] == [
        "line 2: item: must be one of cases_received, cases_completed, cases_on_time, "
        "consultations, complaints",
        "line 3: window: unknown window '99'",
        "line 3: value: must be between 0 and 1e+06",
    ]
    assert rows(env.state) == 0


def test_import_ok_and_idempotent(env: Env) -> None:
    body = (
        "\ufeff" + HEADER
        + f"{DAY},zwfw,cases_received,,30,\n"
        + f"{DAY},zwfw,cases_completed,1,12,窗口1\n"
        + "\n"
        + f"{DAY},hotline,consultations,,7.5,\n"
    )  # fmt: skip
    headers = {"Content-Type": "text/csv"}
    r = env.client.post(f"{URL}/import", content=body.encode(), headers=headers)
    assert r.status_code == 200 and r.json() == {"created": 3, "replaced": 0}
    again = env.client.post(f"{URL}/import", content=body.encode(), headers=headers)
    assert again.json() == {"created": 0, "replaced": 3} and rows(env.state) == 3
    notes = {g["item"]: g["note"] for g in env.client.get(URL, params={"day": DAY}).json()}
    assert notes["cases_completed"] == "窗口1"


def test_import_two_bad_lines_stores_nothing(env: Env) -> None:
    body = (
        HEADER
        + f"{DAY},zwfw,cases_received,,30,\n"
        + "2026-13-01,zwfw,cases_completed,,12,\n"
        + f"{DAY},zwfw,consultations,,many,\n"
        + f"{DAY},zwfw,complaints,,1,\n"
    )  # fmt: skip
    r = env.client.post(f"{URL}/import", content=body, headers={"Content-Type": "text/csv"})
    assert r.status_code == 422
    assert r.json()["detail"] == [
        "line 3: day: must be a date YYYY-MM-DD",
        "line 4: value: must be a number",
    ]
    assert rows(env.state) == 0


def test_import_bad_header_and_short_line() -> None:
    assert [str(p) for p in parse_csv("day,item,value\n")[1]] == [
        "line 1: header: must be day,source,item,window,value,note"
    ]
    _, problems = parse_csv(HEADER + f"{DAY},zwfw,cases_received,12\n")
    assert [str(p) for p in problems] == ["line 2: line: 4 fields, want 6"]


def test_roles_and_hall_scope(env: Env) -> None:
    c = env.client
    env.app.dependency_overrides[get_caller] = lambda: Caller("a", Role.AUDITOR, frozenset({H}))
    assert c.post(URL, json=[entry()]).status_code == 403
    assert c.post(f"{URL}/import", content=HEADER).status_code == 403
    assert c.get(URL, params={"day": DAY}).status_code == 200
    env.app.dependency_overrides[get_caller] = lambda: Caller(
        "m", Role.HALL_MANAGER, frozenset({"other"})
    )
    assert c.post(URL, json=[entry()]).status_code == 404
    env.app.dependency_overrides[get_caller] = lambda: Caller(
        "m", Role.HALL_MANAGER, frozenset({H})
    )
    assert c.post(URL, json=[entry()]).status_code == 200
    assert c.get(URL, params={"day": DAY}).json()[0]["entered_by"] == "m"
    assert rows(env.state) == 1


def test_template(env: Env) -> None:
    r = env.client.get("/api/v1/daily-data/template.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.text.strip() == HEADER.strip()
    entries, problems = parse_csv(r.text)
    assert entries == [] and problems == []


def test_daily_report_shows_entries(env: Env) -> None:
    assert env.runner.document(ReportKind.DAILY, H, DAY)["reported"] == []
    env.client.post(URL, json=[entry(), entry(item="cases_on_time", window="1", value=9)])
    env.client.post(URL, json=[entry(day="2026-11-24", value=99)])  # another day
    doc = env.runner.document(ReportKind.DAILY, H, DAY)
    assert [(x["source"], x["item"], x["window"], x["value"]) for x in doc["reported"]] == [
        ("zwfw", "cases_on_time", "1", 9.0),
        ("zwfw", "cases_received", None, 12.0),
    ]
    assert doc["reported"][0]["entered_at"].endswith("+08:00")
    produced = env.client.post(f"/api/v1/halls/{H}/reports/daily/{DAY}")
    assert produced.status_code == 200
    sheets = env.client.get(f"/api/v1/halls/{H}/reports/daily/{DAY}", params={"format": "xlsx"})
    assert sheets.status_code == 200
