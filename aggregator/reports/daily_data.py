"""Daily data entered by hand or imported from a file, for systems that cannot push.

Some figures of the daily report (日报) come from systems without an interface to the
aggregator (the 政务服务 case system, the consultation hotline …). A hall manager or
supervision officer enters them through the API or uploads the template
(:data:`TEMPLATE_HEADER`) as CSV or XLSX (:mod:`aggregator.reports.daily_import`); they are
kept in the ``daily_data`` table (migration ``0004``) and listed in the daily report's
``reported`` section.

One value per key (hall, day, source, item, window): entering the same key again
*replaces* the value, note, enterer and time (idempotent; the previous value is logged at
INFO, not kept). A hall-wide value has no window (stored as ``""``, so that the unique key
holds: SQL treats NULLs as distinct).

Items are a closed list (:data:`ITEMS`), values are finite numbers in
``[0, MAX_VALUE]``. :func:`check_entry` checks one entry; :func:`parse_rows` checks a
file's rows (the CSV and the XLSX reader both hand it their rows), reporting every problem
as ``line N: field: message`` (``row N`` for a workbook).

Example:
    >>> entries, problems = parse_csv("day,source,item,window,value,note\\n"
    ...                               "2026-11-23,zwfw,cases_received,,12,\\n")
    >>> entries[0].item, entries[0].value, problems
    ('cases_received', 12.0, [])
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Float, Integer, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, mapped_column

from aggregator.store.state import Base, StateStore
from hallwatch.contract import utcnow

logger = logging.getLogger(__name__)

ITEMS: dict[str, str] = {
    "cases_received": "cases received (受理件数)",
    "cases_completed": "cases completed (办结件数)",
    "cases_on_time": "cases completed within the time limit (按时办结件数)",
    "consultations": "consultations answered (咨询件数)",
    "complaints": "complaints received (投诉件数)",
}
"""The items that may be entered, with what they count."""

MAX_VALUE = 1_000_000.0
"""Largest value accepted (every item is a count of one hall's day)."""

TEMPLATE_HEADER: tuple[str, ...] = ("day", "source", "item", "window", "value", "note")
"""Columns of the import file, in this order (one header line, then one entry a line)."""

MAX_IMPORT_LINES = 10_000
"""Most entries (non-blank lines or rows) one file may hold."""
MAX_SCANNED_ROWS = 100_000
"""Most lines or rows read, blank ones included (a sheet formatted far down)."""
NOTE_MAX = 500
_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_WINDOW = re.compile(r"^[^\s,]{1,32}$")


class DailyData(Base):
    """One entered value (one row per hall, day, source, item and window)."""

    __tablename__ = "daily_data"
    __table_args__ = (
        UniqueConstraint(
            "hall", "day", "source", "item", "window", name="uq_daily_data_hall_day_source_item"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    hall: Mapped[str] = mapped_column(String(64))
    day: Mapped[str] = mapped_column(String(10))
    """Hall-local day, ``YYYY-MM-DD``."""
    source: Mapped[str] = mapped_column(String(64))
    """The system the figure comes from (e.g. ``zwfw``), or ``manual``."""
    item: Mapped[str] = mapped_column(String(32))
    window: Mapped[str] = mapped_column(String(32), default="")
    """Window id; ``""`` for a hall-wide value."""
    value: Mapped[float] = mapped_column(Float)
    note: Mapped[str] = mapped_column(String(NOTE_MAX), default="")
    entered_by: Mapped[str] = mapped_column(String(64))
    entered_at: Mapped[datetime]


@dataclass(frozen=True, slots=True)
class DailyEntry:
    """A checked entry.

    Attributes:
        day: The day the value is for.
        source: Source system id.
        item: One of :data:`ITEMS`.
        window: Window id (None: hall-wide).
        value: The value.
        note: Free text.
    """

    day: date
    source: str
    item: str
    window: str | None
    value: float
    note: str = ""


@dataclass(frozen=True, slots=True)
class EntryProblem:
    """What is wrong with one field of one entry.

    Attributes:
        line: File line, sheet row or list position (from 1).
        field: The column (or ``header``, ``line``, ``file``).
        message: What is wrong.
        unit: ``line`` (CSV, JSON list) or ``row`` (XLSX).
        sheet: The worksheet, named when the workbook has more than one.
    """

    line: int
    field: str
    message: str
    unit: str = "line"
    sheet: str | None = None

    def __str__(self) -> str:
        where = f"{self.unit} {self.line}"
        if self.sheet is not None:
            where += f" (sheet {self.sheet})"
        return f"{where}: {self.field}: {self.message}"


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """An entry as stored, with who entered it and when."""

    hall: str
    day: str
    source: str
    item: str
    window: str | None
    value: float
    note: str
    entered_by: str
    entered_at: datetime


@dataclass(frozen=True, slots=True)
class SaveResult:
    """What :func:`save_entries` did."""

    created: int
    replaced: int


def check_entry(
    line: int,
    fields: dict[str, object],
    windows: Collection[str] = (),
) -> tuple[DailyEntry | None, list[EntryProblem]]:
    """Check the raw fields of one entry.

    Args:
        line: Its line (file) or position (list), for the problems.
        fields: ``day``, ``source``, ``item``, ``window``, ``value``, ``note`` (text or numbers).
        windows: The hall's window ids (empty: any window id is accepted).

    Returns:
        The entry (None when there is a problem) and every problem found.
    """
    problems: list[EntryProblem] = []

    def bad(name: str, message: str) -> None:
        problems.append(EntryProblem(line, name, message))

    text = {k: "" if v is None else str(v).strip() for k, v in fields.items()}
    day: date | None = None
    try:
        day = date.fromisoformat(text.get("day", ""))
        if len(text["day"]) != 10:
            raise ValueError
    except ValueError:
        bad("day", "must be a date YYYY-MM-DD")
        day = None
    source = text.get("source", "")
    if not _ID.match(source):
        bad("source", "must be 1-64 letters, digits, '_', '.' or '-'")
    item = text.get("item", "")
    if item not in ITEMS:
        bad("item", f"must be one of {', '.join(ITEMS)}")
    window = text.get("window", "") or None
    if window is not None and (not _WINDOW.match(window) or (windows and window not in windows)):
        bad("window", f"unknown window {window!r}")
    value = math.nan
    try:
        value = float(text.get("value", ""))
    except ValueError:
        bad("value", "must be a number")
    else:
        if not math.isfinite(value) or not 0.0 <= value <= MAX_VALUE:
            bad("value", f"must be between 0 and {MAX_VALUE:g}")
    note = text.get("note", "")
    if len(note) > NOTE_MAX:
        bad("note", f"longer than {NOTE_MAX} characters")
    if problems or day is None:
        return None, problems
    return DailyEntry(day, source, item, window, value, note), []


def _blank(cell: object) -> bool:
    return cell is None or str(cell).strip() == ""


def parse_rows(
    rows: Iterable[Sequence[object]],
    windows: Collection[str] = (),
    *,
    unit: str = "line",
    sheet: str | None = None,
) -> tuple[list[DailyEntry], list[EntryProblem]]:
    """Check the rows of an import file: the header (:data:`TEMPLATE_HEADER`), then entries.

    The one check of every import format: the CSV reader hands it its lines as text, the
    XLSX reader its rows as cell values (numbers, dates made text). Rows are numbered from
    1 (the header); blank rows are skipped; a row must have exactly the template's columns.

    Args:
        rows: The file's rows, header first.
        windows: The hall's window ids (empty: any).
        unit: How problems name a row (``line`` or ``row``).
        sheet: The worksheet to name in problems (None: none).

    Returns:
        The entries and every problem (store nothing when there is any).
    """

    def problem(number: int, name: str, message: str) -> EntryProblem:
        return EntryProblem(number, name, message, unit, sheet)

    it = iter(rows)
    header = next(it, None)
    if header is None or tuple(str(h or "").strip() for h in header) != TEMPLATE_HEADER:
        return [], [problem(1, "header", f"must be {','.join(TEMPLATE_HEADER)}")]
    entries: list[DailyEntry] = []
    problems: list[EntryProblem] = []
    count = 0
    for number, row in enumerate(it, start=2):
        if number > MAX_SCANNED_ROWS:
            return [], [problem(number, "file", f"more than {MAX_SCANNED_ROWS} {unit}s")]
        if all(_blank(cell) for cell in row):
            continue
        count += 1
        if count > MAX_IMPORT_LINES:
            return [], [problem(number, "file", f"more than {MAX_IMPORT_LINES} entries")]
        if len(row) != len(TEMPLATE_HEADER):
            problems.append(
                problem(number, unit, f"{len(row)} fields, want {len(TEMPLATE_HEADER)}")
            )
            continue
        entry, found = check_entry(number, dict(zip(TEMPLATE_HEADER, row, strict=True)), windows)
        problems.extend(problem(p.line, p.field, p.message) for p in found)
        if entry is not None:
            entries.append(entry)
    return entries, problems


def parse_csv(
    content: str, windows: Collection[str] = ()
) -> tuple[list[DailyEntry], list[EntryProblem]]:
    """Parse a CSV import file (UTF-8 text, BOM allowed) with :func:`parse_rows`.

    Line numbers count the header as line 1. Blank lines are skipped.

    Returns:
        The entries and every problem (store nothing when there is any).
    """
    return parse_rows(csv.reader(io.StringIO(content.lstrip("\ufeff"))), windows)


def template_csv() -> str:
    """The import template: the header line only."""
    return ",".join(TEMPLATE_HEADER) + "\r\n"


def save_entries(
    state: StateStore,
    hall: str,
    entries: Sequence[DailyEntry],
    entered_by: str,
    *,
    at: datetime | None = None,
) -> SaveResult:
    """Store entries in one transaction; an existing key's row is replaced.

    Within ``entries`` the last entry of a key wins.
    """
    now = at or utcnow()
    created = replaced = 0
    with state.session() as session:
        for e in entries:
            day, window = e.day.isoformat(), e.window or ""
            row = session.scalars(
                select(DailyData).where(
                    DailyData.hall == hall,
                    DailyData.day == day,
                    DailyData.source == e.source,
                    DailyData.item == e.item,
                    DailyData.window == window,
                )
            ).one_or_none()
            if row is None:
                session.add(
                    DailyData(
                        hall=hall,
                        day=day,
                        source=e.source,
                        item=e.item,
                        window=window,
                        value=e.value,
                        note=e.note,
                        entered_by=entered_by,
                        entered_at=now,
                    )
                )
                session.flush()
                created += 1
                continue
            logger.info(
                "daily data %s/%s/%s/%s/%s replaced by %s: %s -> %s",
                hall, day, e.source, e.item, window or "-", entered_by, row.value, e.value,
            )  # fmt: skip
            row.value, row.note, row.entered_by, row.entered_at = e.value, e.note, entered_by, now
            replaced += 1
    return SaveResult(created=created, replaced=replaced)


def entries_of_day(state: StateStore, hall: str, day: str) -> list[StoredEntry]:
    """The hall's entries for ``day`` (``YYYY-MM-DD``), by source, item, window."""
    with state.read_session() as session:
        rows = session.scalars(
            select(DailyData)
            .where(DailyData.hall == hall, DailyData.day == day)
            .order_by(DailyData.source, DailyData.item, DailyData.window)
        ).all()
        return [
            StoredEntry(
                hall=r.hall,
                day=r.day,
                source=r.source,
                item=r.item,
                window=r.window or None,
                value=r.value,
                note=r.note,
                entered_by=r.entered_by,
                entered_at=r.entered_at,
            )
            for r in rows
        ]
