"""XLSX import of daily data: workbooks made by openpyxl here (dates as Excel dates and as
text, numbers as numbers and as text, empty trailing rows, a short row), every bad row
named and nothing stored, the same entries as the CSV file, the format chosen by file name,
content type or bytes, the XLSX template (byte-stable, fills and imports)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from aggregator.api.deps import ApiServices
from aggregator.reports import daily_data, daily_import
from aggregator.reports.daily_data import TEMPLATE_HEADER, DailyData, parse_csv
from aggregator.reports.daily_import import (
    XLSX_MEDIA_TYPE,
    ImportFormat,
    cell_value,
    import_format,
    parse_import,
    parse_xlsx,
    template_xlsx,
)
from aggregator.reports.runs import ReportRunner
from aggregator.store.state import StateStore
from aggregator.store.timeseries import SqliteTimeSeriesStore
from tests.support.api import signed_in_app
from tests.test_anomaly_register import case_hall

H = "h-cases"
DAY = date(2026, 11, 23)
URL = f"/api/v1/halls/{H}/daily-data"
XLSX = {"Content-Type": XLSX_MEDIA_TYPE}
WINDOWS = ("1", "2", "3")


def workbook(
    rows: list[list[Any]], *, extra_sheet: str | None = None, blank_tail: int = 0
) -> bytes:
    """A workbook: the template header, ``rows``, then formatted but empty rows."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "数据"
    sheet.append(list(TEMPLATE_HEADER))
    for row in rows:
        sheet.append(row)
    last = sheet.max_row
    for n in range(1, blank_tail + 1):  # formatted cells, no values: rows in the XML
        sheet.cell(row=last + n, column=1).number_format = "yyyy-mm-dd"
        sheet.cell(row=last + n, column=5).value = "  "
    if extra_sheet:
        book.create_sheet(extra_sheet).append(["not", "read"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@dataclass
class Env:
    state: StateStore
    client: TestClient


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    state = StateStore(f"sqlite:///{tmp_path / 'x.sqlite'}")
    state.create_all()
    series = SqliteTimeSeriesStore(":memory:")
    halls = {H: case_hall()}
    runner = ReportRunner(state, series, halls, tmp_path / "reports", time(16, 0))
    app = signed_in_app(ApiServices(state=state, halls=halls, series=series, reports=runner))
    with TestClient(app) as client:
        yield Env(state, client)
    series.close()
    state.dispose()


def stored(state: StateStore) -> int:
    with state.read_session() as s:
        return int(s.scalar(select(func.count()).select_from(DailyData)) or 0)


GOOD: list[list[Any]] = [
    [DAY, "zwfw", "cases_received", None, 30],  # Excel date, number, no note cell
    ["2026-11-23", "zwfw", "cases_completed", 1, "12", "窗口1"],  # text date, text number
    [],  # a blank row in the middle
    [datetime(2026, 11, 23), "hotline", "consultations", "", 7.5, None],
    [DAY, "zwfw", "cases_on_time", 2.0, 11.0, ""],  # window and value stored as floats
]


def test_xlsx_import_ok_and_idempotent(env: Env) -> None:
    body = workbook(GOOD, blank_tail=5)
    r = env.client.post(f"{URL}/import", content=body, headers=XLSX)
    assert r.status_code == 200, r.text
    assert r.json() == {"created": 4, "replaced": 0}
    got = {
        (g["source"], g["item"], g["window"]): (g["value"], g["note"])
        for g in env.client.get(URL, params={"day": DAY.isoformat()}).json()
    }
    assert got == {
        ("zwfw", "cases_received", None): (30.0, ""),
        ("zwfw", "cases_completed", "1"): (12.0, "窗口1"),
        ("hotline", "consultations", None): (7.5, ""),
        ("zwfw", "cases_on_time", "2"): (11.0, ""),
    }
    again = env.client.post(f"{URL}/import", content=body, headers=XLSX)
    assert again.json() == {"created": 0, "replaced": 4} and stored(env.state) == 4


def test_xlsx_bad_rows_named_nothing_stored(env: Env) -> None:
    rows: list[list[Any]] = [
        [DAY, "zwfw", "cases_received", None, 30],  # fine
        [datetime(2026, 11, 23, 10, 30), "zwfw", "complaints", None, 1],  # date and time
        [46349, "zwfw", "complaints", None, 1],  # a date serial without date format
        [DAY, "zwfw", "consultations", 99, True],  # unknown window, a boolean value
        [DAY, "zwfw", "visitors", None, "many"],
        [DAY, "zwfw", "complaints", None, 1, "", "extra"],  # a seventh cell
    ]
    r = env.client.post(f"{URL}/import", content=workbook(rows, blank_tail=3), headers=XLSX)
    assert r.status_code == 422
    assert r.json()["detail"] == [
        "row 3: day: must be a date YYYY-MM-DD",
        "row 4: day: must be a date YYYY-MM-DD",
        "row 5: window: unknown window '99'",
        "row 5: value: must be a number",
        "row 6: item: must be one of cases_received, cases_completed, cases_on_time, "
        "consultations, complaints",
        "row 6: value: must be a number",
        "row 7: row: 7 fields, want 6",
    ]
    assert stored(env.state) == 0


def test_xlsx_sheet_named_with_several_and_header_checked() -> None:
    body = workbook([[DAY, "zwfw", "complaints", None, -2]], extra_sheet="说明")
    assert [str(p) for p in parse_xlsx(body, WINDOWS)[1]] == [
        "row 2 (sheet 数据): value: must be between 0 and 1e+06"
    ]
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["day", "item", "value"])
    out = io.BytesIO()
    book.save(out)
    assert [str(p) for p in parse_xlsx(out.getvalue())[1]] == [
        "row 1: header: must be day,source,item,window,value,note"
    ]
    assert [str(p) for p in parse_xlsx(b"PK\x03\x04 not really")[1]] == [
        "row 1: file: not an XLSX workbook"
    ]


def test_cell_values() -> None:
    assert cell_value(datetime(2026, 11, 23)) == "2026-11-23"
    assert cell_value(date(2026, 11, 23)) == "2026-11-23"
    assert cell_value(datetime(2026, 11, 23, 0, 0, 1)) == "2026-11-23 00:00:01"
    assert cell_value(1.0) == 1 and isinstance(cell_value(1.0), int)  # window 1, not 1.0
    assert cell_value(7.5) == 7.5 and cell_value(True) is True and cell_value(None) is None


def test_same_entries_as_csv() -> None:
    csv_text = (
        ",".join(TEMPLATE_HEADER) + "\n"
        "2026-11-23,zwfw,cases_received,,30,\n"
        "2026-11-23,zwfw,cases_completed,1,12,窗口1\n"
        "\n"
        "2026-11-23,hotline,consultations,,7.5,\n"
        "2026-11-23,zwfw,cases_on_time,2,11,\n"
    )
    from_csv, csv_problems = parse_csv(csv_text, WINDOWS)
    from_xlsx, xlsx_problems = parse_xlsx(workbook(GOOD), WINDOWS)
    assert csv_problems == [] and xlsx_problems == []
    assert from_xlsx == from_csv and len(from_csv) == 4


def test_entry_limit_applies_to_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daily_data, "MAX_IMPORT_LINES", 2)
    rows = [
        [DAY, "zwfw", item, None, 1] for item in ("complaints", "consultations", "cases_received")
    ]
    assert [str(p) for p in parse_xlsx(workbook(rows))[1]] == ["row 4: file: more than 2 entries"]
    text = ",".join(TEMPLATE_HEADER) + "\n" + "2026-11-23,zwfw,complaints,,1,\n" * 3
    assert [str(p) for p in parse_csv(text)[1]] == ["line 4: file: more than 2 entries"]
    monkeypatch.setattr(daily_import, "MAX_UNZIPPED_BYTES", 1000)  # an inflating workbook
    assert [str(p) for p in parse_xlsx(workbook(rows))[1]] == [
        "row 1: file: workbook over 64 MiB unzipped"
    ]


def test_format_by_name_type_or_bytes(env: Env) -> None:
    body = workbook(GOOD[:1])
    assert import_format(body) is ImportFormat.XLSX
    assert import_format(b"day,source") is ImportFormat.CSV
    assert import_format(body, "application/octet-stream", "daten.XLSX") is ImportFormat.XLSX
    assert import_format(b"x", XLSX_MEDIA_TYPE, "data.csv") is ImportFormat.CSV  # name wins
    octet = {"Content-Type": "application/octet-stream"}
    c = env.client
    r = c.post(f"{URL}/import", params={"filename": "11月.xlsx"}, content=body, headers=octet)
    assert r.status_code == 200 and r.json()["created"] == 1
    disposition = {**octet, "Content-Disposition": 'attachment; filename="data.xlsx"'}
    assert c.post(f"{URL}/import", content=body, headers=disposition).status_code == 200
    assert c.post(f"{URL}/import", content=body).status_code == 200  # sniffed
    r = c.post(f"{URL}/import", content=body, headers={"Content-Type": "text/csv"})
    assert r.status_code == 422
    assert r.json()["detail"] == ["line 1: file: a workbook sent as CSV: send it as .xlsx"]
    xls = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100)
    assert [str(p) for p in parse_import(xls, filename="old.xls")[1]] == [
        "row 1: file: an .xls (Excel 97-2003) file: save it as .xlsx"
    ]
    latin = "day,source,item,window,value,note\n2026-11-23,zwfw,complaints,,1,é\n"
    r = c.post(
        f"{URL}/import", content=latin.encode("latin-1"), headers={"Content-Type": "text/csv"}
    )
    assert r.json()["detail"] == ["line 1: file: not UTF-8 (save the CSV as UTF-8)"]
    assert stored(env.state) == 1


def test_xlsx_template_download_fill_import(env: Env) -> None:
    r = env.client.get("/api/v1/daily-data/template.xlsx")
    assert r.status_code == 200 and r.headers["content-type"] == XLSX_MEDIA_TYPE
    assert "daily-data-template.xlsx" in r.headers["content-disposition"]
    assert r.content == template_xlsx()  # no clock in the bytes
    assert parse_xlsx(r.content) == ([], [])
    book = load_workbook(io.BytesIO(r.content))
    sheet = book["daily_data"]
    assert [c.value for c in sheet[1]] == list(TEMPLATE_HEADER)
    assert sheet.data_validations.dataValidation[0].formula1 == (
        '"cases_received,cases_completed,cases_on_time,consultations,complaints"'
    )
    sheet.append([DAY, "zwfw", "complaints", "3", 2, "filled in"])
    out = io.BytesIO()
    book.save(out)
    r = env.client.post(f"{URL}/import", content=out.getvalue(), headers=XLSX)
    assert r.status_code == 200 and r.json() == {"created": 1, "replaced": 0}
