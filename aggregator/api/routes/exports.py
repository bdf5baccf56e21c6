"""Exports for auditors: a hall's datasets as CSV, XLSX or Parquet, streamed, and the
export audit log.

``GET /api/v1/halls/{hall}/exports/{dataset}`` (datasets: ``alerts``, ``anomalies``,
``anomaly_transitions``, ``series/<measurement>``) and ``GET /api/v1/exports/audit``.
Roles: ``auditor``, ``supervision_officer``, ``admin`` (the audit log: ``auditor`` and
``admin``). Naive ``since``/``until`` are hall-local (the audit log: UTC). Every export,
the audit log's included, is recorded when its last chunk is sent (``completed`` false if
the download was cut off).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, tzinfo
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import StreamingResponse

from aggregator.api.deps import Caller, HallDep, Role, ServicesDep, require_roles
from aggregator.api.params import ApiTime
from aggregator.export import (
    ExportFormat,
    ExportQuery,
    ExportRecord,
    ExportSource,
    TimeFormat,
    UnknownDatasetError,
    export_chunks,
    open_audit_source,
    open_source,
    record_export,
)
from aggregator.store.state import StateStore

logger = logging.getLogger(__name__)

router = APIRouter(tags=["exports"])

ExporterDep = Annotated[
    Caller, Depends(require_roles(Role.AUDITOR, Role.SUPERVISION_OFFICER, Role.ADMIN))
]
AuditReaderDep = Annotated[Caller, Depends(require_roles(Role.AUDITOR, Role.ADMIN))]
FormatQuery = Annotated[ExportFormat, Query(alias="format", description="csv, xlsx or parquet.")]
TimeFormatQuery = Annotated[
    TimeFormat, Query(description="iso (with the hall's offset) or gbt (yyyy-MM-dd HH:mm:ss).")
]
SinceQuery = Annotated[ApiTime | None, Query(description="From this time (inclusive).")]
UntilQuery = Annotated[ApiTime | None, Query(description="Until this time (exclusive).")]


def _aware(value: datetime | None, tz: tzinfo) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=tz) if value.tzinfo is None else value


def _stream(
    source: ExportSource, fmt: ExportFormat, state: StateStore, record: ExportRecord
) -> Iterator[bytes]:
    """The file's chunks; the audit entry is written when the stream ends or is cut off."""
    rows = 0

    def count(n: int) -> None:
        nonlocal rows
        rows += n

    completed = False
    try:
        yield from export_chunks(source, fmt, on_rows=count)
        completed = True
    finally:
        entry = ExportRecord(
            actor=record.actor, via=record.via, hall=record.hall, dataset=record.dataset,
            format=record.format, rows=rows, completed=completed, filters=record.filters,
        )  # fmt: skip
        record_export(state, entry)


def _response(
    source: ExportSource, fmt: ExportFormat, state: StateStore, record: ExportRecord, name: str
) -> StreamingResponse:
    filename = f"{name}.{fmt.value}"
    return StreamingResponse(
        _stream(source, fmt, state, record),
        media_type=fmt.media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/halls/{hall}/exports/{dataset:path}", summary="Export a dataset of a hall")
def export_dataset(
    dataset: str,
    config: HallDep,
    services: ServicesDep,
    caller: ExporterDep,
    fmt: FormatQuery = ExportFormat.CSV,
    since: SinceQuery = None,
    until: UntilQuery = None,
    window: Annotated[str | None, Query(description="Only this window.")] = None,
    department: Annotated[str | None, Query(description="Only this department.")] = None,
    time_format: TimeFormatQuery = TimeFormat.ISO,
) -> StreamingResponse:
    """A dataset of the hall as a file download, streamed (memory stays flat)."""
    tz = config.tzinfo
    query = ExportQuery(
        hall=config, since=_aware(since, tz), until=_aware(until, tz), window=window,
        department=department, time_format=time_format,
    )  # fmt: skip
    if department is not None and not any(d.id == department for d in config.departments):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown department {department!r}")
    try:
        source = open_source(dataset, query, state=services.state, series=services.series)
    except UnknownDatasetError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    record = ExportRecord(
        actor=caller.name, via="api", hall=config.hall.id, dataset=dataset, format=fmt.value,
        rows=0, filters=query.filters(),
    )  # fmt: skip
    name = f"{config.hall.id}-{dataset.replace('/', '-')}"
    return _response(source, fmt, services.state, record, name)


@router.get("/exports/audit", summary="Export the export audit log")
def export_audit_log(
    services: ServicesDep,
    caller: AuditReaderDep,
    fmt: FormatQuery = ExportFormat.CSV,
    since: SinceQuery = None,
    until: UntilQuery = None,
    time_format: TimeFormatQuery = TimeFormat.ISO,
) -> StreamingResponse:
    """The audit log of exports (entries of the caller's halls), oldest first, in UTC."""
    source = open_audit_source(
        services.state, tz=UTC, halls=caller.halls, since=_aware(since, UTC),
        until=_aware(until, UTC), time_format=time_format,
    )  # fmt: skip
    filters = {
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "time_format": time_format.value,
    }
    record = ExportRecord(
        actor=caller.name, via="api", hall=None, dataset="audit", format=fmt.value, rows=0,
        filters=filters,
    )  # fmt: skip
    return _response(source, fmt, services.state, record, "export-audit")
