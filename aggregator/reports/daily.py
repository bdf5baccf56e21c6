"""The daily report (日报) of a hall: a frozen value, its JSON document and XLSX file.

:func:`build_daily` reads one period (the previous working day's cut-off to this day's,
:mod:`aggregator.reports.schedule`) from the state database and the series store:

- per window (from :func:`aggregator.scores.gather_inputs`): cases called, warnings, red
  cards, 差评, off-post minutes; the same summed per department (the hall config's
  ``windows[].department``; windows without one in a last group, ``department`` None);
- anomalies (异常办件) opened, by kind; ratings (first evaluations) by level; ticket events
  by event; waits over the limit (count, longest);
- incidents: 环境差 (``hygiene_bad``), device-offline and crowding alerts started in the
  period, with their minutes within it;
- reported: the day's figures entered by hand or imported from systems that cannot push
  (:mod:`aggregator.reports.daily_data`).

Everything is sorted and no clock is read: the same data gives the same document and
:func:`report_digest` (``produced_at`` is kept out of both and recorded with the run).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from sqlalchemy import select

from aggregator.cases.models import Anomaly
from aggregator.export.timefmt import TimeFormat, format_time
from aggregator.reports.daily_data import StoredEntry, entries_of_day
from aggregator.scores import Period, ScoreInputs, gather_inputs
from aggregator.store.state import Alert, StateStore
from aggregator.store.timeseries import (
    MEASUREMENT_RATING,
    MEASUREMENT_TICKET,
    MEASUREMENT_WAIT,
    TimeSeriesStore,
)
from hallwatch.config.models import HallConfig
from hallwatch.contract import AlertKind

logger = logging.getLogger(__name__)

INCIDENT_KINDS: tuple[str, ...] = (
    AlertKind.HYGIENE_BAD.value,
    AlertKind.DEVICE_OFFLINE.value,
    AlertKind.CROWDING.value,
)
FIXED_XLSX_TIME = datetime(2000, 1, 1)
"""Workbook created/modified stamp: fixed, so the same report writes the same bytes."""
_MODIFIED = re.compile(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)")


@dataclass(frozen=True, slots=True)
class Incident:
    """An environment or device alert of the period (minutes clipped to the period)."""

    kind: str
    subject: str
    window: str | None
    start: datetime
    minutes: float


@dataclass(frozen=True, slots=True)
class WaitSummary:
    """Waits over the limit (超时等候) in the period."""

    count: int = 0
    longest_s: float = 0.0


@dataclass(frozen=True, slots=True)
class DepartmentDay:
    """A department's figures: the sums of its windows' (:class:`ScoreInputs` fields).

    Attributes:
        department: Department id; None for the windows without a department.
        name: Its display name from the hall config ("" for None).
        windows: Its windows, sorted.
    """

    department: str | None
    name: str
    windows: tuple[str, ...]
    cases_handled: int = 0
    warnings: int = 0
    red_cards: int = 0
    bad_ratings: int = 0
    off_post_minutes: float = 0.0
    appeals_upheld: int = 0
    appeals_overturned: int = 0


def department_days(windows: Sequence[ScoreInputs], hall: HallConfig) -> tuple[DepartmentDay, ...]:
    """Sum window figures per department: every configured department (by id, zero when
    none of its windows has data), then the windows without a department, if any.

    A window whose department is not configured counts as without one.
    """
    names = {d.id: d.name for d in hall.departments}
    groups: dict[str | None, list[ScoreInputs]] = {d: [] for d in sorted(names)}
    for w in windows:
        groups.setdefault(w.department if w.department in names else None, []).append(w)
    return tuple(
        DepartmentDay(
            department=dept,
            name=names.get(dept, "") if dept is not None else "",
            windows=tuple(sorted(w.window for w in members)),
            cases_handled=sum(w.cases_handled for w in members),
            warnings=sum(w.warnings for w in members),
            red_cards=sum(w.red_cards for w in members),
            bad_ratings=sum(w.bad_ratings for w in members),
            off_post_minutes=round(sum(w.off_post_minutes for w in members), 3),
            appeals_upheld=sum(w.appeals_upheld for w in members),
            appeals_overturned=sum(w.appeals_overturned for w in members),
        )
        for dept, members in groups.items()
    )


@dataclass(frozen=True, slots=True)
class DailyReport:
    """One hall's daily report.

    Attributes:
        hall: Hall id.
        day: The working day (``YYYY-MM-DD``, hall-local).
        period: ``[since, until)``: previous working day's cut-off to this one's.
        windows: Per-window figures, sorted by window.
        departments: Per-department sums (:func:`department_days`).
        anomalies_by_kind: 异常办件 opened, by kind (sorted).
        ratings_by_level: First evaluations by level (sorted).
        tickets_by_event: Ticket events by event (sorted).
        waits: Waits over the limit.
        incidents: Hygiene, device and crowding alerts, by start then subject.
        unattributed_anomalies: Anomalies without a window.
        reported: The day's entered or imported figures (by source, item, window).
    """

    hall: str
    day: str
    period: Period
    windows: tuple[ScoreInputs, ...]
    anomalies_by_kind: tuple[tuple[str, int], ...]
    ratings_by_level: tuple[tuple[str, int], ...]
    tickets_by_event: tuple[tuple[str, int], ...]
    waits: WaitSummary
    incidents: tuple[Incident, ...]
    unattributed_anomalies: int = 0
    reported: tuple[StoredEntry, ...] = ()
    departments: tuple[DepartmentDay, ...] = ()


def _clip(start: datetime, end: datetime | None, period: Period) -> float:
    stop = min(end or period.until, period.until)
    return round(max((stop - max(start, period.since)).total_seconds(), 0.0) / 60.0, 3)


def build_daily(
    state: StateStore, series: TimeSeriesStore, hall: HallConfig, day: str, period: Period
) -> DailyReport:
    """Read the daily report of ``hall`` for ``period`` (open alerts run to its end).

    Args:
        state: The state database.
        series: The series store.
        hall: The hall's config.
        day: The report's working day, ``YYYY-MM-DD``.
        period: The period covered.
    """
    hid = hall.hall.id
    inputs = gather_inputs(state, series, hall, period, now=period.until)
    with state.read_session() as session:
        kinds = session.scalars(
            select(Anomaly.kind).where(
                Anomaly.hall == hid,
                Anomaly.opened >= period.since,
                Anomaly.opened < period.until,
            )
        ).all()
        alerts = session.scalars(
            select(Alert).where(
                Alert.hall == hid,
                Alert.kind.in_(INCIDENT_KINDS),
                Alert.start >= period.since,
                Alert.start < period.until,
            )
        ).all()
        incidents = sorted(
            (
                Incident(
                    kind=a.kind,
                    subject=a.zone or a.device or a.window or "",
                    window=a.window,
                    start=a.start.astimezone(UTC),
                    minutes=_clip(a.start, a.end, period),
                )
                for a in alerts
            ),
            key=lambda i: (i.start, i.kind, i.subject),
        )
    ratings: Counter[str] = Counter()
    for p in series.query(MEASUREMENT_RATING, hall=hid, start=period.since, end=period.until):
        if p.fields.get("evaluation", 1) == 1:
            ratings[p.tags.get("level", "")] += 1
    events: Counter[str] = Counter(
        p.tags.get("event", "")
        for p in series.query(MEASUREMENT_TICKET, hall=hid, start=period.since, end=period.until)
    )
    waited = [
        float(p.fields.get("waited_s", 0.0) or 0.0)
        for p in series.query(MEASUREMENT_WAIT, hall=hid, start=period.since, end=period.until)
    ]
    report = DailyReport(
        hall=hid,
        day=day,
        period=period,
        windows=inputs.windows,
        anomalies_by_kind=tuple(sorted(Counter(kinds).items())),
        ratings_by_level=tuple(sorted(ratings.items())),
        tickets_by_event=tuple(sorted(events.items())),
        waits=WaitSummary(len(waited), max(waited, default=0.0)),
        incidents=tuple(incidents),
        unattributed_anomalies=inputs.unattributed_anomalies,
        reported=tuple(entries_of_day(state, hid, day)),
        departments=department_days(inputs.windows, hall),
    )
    logger.debug("daily report of %s for %s: %d windows", hid, day, len(report.windows))
    return report


def daily_document(report: DailyReport, hall: HallConfig) -> dict[str, Any]:
    """The report as a JSON document (times ISO 8601 in the hall's timezone)."""
    tz = hall.tzinfo

    def t(at: datetime) -> str | None:
        return format_time(at, tz, TimeFormat.ISO)

    return {
        "kind": "daily",
        "hall": report.hall,
        "day": report.day,
        "since": t(report.period.since),
        "until": t(report.period.until),
        "totals": {
            "cases_called": sum(w.cases_handled for w in report.windows),
            "anomalies": sum(n for _, n in report.anomalies_by_kind),
            "ratings": sum(n for _, n in report.ratings_by_level),
            "bad_ratings": sum(w.bad_ratings for w in report.windows),
            "off_post_minutes": round(sum(w.off_post_minutes for w in report.windows), 3),
            "waits_over_limit": report.waits.count,
            "hygiene_bad": sum(i.kind == AlertKind.HYGIENE_BAD for i in report.incidents),
            "device_offline": sum(i.kind == AlertKind.DEVICE_OFFLINE for i in report.incidents),
        },
        "windows": [asdict(w) for w in report.windows],
        "departments": [{**asdict(d), "windows": list(d.windows)} for d in report.departments],
        "anomalies_by_kind": dict(report.anomalies_by_kind),
        "unattributed_anomalies": report.unattributed_anomalies,
        "ratings_by_level": dict(report.ratings_by_level),
        "tickets_by_event": dict(report.tickets_by_event),
        "waits": asdict(report.waits),
        "incidents": [
            {
                "kind": i.kind,
                "subject": i.subject,
                "window": i.window,
                "start": t(i.start),
                "minutes": i.minutes,
            }
            for i in report.incidents
        ],
        "reported": [
            {
                "source": r.source,
                "item": r.item,
                "window": r.window,
                "value": r.value,
                "note": r.note,
                "entered_by": r.entered_by,
                "entered_at": t(r.entered_at),
            }
            for r in report.reported
        ],
    }


def report_digest(document: dict[str, Any]) -> str:
    """SHA-256 (hex) of a report document as canonical JSON."""
    text = json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_json(document: dict[str, Any], path: Path) -> None:
    """Write a report document as indented, key-sorted UTF-8 JSON."""
    text = json.dumps(document, sort_keys=True, ensure_ascii=False, indent=2) + "\n"
    path.write_text(text, encoding="utf-8")


def write_xlsx(document: dict[str, Any], path: Path) -> None:
    """Write a report document as a workbook: a summary sheet, then one sheet per list.

    Sheets: ``summary`` (scalar fields, totals, count tables), then ``windows``,
    ``departments``, ``incidents`` … (every list of objects, its keys as header; a list of
    ids in a cell as ``1, 2``). Workbook timestamps are
    fixed, so the same document writes the same file.
    """
    wb = Workbook()
    summary = wb.active
    assert summary is not None
    summary.title = "summary"
    for key, value in document.items():
        if isinstance(value, dict):
            for sub, n in value.items():
                summary.append([f"{key}.{sub}", n if not isinstance(n, dict | list) else None])
        elif not isinstance(value, list):
            summary.append([key, value])
    for key, value in document.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            sheet = wb.create_sheet(key[:31])
            header = list(value[0])
            sheet.append(header)
            for item in value:
                sheet.append([_cell(item.get(h)) for h in header])
    path.write_bytes(workbook_bytes(wb))


def workbook_bytes(wb: Workbook) -> bytes:
    """A workbook's XLSX bytes, the same for the same content: the document properties'
    times and the ZIP entries' times are fixed (openpyxl stamps both with the clock)."""
    wb.properties.created = FIXED_XLSX_TIME
    wb.properties.modified = FIXED_XLSX_TIME
    raw = io.BytesIO()
    wb.save(raw)
    out = io.BytesIO()
    stamp = FIXED_XLSX_TIME.timetuple()[:6]
    with (
        zipfile.ZipFile(io.BytesIO(raw.getvalue())) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=stamp)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":  # openpyxl sets modified on save
                data = _MODIFIED.sub(rb"\g<1>2000-01-01T00:00:00Z\g<2>", data)
            dst.writestr(fixed, data)
    return out.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value
