"""Exports for auditors (issue 5): alerts, 异常办件 with their lifecycle and time series as
CSV / XLSX / Parquet, streamed, each export recorded in the audit log.

The hall (Asia/Shanghai) has windows 1 and 2 of department ``tax`` and window 3 of
``police``. Every format is read back (csv, openpyxl, pyarrow) and compared with the
same expected rows.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from aggregator.api.deps import ApiServices, Caller, Role, get_caller
from aggregator.api.main import create_app
from aggregator.cases.models import Anomaly, AnomalyTransition
from aggregator.export import (
    Column,
    ExportAudit,
    ExportFormat,
    ExportSource,
    export_chunks,
)
from aggregator.store.state import Alert, StateStore
from aggregator.store.timeseries import Point, SqliteTimeSeriesStore
from hallwatch.cli import main as cli_main
from hallwatch.config.models import HallConfig
from tests.conftest import build_hall

HALL = "h1"
T0 = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)  # 10:00 in the hall


def hall_config(hall_id: str = HALL) -> HallConfig:
    base = build_hall(hall_id).model_dump(mode="json")
    base["departments"] = [{"id": "tax", "name": "税务局"}, {"id": "police", "name": "公安局"}]
    base["windows"] = [
        {"id": "1", "department": "tax"},
        {"id": "2", "department": "tax"},
        {"id": "3", "department": "police"},
    ]
    return HallConfig.model_validate(base)


@dataclass
class Env:
    state: StateStore
    series: SqliteTimeSeriesStore
    client: TestClient
    caller: list[Caller]

    def get(self, url: str, **params: Any) -> Any:
        return self.client.get(url, params=params)

    def export(self, dataset: str, fmt: str = "csv", **params: Any) -> list[dict[str, str]]:
        r = self.get(f"/api/v1/halls/{HALL}/exports/{dataset}", format=fmt, **params)
        assert r.status_code == 200, r.text
        return read_back(r.content, fmt)

    def audit(self) -> list[ExportAudit]:
        with self.state.read_session() as s:
            rows = list(s.query(ExportAudit).order_by(ExportAudit.id))
            s.expunge_all()
        return rows


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def read_back(content: bytes, fmt: str) -> list[dict[str, str]]:
    """Rows of an exported file, every cell as text ('' for empty)."""
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))
    if fmt == "xlsx":
        wb = load_workbook(io.BytesIO(content), read_only=True)
        out: list[dict[str, str]] = []
        for ws in wb.worksheets:
            values = list(ws.iter_rows(values_only=True))
            header = [str(h) for h in values[0]]
            for row in values[1:]:  # read-only sheets drop trailing empty cells
                cells = list(row) + [None] * (len(header) - len(row))
                out.append({h: _text(v) for h, v in zip(header, cells, strict=True)})
        return out
    table = pq.read_table(io.BytesIO(content))
    return [{k: _text(v) for k, v in row.items()} for row in table.to_pylist()]


def _seed(state: StateStore, series: SqliteTimeSeriesStore) -> None:
    with state.session() as s:
        for i, (window, hall) in enumerate([("1", HALL), ("2", HALL), ("3", HALL), ("1", "h2")]):
            start = T0 + timedelta(hours=i)
            s.add(
                Alert(
                    id=f"A{i}", hall=hall, kind="off_post", post=f"w{window}", window=window,
                    state="resolved", start=start, end=start + timedelta(minutes=20),
                    opened_at=start, resolved_at=start + timedelta(minutes=20),
                    message=f"{window}号窗口离岗",
                )
            )  # fmt: skip
        for i, (window, dept) in enumerate([("1", "tax"), ("3", "police")]):
            opened = T0 + timedelta(days=i)
            s.add(
                Anomaly(
                    id=f"N{i}", hall=HALL, dedup_key=f"manual:{i}", kind="wait", state="closed",
                    level="yellow", window=window, department=dept, source="manual",
                    description="等候超时", opened=opened,
                    appeal_deadline=opened + timedelta(days=3), created_at=opened,
                    updated_at=opened,
                )
            )  # fmt: skip
            s.flush()
            for j, (action, to_state) in enumerate([("open", "open"), ("close", "closed")]):
                s.add(
                    AnomalyTransition(
                        anomaly_id=f"N{i}", ts=opened + timedelta(hours=j), actor="officer",
                        action=action, from_state=None if j == 0 else "open",
                        to_state=to_state, to_level="yellow", note="",
                    )
                )  # fmt: skip
    points = [
        Point(
            "post_presence",
            {"hall": HALL, "camera": "c1", "post": f"w{w}", "window": w},
            {"on_post": k % 2, "summary": "ok"},
            T0 + timedelta(seconds=10 * k),
            f"p{w}-{k}",
        )
        for k in range(30)
        for w in ("1", "3")
    ]
    series.write(points)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    state = StateStore(f"sqlite:///{tmp_path / 'state.sqlite'}")
    state.migrate()
    series = SqliteTimeSeriesStore(tmp_path / "series.sqlite")
    _seed(state, series)
    halls = {HALL: hall_config(), "h2": hall_config("h2")}
    app = create_app(ApiServices(state=state, halls=halls, series=series))
    caller = [Caller(name="审计员张", role=Role.AUDITOR)]
    app.dependency_overrides[get_caller] = lambda: caller[0]
    with TestClient(app) as client:
        yield Env(state, series, client, caller)
    series.close()
    state.dispose()


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "parquet"])
def test_alerts_round_trip_in_every_format(env: Env, fmt: str) -> None:
    rows = env.export("alerts", fmt)
    assert [r["id"] for r in rows] == ["A0", "A1", "A2"]  # not h2's
    first = rows[0]
    assert first["start"] == "2026-11-02T10:00:00+08:00"
    assert first["end"] == "2026-11-02T10:20:00+08:00"
    assert (first["window"], first["department"], first["message"]) == ("1", "tax", "1号窗口离岗")
    assert first["device"] == ""
    assert rows == env.export("alerts", "csv")  # the same rows in every format


def test_content_disposition_and_gbt_times(env: Env) -> None:
    r = env.get(f"/api/v1/halls/{HALL}/exports/alerts", format="xlsx", time_format="gbt")
    assert r.headers["content-disposition"] == 'attachment; filename="h1-alerts.xlsx"'
    assert read_back(r.content, "xlsx")[1]["start"] == "2026-11-02 11:00:00"


def test_filters_window_department_and_range(env: Env) -> None:
    assert [r["id"] for r in env.export("alerts", window="2")] == ["A1"]
    assert [r["id"] for r in env.export("alerts", department="tax")] == ["A0", "A1"]
    assert [r["id"] for r in env.export("alerts", department="police")] == ["A2"]
    # Naive times are hall-local: 11:00–12:00 local is A1 only.
    since, until = "2026-11-02T11:00:00", "2026-11-02T12:00:00"
    assert [r["id"] for r in env.export("alerts", since=since, until=until)] == ["A1"]
    assert [r["id"] for r in env.export("anomalies", department="police")] == ["N1"]
    r = env.get(f"/api/v1/halls/{HALL}/exports/alerts", department="nope")
    assert r.status_code == 404 and "nope" in r.json()["detail"]


def test_anomalies_with_lifecycle_and_transitions(env: Env) -> None:
    (n0, n1) = env.export("anomalies", "parquet")
    assert n1["lifecycle"].endswith("by officer") and n1["state"] == "closed"
    assert (n0["id"], n0["transitions"], n0["department"]) == ("N0", "2", "tax")
    assert n0["lifecycle"] == (
        "open→open@2026-11-02T10:00:00+08:00 by officer; "
        "close→closed@2026-11-02T11:00:00+08:00 by officer"
    )
    steps = env.export("anomaly_transitions", "xlsx")
    assert [(s["anomaly_id"], s["action"]) for s in steps] == [
        ("N0", "open"), ("N0", "close"), ("N1", "open"), ("N1", "close"),
    ]  # fmt: skip
    assert steps[2]["ts"] == "2026-11-03T10:00:00+08:00" and steps[2]["window"] == "3"


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_series_export_with_window_filter(env: Env, fmt: str) -> None:
    since, until = T0.isoformat(), (T0 + timedelta(minutes=5)).isoformat()
    rows = env.export("series/post_presence", fmt, since=since, until=until)
    assert len(rows) == 60
    assert set(rows[0]) >= {"time", "hall", "camera", "post", "window", "on_post", "summary"}
    only = env.export("series/post_presence", fmt, since=since, until=until, window="3")
    assert len(only) == 30 and {r["window"] for r in only} == {"3"}
    assert only[1]["time"] == "2026-11-02T10:00:10+08:00" and only[1]["on_post"] == "1"
    tax = env.export("series/post_presence", fmt, since=since, until=until, department="tax")
    assert {r["post"] for r in tax} == {"w1"}


def test_every_export_is_audited_and_the_audit_log_exports(env: Env) -> None:
    env.export("alerts", "csv", window="1")
    env.export("anomalies", "parquet")
    entries = env.audit()
    seen = [(e.actor, e.via, e.hall, e.dataset, e.format, e.rows, e.completed) for e in entries]
    assert seen == [
        ("审计员张", "api", HALL, "alerts", "csv", 1, True),
        ("审计员张", "api", HALL, "anomalies", "parquet", 2, True),
    ]  # fmt: skip
    assert json.loads(entries[0].filters) == {"window": "1", "time_format": "iso"}
    r = env.get("/api/v1/exports/audit", format="parquet")
    assert r.status_code == 200, r.text
    log = read_back(r.content, "parquet")
    assert [(e["dataset"], e["rows"], e["actor"]) for e in log] == [
        ("alerts", "1", "审计员张"), ("anomalies", "2", "审计员张"),
    ]  # fmt: skip
    assert env.audit()[-1].dataset == "audit" and env.audit()[-1].rows == 2


def test_roles_and_hall_scope(env: Env) -> None:
    env.caller[0] = Caller(name="manager", role=Role.HALL_MANAGER)
    r = env.get(f"/api/v1/halls/{HALL}/exports/alerts")
    assert r.status_code == 403 and "hall_manager" in r.json()["detail"]
    assert env.get("/api/v1/exports/audit").status_code == 403
    env.caller[0] = Caller(name="officer", role=Role.SUPERVISION_OFFICER, halls=frozenset({"h2"}))
    r = env.get(f"/api/v1/halls/{HALL}/exports/alerts")
    assert r.status_code == 404 and r.json()["detail"] == "unknown hall 'h1'"
    assert env.get("/api/v1/exports/audit").status_code == 403  # officers: no audit log
    r = env.get("/api/v1/halls/h2/exports/nothing")
    assert r.status_code == 404 and "unknown dataset" in r.json()["detail"]
    assert env.audit() == []  # refused exports are not exports


@pytest.mark.parametrize("fmt", list(ExportFormat))
def test_rows_are_read_lazily(fmt: ExportFormat) -> None:
    pulled = 0

    def rows() -> Iterator[dict[str, Any]]:
        nonlocal pulled
        for i in range(10_000):
            pulled += 1
            yield {"n": i, "name": f"行{i}"}

    source = ExportSource("big", (Column("n", "int"), Column("name")), rows())
    chunks = export_chunks(source, fmt, chunk_rows=1000)
    first = next(chunks)
    if fmt is ExportFormat.XLSX:  # the file is zipped at the end; rows went to a temp file
        assert pulled == 10_000 and first[:2] == b"PK"
    else:
        assert 0 < pulled <= 1001
    rest = b"".join(chunks)
    back = read_back(first + rest, fmt.value)
    assert len(back) == 10_000 and back[-1] == {"n": "9999", "name": "行9999"}


def test_cli_export_writes_the_file_and_audits_the_os_user(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hall_file = tmp_path / "h1.yaml"
    hall_file.write_text(json.dumps(hall_config().model_dump(mode="json")), encoding="utf-8")
    monkeypatch.setenv("HALLWATCH_DATABASE_URL", f"sqlite:///{tmp_path / 'state.sqlite'}")
    monkeypatch.setenv("HALLWATCH_SERIES_PATH", str(tmp_path / "series.sqlite"))
    monkeypatch.setattr("getpass.getuser", lambda: "auditor-os")
    out = tmp_path / "alerts.parquet"
    argv = ["export", "alerts", "--hall-id", HALL, "--hall", str(hall_file), "-o", str(out),
            "--department", "tax", "--time-format", "gbt"]  # fmt: skip
    assert cli_main(argv) == 0
    rows = read_back(out.read_bytes(), "parquet")
    assert [r["id"] for r in rows] == ["A0", "A1"] and rows[0]["start"] == "2026-11-02 10:00:00"
    assert "2 rows of alerts" in capsys.readouterr().err
    (entry,) = env.audit()
    assert (entry.actor, entry.via, entry.rows, entry.format) == ("auditor-os", "cli", 2, "parquet")
    series_out = tmp_path / "presence.csv"
    argv = ["export", "series/post_presence", "--hall-id", HALL, "--hall", str(hall_file),
            "-o", str(series_out), "--since", "2026-11-02T10:00", "--until", "2026-11-02T11:00",
            "--no-progress"]  # fmt: skip
    assert cli_main(argv) == 0
    assert len(read_back(series_out.read_bytes(), "csv")) == 60
    assert cli_main(["export", "nothing", "--hall-id", HALL, "--hall", str(hall_file),
                     "-o", str(tmp_path / "x.csv")]) == 2  # fmt: skip
