"""Scheduled reports (日报, 月度统计, 通报): list runs, download files, (re)produce.

- ``GET /api/v1/halls/{hall}/reports[?kind=daily]``: the hall's report runs, newest first;
- ``GET /api/v1/halls/{hall}/reports/{kind}/{period}?format=json|xlsx``: a report file;
- ``POST /api/v1/halls/{hall}/reports/{kind}/{period}``: produce (again) a daily
  (``YYYY-MM-DD``) or monthly (``YYYY-MM``) report; same data, same digest, no new row;
- ``GET|POST /api/v1/reports/bulletin/{month}``: the bulletin, for callers who see every
  hall (it ranks them all);
- ``POST /api/v1/halls/{hall}/daily-data``: enter daily data (a JSON list of entries) for
  systems that cannot push; ``POST …/daily-data/import[?filename=]``: the same from the
  template as CSV or XLSX, sent as the raw body (format by file name — ``?filename=`` or
  ``Content-Disposition`` —, else ``Content-Type``, else the bytes); ``GET
  …/daily-data?day=``: a day's entries; ``GET /api/v1/daily-data/template.csv`` and
  ``template.xlsx``: the template. Entering needs the hall manager, supervision officer or
  admin role; a bad entry, line or row rejects them all (422, one ``line N: field:
  message`` or ``row N: …`` each). See :mod:`aggregator.reports.daily_data` and
  :mod:`aggregator.reports.daily_import`.

The runner comes from :class:`ApiServices` (``reports``, set by the aggregator service);
without one these routes answer 503. Producing needs the supervision officer or admin role.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import FileResponse
from pydantic import BaseModel
from sqlalchemy import select

from aggregator.api.deps import Caller, CallerDep, HallDep, Role, ServicesDep, require_roles
from aggregator.export.writers import ExportFormat
from aggregator.reports.daily_data import (
    DailyEntry,
    EntryProblem,
    check_entry,
    entries_of_day,
    save_entries,
    template_csv,
)
from aggregator.reports.daily_import import XLSX_MEDIA_TYPE, parse_import, template_xlsx
from aggregator.reports.runs import ALL_HALLS, ReportRun, ReportRunner, RunResult
from aggregator.reports.schedule import ReportKind
from hallwatch.contract import utcnow

router = APIRouter(tags=["reports"])

OfficerDep = Annotated[Caller, Depends(require_roles(Role.SUPERVISION_OFFICER, Role.ADMIN))]
EntererDep = Annotated[
    Caller, Depends(require_roles(Role.HALL_MANAGER, Role.SUPERVISION_OFFICER, Role.ADMIN))
]
MAX_IMPORT_BYTES = 1 << 20
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_FILENAME = re.compile(r'filename\*?=(?:UTF-8\'\')?"?([^";]+)"?', re.IGNORECASE)


def get_runner(services: ServicesDep) -> ReportRunner:
    """The report runner of the app (503 without one)."""
    runner = services.reports
    if runner is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "reports are not configured")
    return runner


RunnerDep = Annotated[ReportRunner, Depends(get_runner)]


class RunOut(BaseModel):
    """One report run."""

    id: int
    hall: str
    kind: str
    period: str
    produced_at: datetime
    digest: str
    push_state: str
    push_attempts: int
    push_error: str
    pushed_at: datetime | None


class ProducedOut(BaseModel):
    """What producing a report did."""

    run: RunOut
    changed: bool


def _check_period(kind: ReportKind, period: str) -> None:
    try:
        if kind is ReportKind.DAILY:
            date.fromisoformat(period)
            if len(period) != 10:
                raise ValueError
        elif not _MONTH.match(period):
            raise ValueError
    except ValueError as exc:
        shape = "YYYY-MM-DD" if kind is ReportKind.DAILY else "YYYY-MM"
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"{kind.value} period must be {shape}"
        ) from exc


def _run_out(row: ReportRun) -> RunOut:
    return RunOut(
        id=row.id,
        hall=row.hall,
        kind=row.kind,
        period=row.period,
        produced_at=row.produced_at.astimezone(UTC),
        digest=row.digest,
        push_state=row.push_state,
        push_attempts=row.push_attempts,
        push_error=row.push_error,
        pushed_at=row.pushed_at,
    )


def _produced(runner: ReportRunner, result: RunResult) -> ProducedOut:
    with runner.state.read_session() as session:
        row = session.get(ReportRun, result.run_id)
        assert row is not None
        return ProducedOut(run=_run_out(row), changed=result.changed)


def _file(runner: ReportRunner, hall: str, kind: str, period: str, fmt: str) -> FileResponse:
    json_path, xlsx_path = runner.paths(hall, kind, period)
    path = json_path if fmt == "json" else xlsx_path
    if not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {kind} report of {hall} for {period}")
    media = "application/json" if fmt == "json" else ExportFormat.XLSX.media_type
    return FileResponse(path, media_type=media, filename=f"{hall}-{kind}-{period}.{fmt}")


def _only_halls(kind: ReportKind) -> ReportKind:
    if kind is ReportKind.BULLETIN:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "bulletins are at /reports/bulletin/…")
    return kind


@router.get("/halls/{hall}/reports", response_model=list[RunOut], summary="Report runs")
def list_runs(
    hall: HallDep,
    runner: RunnerDep,
    _caller: CallerDep,
    kind: Annotated[ReportKind | None, Query()] = None,
) -> list[RunOut]:
    """The hall's report runs, newest period first."""
    query = select(ReportRun).where(ReportRun.hall == hall.hall.id)
    if kind is not None:
        query = query.where(ReportRun.kind == kind.value)
    with runner.state.read_session() as session:
        rows = session.scalars(query.order_by(ReportRun.period.desc(), ReportRun.kind)).all()
        return [_run_out(r) for r in rows]


@router.get("/halls/{hall}/reports/{kind}/{period}", summary="Download a report file")
def download(
    hall: HallDep,
    kind: ReportKind,
    period: str,
    runner: RunnerDep,
    _caller: CallerDep,
    format: Annotated[Literal["json", "xlsx"], Query()] = "json",
) -> FileResponse:
    """The report's JSON or XLSX file (404 until produced)."""
    _check_period(_only_halls(kind), period)
    return _file(runner, hall.hall.id, kind.value, period, format)


@router.post(
    "/halls/{hall}/reports/{kind}/{period}",
    response_model=ProducedOut,
    summary="Produce a report (again)",
)
def produce(
    hall: HallDep, kind: ReportKind, period: str, runner: RunnerDep, _caller: OfficerDep
) -> ProducedOut:
    """Produce a daily or monthly report now: files rewritten, pushed unless already sent
    with the same digest."""
    _check_period(_only_halls(kind), period)
    return _produced(runner, runner.produce(kind, hall.hall.id, period, utcnow()))


def _sees_all(caller: Caller) -> None:
    if caller.halls is not None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the bulletin ranks every hall")


@router.get("/reports/bulletin/{month}", summary="Download a bulletin")
def download_bulletin(
    month: str,
    runner: RunnerDep,
    caller: CallerDep,
    format: Annotated[Literal["json", "xlsx"], Query()] = "json",
) -> FileResponse:
    """The bulletin of ``month`` (``YYYY-MM``)."""
    _sees_all(caller)
    _check_period(ReportKind.BULLETIN, month)
    return _file(runner, ALL_HALLS, ReportKind.BULLETIN.value, month, format)


@router.post("/reports/bulletin/{month}", response_model=ProducedOut, summary="Produce a bulletin")
def produce_bulletin(month: str, runner: RunnerDep, caller: OfficerDep) -> ProducedOut:
    """Produce the bulletin of ``month`` now."""
    _sees_all(caller)
    _check_period(ReportKind.BULLETIN, month)
    return _produced(runner, runner.produce(ReportKind.BULLETIN, ALL_HALLS, month, utcnow()))


# -- daily data from systems that cannot push ---------------------------------------------


class DailyEntryIn(BaseModel):
    """One entry of daily data (``window`` None: hall-wide)."""

    day: str
    source: str
    item: str
    window: str | None = None
    value: float | str
    note: str = ""


class DailyEntryOut(BaseModel):
    """One stored entry."""

    day: str
    source: str
    item: str
    window: str | None
    value: float
    note: str
    entered_by: str
    entered_at: datetime


class DailySavedOut(BaseModel):
    """What entering or importing did."""

    created: int
    replaced: int


def _hall_windows(hall: HallDep) -> set[str]:
    return {w.id for w in hall.windows} | {p.window for p in hall.posts if p.window}


def _save(
    services: ServicesDep,
    hall: HallDep,
    caller: Caller,
    entries: list[DailyEntry],
    problems: list[EntryProblem],
) -> DailySavedOut:
    if problems:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [str(p) for p in problems])
    saved = save_entries(services.state, hall.hall.id, entries, caller.name)
    return DailySavedOut(created=saved.created, replaced=saved.replaced)


@router.post("/halls/{hall}/daily-data", response_model=DailySavedOut, summary="Enter daily data")
def enter_daily_data(
    hall: HallDep, services: ServicesDep, caller: EntererDep, body: list[DailyEntryIn]
) -> DailySavedOut:
    """Store entries (``line N`` in problems is the entry's position, from 1); an existing
    (day, source, item, window) is replaced."""
    windows = _hall_windows(hall)
    entries: list[DailyEntry] = []
    problems: list[EntryProblem] = []
    for n, raw in enumerate(body, start=1):
        entry, found = check_entry(n, raw.model_dump(), windows)
        problems.extend(found)
        if entry is not None:
            entries.append(entry)
    return _save(services, hall, caller, entries, problems)


@router.post(
    "/halls/{hall}/daily-data/import",
    response_model=DailySavedOut,
    summary="Import daily data from the template (CSV or XLSX)",
)
async def import_daily_data(
    hall: HallDep,
    services: ServicesDep,
    caller: EntererDep,
    request: Request,
    filename: Annotated[str, Query(max_length=255)] = "",
) -> DailySavedOut:
    """Import the template sent as the body, CSV (UTF-8) or XLSX: all rows or none.

    The format: the file name's suffix (``?filename=`` or ``Content-Disposition``), else
    ``Content-Type`` (``text/csv`` or the XLSX type), else the bytes.
    """
    raw = await request.body()
    if len(raw) > MAX_IMPORT_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "file over 1 MiB")
    if not filename:
        found = _FILENAME.search(request.headers.get("content-disposition", ""))
        filename = found.group(1) if found else ""
    entries, problems = parse_import(
        raw,
        _hall_windows(hall),
        content_type=request.headers.get("content-type", ""),
        filename=filename,
    )
    return _save(services, hall, caller, entries, problems)


@router.get("/halls/{hall}/daily-data", response_model=list[DailyEntryOut], summary="Daily data")
def list_daily_data(
    hall: HallDep, services: ServicesDep, _caller: CallerDep, day: Annotated[str, Query()]
) -> list[DailyEntryOut]:
    """The hall's entries for ``day`` (``YYYY-MM-DD``)."""
    _check_period(ReportKind.DAILY, day)
    return [
        DailyEntryOut(
            day=e.day,
            source=e.source,
            item=e.item,
            window=e.window,
            value=e.value,
            note=e.note,
            entered_by=e.entered_by,
            entered_at=e.entered_at.astimezone(UTC),
        )
        for e in entries_of_day(services.state, hall.hall.id, day)
    ]


@router.get("/daily-data/template.csv", summary="The daily data import template")
def daily_data_template(_caller: CallerDep) -> Response:
    """The CSV template: ``day,source,item,window,value,note``."""
    return Response(
        template_csv(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="daily-data-template.csv"'},
    )


@router.get("/daily-data/template.xlsx", summary="The daily data import template (XLSX)")
def daily_data_template_xlsx(_caller: CallerDep) -> Response:
    """The XLSX template: sheet ``daily_data`` with the header row."""
    return Response(
        template_xlsx(),
        media_type=XLSX_MEDIA_TYPE,
        headers={"Content-Disposition": 'attachment; filename="daily-data-template.xlsx"'},
    )
