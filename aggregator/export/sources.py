"""Row sources of exports: one generator of dict rows per dataset.

Rows come from the stores page by page (alerts, anomalies, the audit log: keyset pages of
``page_size`` rows) or time window by time window (``series/<measurement>``: ``chunk``
of time per query, one hour by default), so an export of a year of a hall holds one page
or one hour of points in memory.

Series datasets also come as Arrow record batches (:attr:`ExportSource.batches`, built by
:mod:`aggregator.export.columnar` from the store's columnar read), which the CSV and
Parquet writers use; XLSX writes the rows.

Filters: ``since <= time < until`` (alert start, anomaly opened, transition time, point
time, audit time); ``window``; ``department`` — the windows the hall config gives that
department (anomalies use their recorded department). Series points without a ``window``
tag are left out when a window or department is asked for.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import pyarrow as pa
from sqlalchemy import ColumnElement, and_, or_, select

from aggregator.cases.models import Anomaly, AnomalyTransition
from aggregator.export.audit import ExportAudit
from aggregator.export.columnar import series_batches
from aggregator.export.columns import Column
from aggregator.export.timefmt import TimeFormat, format_time
from aggregator.store.state import Alert, StateStore
from aggregator.store.timeseries import TimeSeriesStore, series_columns
from hallwatch.config.models import HallConfig

logger = logging.getLogger(__name__)

Cell = str | int | float | bool | None
Row = dict[str, Cell]

SERIES_PREFIX = "series/"
DATASETS = ("alerts", "anomalies", "anomaly_transitions", "series/<measurement>")
"""Datasets of a hall (plus ``audit``, the export audit log)."""


class UnknownDatasetError(ValueError):
    """The dataset name is not one of :data:`DATASETS`."""


@dataclass(frozen=True, slots=True)
class ExportQuery:
    """What to export of a hall.

    Attributes:
        hall: The hall's configuration (id, timezone, windows of departments).
        since: Inclusive lower bound (aware); None: from the start (series: ``until``
            minus one day).
        until: Exclusive upper bound (aware); None: now.
        window: Only this window.
        department: Only this department's windows.
        time_format: How times are written.
    """

    hall: HallConfig
    since: datetime | None = None
    until: datetime | None = None
    window: str | None = None
    department: str | None = None
    time_format: TimeFormat = TimeFormat.ISO

    def windows(self) -> frozenset[str] | None:
        """The windows admitted (None: all)."""
        admitted: frozenset[str] | None = None
        if self.department is not None:
            admitted = frozenset(w.id for w in self.hall.windows if w.department == self.department)
        if self.window is not None:
            only = frozenset({self.window})
            admitted = only if admitted is None else admitted & only  # both must hold
        return admitted

    def filters(self) -> dict[str, str | None]:
        """The filters as strings (for the audit log)."""
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "window": self.window,
            "department": self.department,
            "time_format": self.time_format.value,
        }


@dataclass(frozen=True, slots=True)
class ExportSource:
    """A dataset ready to write: its columns, a lazy iterator of rows and, for series,
    the same data as lazy Arrow record batches (schema
    :func:`~aggregator.export.columns.arrow_schema` of the columns).

    A writer consumes one of the two: ``batches`` where it can (CSV, Parquet), else
    ``rows``.
    """

    dataset: str
    columns: tuple[Column, ...]
    rows: Iterator[Row]
    batches: Iterator[pa.RecordBatch] | None = None


def _keyset_pages(
    state: StateStore,
    model: Any,
    time_col: Any,
    conds: Sequence[ColumnElement[bool]],
    page_size: int,
) -> Iterator[Any]:
    """Rows of ``model`` ordered by (time, id), ``page_size`` per read transaction."""
    last: tuple[datetime, Any] | None = None
    while True:
        stmt = select(model).where(*conds)
        if last is not None:
            stmt = stmt.where(
                or_(time_col > last[0], and_(time_col == last[0], model.id > last[1]))
            )
        stmt = stmt.order_by(time_col, model.id).limit(page_size)
        with state.read_session() as session:
            page = list(session.scalars(stmt))
            session.expunge_all()
        yield from page
        if len(page) < page_size:
            return
        last = (getattr(page[-1], time_col.key), page[-1].id)


def _range(col: Any, query: ExportQuery) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if query.since is not None:
        conds.append(col >= query.since)
    if query.until is not None:
        conds.append(col < query.until)
    return conds


ALERT_COLUMNS = tuple(
    Column(n)
    for n in (
        "id", "hall", "kind", "state", "post", "window", "department", "device", "zone",
        "start", "end", "opened_at", "resolved_at", "message", "evidence_id",
    )
)  # fmt: skip


def alert_rows(state: StateStore, query: ExportQuery, *, page_size: int = 1000) -> Iterator[Row]:
    """Alerts of the hall by start, oldest first."""
    hall, tz, fmt = query.hall, query.hall.tzinfo, query.time_format
    conds = [Alert.hall == hall.hall.id, *_range(Alert.start, query)]
    windows = query.windows()
    if windows is not None:
        conds.append(Alert.window.in_(sorted(windows)))
    for a in _keyset_pages(state, Alert, Alert.start, conds, page_size):
        yield {
            "id": a.id, "hall": a.hall, "kind": a.kind, "state": a.state, "post": a.post,
            "window": a.window, "department": hall.department_of(a.window) if a.window else None,
            "device": a.device, "zone": a.zone, "start": format_time(a.start, tz, fmt),
            "end": format_time(a.end, tz, fmt), "opened_at": format_time(a.opened_at, tz, fmt),
            "resolved_at": format_time(a.resolved_at, tz, fmt), "message": a.message,
            "evidence_id": a.evidence_id,
        }  # fmt: skip


_ANOMALY_FIELDS = (
    "id", "hall", "kind", "state", "level", "decision", "window", "department", "staff",
    "service", "case_no", "source", "description",
)  # fmt: skip
_ANOMALY_TIMES = ("opened", "appeal_deadline", "rectify_deadline", "red_at", "closed_at")
ANOMALY_COLUMNS = (
    *(Column(n) for n in _ANOMALY_FIELDS + _ANOMALY_TIMES),
    Column("transitions", "int"),
    Column("lifecycle"),
)


def _anomaly_conds(query: ExportQuery) -> list[ColumnElement[bool]]:
    conds = [Anomaly.hall == query.hall.hall.id, *_range(Anomaly.opened, query)]
    if query.window is not None:
        conds.append(Anomaly.window == query.window)
    if query.department is not None:
        conds.append(Anomaly.department == query.department)
    return conds


def anomaly_rows(state: StateStore, query: ExportQuery, *, page_size: int = 500) -> Iterator[Row]:
    """异常办件 by opening time, each with its lifecycle summarised: the number of
    transitions and ``action→state@time by actor`` joined with ``; ``."""
    tz, fmt = query.hall.tzinfo, query.time_format
    page: list[Anomaly] = []

    def flush() -> Iterator[Row]:
        ids = [a.id for a in page]
        with state.read_session() as session:
            stmt = (
                select(AnomalyTransition)
                .where(AnomalyTransition.anomaly_id.in_(ids))
                .order_by(AnomalyTransition.ts, AnomalyTransition.id)
            )
            steps: dict[str, list[str]] = {i: [] for i in ids}
            for t in session.scalars(stmt):
                when = format_time(t.ts, tz, fmt)
                steps[t.anomaly_id].append(f"{t.action}→{t.to_state}@{when} by {t.actor}")
        for a in page:
            row: Row = {n: getattr(a, n) for n in _ANOMALY_FIELDS}
            row.update({n: format_time(getattr(a, n), tz, fmt) for n in _ANOMALY_TIMES})
            row["transitions"] = len(steps[a.id])
            row["lifecycle"] = "; ".join(steps[a.id])
            yield row

    for anomaly in _keyset_pages(state, Anomaly, Anomaly.opened, _anomaly_conds(query), page_size):
        page.append(anomaly)
        if len(page) >= page_size:
            yield from flush()
            page = []
    if page:
        yield from flush()


TRANSITION_COLUMNS = tuple(
    Column(n)
    for n in (
        "anomaly_id", "hall", "window", "department", "ts", "actor", "action", "from_state",
        "to_state", "from_level", "to_level", "note",
    )
)  # fmt: skip


def transition_rows(
    state: StateStore, query: ExportQuery, *, page_size: int = 1000
) -> Iterator[Row]:
    """Every transition (全程留痕) of the hall's anomalies opened in the range, by
    anomaly opening time, then transition time."""
    tz, fmt = query.hall.tzinfo, query.time_format
    conds = _anomaly_conds(query)
    last: tuple[datetime, str] | None = None
    while True:
        stmt = select(Anomaly.id, Anomaly.opened, Anomaly.window, Anomaly.department).where(*conds)
        if last is not None:
            stmt = stmt.where(
                or_(Anomaly.opened > last[0], and_(Anomaly.opened == last[0], Anomaly.id > last[1]))
            )
        stmt = stmt.order_by(Anomaly.opened, Anomaly.id).limit(page_size)
        with state.read_session() as session:
            owners = {r.id: r for r in session.execute(stmt)}
            steps = list(
                session.scalars(
                    select(AnomalyTransition)
                    .where(AnomalyTransition.anomaly_id.in_(list(owners)))
                    .order_by(AnomalyTransition.ts, AnomalyTransition.id)
                )
            )
            session.expunge_all()
        by_owner: dict[str, list[AnomalyTransition]] = {i: [] for i in owners}
        for t in steps:
            by_owner[t.anomaly_id].append(t)
        for owner_id, owner in owners.items():
            for t in by_owner[owner_id]:
                yield {
                    "anomaly_id": owner_id, "hall": query.hall.hall.id, "window": owner.window,
                    "department": owner.department, "ts": format_time(t.ts, tz, fmt),
                    "actor": t.actor, "action": t.action, "from_state": t.from_state,
                    "to_state": t.to_state, "from_level": t.from_level, "to_level": t.to_level,
                    "note": t.note,
                }  # fmt: skip
        if len(owners) < page_size:
            return
        last_owner = list(owners.values())[-1]
        last = (last_owner.opened, last_owner.id)


_TEXT_FIELDS = frozenset({"summary", "reason", "evaluation"})


def _series_columns(tags: Sequence[str], fields: dict[str, Any]) -> tuple[Column, ...]:
    cols = [Column("time"), Column("hall")] + [Column(t) for t in tags if t != "hall"]
    for name in sorted(fields):
        value = fields[name]
        text = name in _TEXT_FIELDS or isinstance(value, str)
        cols.append(Column(name, "str" if text else "float"))
    return (*cols, Column("extra"))


def series_source(
    series: TimeSeriesStore,
    measurement: str,
    query: ExportQuery,
    *,
    chunk: timedelta = timedelta(hours=1),
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ExportSource:
    """Points of one measurement, one column per tag and field (from the first non-empty
    time window; keys seen only later go to the ``extra`` JSON column).

    Rows come from ``query()``, ``chunk`` of time per store query; batches from the
    store's columnar read (:func:`~aggregator.store.timeseries.series_columns`).
    """
    until = query.until or now()
    since = query.since or until - timedelta(days=1)
    hall, tz, fmt = query.hall.hall.id, query.hall.tzinfo, query.time_format
    windows = query.windows()

    def windows_of_time() -> Iterator[list[Any]]:
        start = since
        while start < until:
            end = min(start + chunk, until)
            points = series.query(measurement, hall=hall, start=start, end=end)
            if windows is not None:
                points = [p for p in points if p.tags.get("window") in windows]
            yield points
            start = end

    chunks = windows_of_time()
    first: list[Any] = []
    for first in chunks:
        if first:
            break
    tag_names: set[str] = set()
    field_values: dict[str, Any] = {}
    for p in first:
        tag_names.update(p.tags)
        for k, v in p.fields.items():
            field_values.setdefault(k, v)
    columns = _series_columns(sorted(tag_names), field_values)
    known = {c.name for c in columns}

    def rows() -> Iterator[Row]:
        def pending() -> Iterator[list[Any]]:
            yield first
            yield from chunks

        last_time, last_text = None, None  # points of one instant share its text
        for points in pending():
            for p in points:
                if p.time != last_time:
                    last_time, last_text = p.time, format_time(p.time, tz, fmt)
                row: Row = {"time": last_text}
                extra: dict[str, Any] = {}
                for k, v in (*p.tags.items(), *p.fields.items()):
                    if k in known:
                        row[k] = v
                    else:
                        extra[k] = v
                row["extra"] = (
                    json.dumps(extra, ensure_ascii=False, sort_keys=True) if extra else None
                )
                yield row

    column_chunks = series_columns(series, measurement, hall=hall, start=since, end=until)
    batches = series_batches(column_chunks, columns, tz=tz, fmt=fmt, windows=windows)
    return ExportSource(f"{SERIES_PREFIX}{measurement}", columns, rows(), batches)


AUDIT_COLUMNS = (
    Column("id", "int"), Column("at"), Column("actor"), Column("via"), Column("hall"),
    Column("dataset"), Column("format"), Column("filters"), Column("rows", "int"),
    Column("completed", "bool"),
)  # fmt: skip


def open_audit_source(
    state: StateStore,
    *,
    tz: tzinfo = UTC,
    halls: frozenset[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    time_format: TimeFormat = TimeFormat.ISO,
    page_size: int = 1000,
) -> ExportSource:
    """The export audit log (``halls``: only entries of those halls), oldest first."""
    conds: list[ColumnElement[bool]] = []
    if halls is not None:
        conds.append(ExportAudit.hall.in_(sorted(halls)))
    if since is not None:
        conds.append(ExportAudit.at >= since)
    if until is not None:
        conds.append(ExportAudit.at < until)

    def rows() -> Iterator[Row]:
        for e in _keyset_pages(state, ExportAudit, ExportAudit.at, conds, page_size):
            yield {
                "id": e.id, "at": format_time(e.at, tz, time_format), "actor": e.actor,
                "via": e.via, "hall": e.hall, "dataset": e.dataset, "format": e.format,
                "filters": e.filters, "rows": e.rows, "completed": e.completed,
            }  # fmt: skip

    return ExportSource("audit", AUDIT_COLUMNS, rows())


def open_source(
    dataset: str,
    query: ExportQuery,
    *,
    state: StateStore,
    series: TimeSeriesStore | None = None,
) -> ExportSource:
    """The rows of one dataset of a hall.

    Raises:
        UnknownDatasetError: Not a dataset (or ``series/…`` without a time-series store).
    """
    if dataset == "alerts":
        return ExportSource(dataset, ALERT_COLUMNS, alert_rows(state, query))
    if dataset == "anomalies":
        return ExportSource(dataset, ANOMALY_COLUMNS, anomaly_rows(state, query))
    if dataset == "anomaly_transitions":
        return ExportSource(dataset, TRANSITION_COLUMNS, transition_rows(state, query))
    if dataset.startswith(SERIES_PREFIX) and len(dataset) > len(SERIES_PREFIX):
        if series is None:
            raise UnknownDatasetError(f"{dataset}: no time-series store configured")
        return series_source(series, dataset[len(SERIES_PREFIX) :], query)
    raise UnknownDatasetError(f"unknown dataset {dataset!r}; one of {', '.join(DATASETS)}")
