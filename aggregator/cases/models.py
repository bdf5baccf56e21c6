"""Tables of the 异常办件 register (on :data:`aggregator.store.state.Base`).

- :class:`Anomaly`: one 异常办件. ``dedup_key`` (unique per hall) makes opening
  idempotent: ``wait:<ticket_id>:<leg>``, ``trips:<case_ref>:<trips>``, ``rating:<rating_id>``,
  ``manual:<id>``; replicas racing to open the same anomaly fail the unique key.
- :class:`AnomalyEvidence`: every fact that caused or changed an anomaly, as received
  (one row per anomaly and fact id).
- :class:`AnomalyTransition`: 全程留痕, one row per change.
- :class:`QueueStatus`: the current queue of each service, from ``queue`` facts.
- :class:`TicketCall`: every call of a ticket by a window, so that a wait anomaly gets
  its window even when the call's fact arrives before the wait fact (replicas, replays).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from aggregator.store.state import Base


class Anomaly(Base):
    """One 异常办件 (abnormal case)."""

    __tablename__ = "anomalies"
    __table_args__ = (
        UniqueConstraint("hall", "dedup_key", name="uq_anomalies_hall_dedup_key"),
        Index("anomalies_by_hall_opened", "hall", "opened"),
        Index("anomalies_by_window", "hall", "window", "opened"),
        Index("anomalies_by_ticket", "hall", "ticket_id"),
        Index("anomalies_by_due", "state", "level", "rectify_deadline"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    hall: Mapped[str] = mapped_column(String(64))
    dedup_key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    level: Mapped[str] = mapped_column(String(16))
    decision: Mapped[str | None] = mapped_column(String(16))
    """upheld / overturned once an appeal is decided (kept after closing)."""
    window: Mapped[str | None] = mapped_column(String(64))
    department: Mapped[str | None] = mapped_column(String(64))
    staff: Mapped[str | None] = mapped_column(String(64))
    service: Mapped[str | None] = mapped_column(String(64))
    case_no: Mapped[str | None] = mapped_column(String(64), index=True)
    case_ref: Mapped[str | None] = mapped_column(String(120))
    applicant_key: Mapped[str | None] = mapped_column(String(32))
    ticket_id: Mapped[str | None] = mapped_column(String(80))
    leg: Mapped[int | None] = mapped_column(Integer)
    rating_id: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(32))
    """The fact kind that opened it (wait, trips, rating) or the manual entry's source."""
    description: Mapped[str] = mapped_column(String(1000), default="")
    opened: Mapped[datetime]
    appeal_deadline: Mapped[datetime]
    rectify_deadline: Mapped[datetime | None]
    """None while appealed (suspended) or once overturned."""
    red_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class AnomalyEvidence(Base):
    """A fact (or an officer's input) that caused or changed an anomaly, as received."""

    __tablename__ = "anomaly_evidence"
    __table_args__ = (
        UniqueConstraint("anomaly_id", "fact_id", name="uq_anomaly_evidence_anomaly_fact"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    anomaly_id: Mapped[str] = mapped_column(ForeignKey("anomalies.id"), index=True)
    fact_id: Mapped[str | None] = mapped_column(String(40))
    fact_kind: Mapped[str] = mapped_column(String(32))
    ts: Mapped[datetime]
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)


class AnomalyTransition(Base):
    """One change of an anomaly (全程留痕): who, when, what, from and to."""

    __tablename__ = "anomaly_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    anomaly_id: Mapped[str] = mapped_column(ForeignKey("anomalies.id"), index=True)
    ts: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    from_level: Mapped[str | None] = mapped_column(String(16))
    to_level: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")


class QueueStatus(Base):
    """The current queue of one service (from the latest ``queue`` fact)."""

    __tablename__ = "queue_status"

    hall: Mapped[str] = mapped_column(String(64), primary_key=True)
    service: Mapped[str] = mapped_column(String(64), primary_key=True)
    waiting: Mapped[int] = mapped_column(Integer)
    longest_wait_s: Mapped[float] = mapped_column(Float)
    ts: Mapped[datetime]
    updated_at: Mapped[datetime]


class TicketCall(Base):
    """A window called (or started serving) a ticket: from ``ticket`` facts."""

    __tablename__ = "ticket_calls"
    __table_args__ = (Index("ticket_calls_by_ticket", "hall", "ticket_id", "at"),)

    fact_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    hall: Mapped[str] = mapped_column(String(64))
    ticket_id: Mapped[str] = mapped_column(String(80))
    at: Mapped[datetime]
    window: Mapped[str] = mapped_column(String(64))
    staff: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
