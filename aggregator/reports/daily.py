"""The daily report (日报) of a hall: a frozen value, its JSON document and XLSX file.

:func:`build_daily` reads one period (the previous working day's cut-off to this day's,
:mod:`aggregator.reports.schedule`) from the state database and the series store:

- per window (from :func:`aggregator.scores.gather_inputs`): cases called, warnings, red
  cards, 差评, off-post minutes;
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
import json
import logging
from collections import Counter
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
class DailyReport:
    """One hall's daily report.

    Attributes:
        hall: Hall id.
        day: The working day (``YYYY-MM-DD``, hall-local).
        period: ``[since, until)``: previous working day's cut-off to this one's.
        windows: Per-window figures, sorted by window.
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
    ``incidents`` … (every list of objects, its keys as header). Workbook timestamps are
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
    wb.properties.created = FIXED_XLSX_TIME
    wb.properties.modified = FIXED_XLSX_TIME
    wb.save(path)


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value
