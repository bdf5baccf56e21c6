"""The export audit log: every export, who made it, when, what and how many rows.

:class:`ExportAudit` is a table of the state database (migration ``0002``); it is itself
exportable as the ``audit`` dataset (:func:`aggregator.export.sources.open_audit_source`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from aggregator.store.state import Base, StateStore
from hallwatch.contract import utcnow

logger = logging.getLogger(__name__)


class ExportAudit(Base):
    """One export (审计留痕 of exports)."""

    __tablename__ = "export_audit"
    __table_args__ = (Index("export_audit_by_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    """When the export finished (or was cut off)."""
    actor: Mapped[str] = mapped_column(String(64))
    """API caller name, or the OS user of ``hallwatch export``."""
    via: Mapped[str] = mapped_column(String(16))
    """``api`` or ``cli``."""
    hall: Mapped[str | None] = mapped_column(String(64))
    dataset: Mapped[str] = mapped_column(String(80))
    format: Mapped[str] = mapped_column(String(16))
    filters: Mapped[str] = mapped_column(Text, default="{}")
    """The filters as JSON (since, until, window, department, time_format)."""
    rows: Mapped[int] = mapped_column(Integer)
    completed: Mapped[bool] = mapped_column(Boolean)
    """False when the download was cut off before the last row."""


@dataclass(frozen=True, slots=True)
class ExportRecord:
    """What an audit entry records.

    Attributes:
        actor: Who exported.
        via: ``api`` or ``cli``.
        hall: Hall exported (None: the audit log across halls).
        dataset: Dataset name.
        format: ``csv``, ``xlsx`` or ``parquet``.
        rows: Data rows written.
        completed: Whether the export ran to its last row.
        filters: Filter values as strings.
    """

    actor: str
    via: str
    hall: str | None
    dataset: str
    format: str
    rows: int
    completed: bool = True
    filters: Mapping[str, str | None] = field(default_factory=dict)


def record_export(state: StateStore, record: ExportRecord, *, at: datetime | None = None) -> int:
    """Write one audit entry; returns its id."""
    row = ExportAudit(
        at=at or utcnow(),
        actor=record.actor,
        via=record.via,
        hall=record.hall,
        dataset=record.dataset,
        format=record.format,
        filters=json.dumps(
            {k: v for k, v in record.filters.items() if v is not None},
            ensure_ascii=False,
            sort_keys=True,
        ),
        rows=record.rows,
        completed=record.completed,
    )
    with state.session() as session:
        session.add(row)
        session.flush()
        entry_id = row.id
    logger.info(
        "export %s of %s (%s, %d rows) by %s via %s",
        record.dataset,
        record.hall,
        record.format,
        record.rows,
        record.actor,
        record.via,
    )
    return entry_id
