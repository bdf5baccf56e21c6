"""Request and response models of the 异常办件 routes (``/api/v1/halls/{hall}/anomalies``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from aggregator.cases.lifecycle import CaseState, Decision, ManualSource
from aggregator.cases.models import Anomaly, QueueStatus
from aggregator.cases.register import AnomalyDetail
from hallwatch.contract import CODE_PATTERN, AnomalyKind, AnomalyLevel, Attitude, RatingLevel
from hallwatch.privacy import mask_id_numbers_text


class AnomalyOut(BaseModel):
    """One 异常办件."""

    id: str = Field(description="Anomaly id (ULID); also the id of its alerts.")
    hall: str = Field(description="Hall id.")
    kind: AnomalyKind = Field(description="wait_over_limit, trips_over_promise, bad_rating, …")
    state: CaseState = Field(description="open, appealed, upheld, overturned, rectified, closed.")
    level: AnomalyLevel = Field(description="warning (预警/黄牌) or red (红牌).")
    decision: Decision | None = Field(description="Appeal decision, once decided.")
    window: str | None = Field(description="Window number, once known.")
    department: str | None = Field(description="Department id.")
    staff: str | None = Field(description="Staff id.")
    service: str | None = Field(description="Service (queue) code.")
    case_no: str | None = Field(description="办件编号.")
    case_ref: str | None = Field(description="Case reference of trips anomalies.")
    ticket_id: str | None = Field(description="Ticket id (YYYYMMDD-number).")
    leg: int | None = Field(description="Wait anomalies: the ticket's leg.")
    rating_id: str | None = Field(description="Rating anomalies: the rating's id.")
    source: str = Field(description="Fact kind that opened it, or the manual entry's source.")
    description: str = Field(description="What happened (Chinese).")
    opened: datetime = Field(description="When it happened (UTC).")
    appeal_deadline: datetime = Field(description="Appeals accepted before this time (UTC).")
    rectify_deadline: datetime | None = Field(
        description="Must be rectified before this time (UTC); null while appealed or "
        "once overturned."
    )
    red_at: datetime | None = Field(description="When it turned red (UTC).")
    closed_at: datetime | None = Field(description="When it was closed (UTC).")
    updated_at: datetime = Field(description="Last change (UTC).")

    @classmethod
    def of(cls, row: Anomaly) -> AnomalyOut:
        """From a stored anomaly."""
        return cls(**_columns(row))


def _columns(row: Anomaly) -> dict[str, Any]:
    return {name: getattr(row, name) for name in AnomalyOut.model_fields}


class EvidenceOut(BaseModel):
    """A fact (or an officer's input) that caused or changed an anomaly."""

    model_config = ConfigDict(from_attributes=True)

    fact_id: str | None = Field(description="Fact id; null for an officer's input.")
    fact_kind: str = Field(description="wait, trips, rating, ticket, manual, …")
    ts: datetime = Field(description="Fact time (UTC).")
    payload: dict[str, Any] = Field(description="The fact as received.")


class TransitionOut(BaseModel):
    """One change of an anomaly (全程留痕)."""

    model_config = ConfigDict(from_attributes=True)

    ts: datetime = Field(description="When (UTC).")
    actor: str = Field(description="Who (system for rules).")
    action: str = Field(description="opened, appeal, second_evaluation, decision, rectify, …")
    from_state: str | None
    to_state: str
    from_level: str | None
    to_level: str
    note: str


class AnomalyDetailOut(AnomalyOut):
    """An anomaly with its evidence and transitions (oldest first)."""

    evidence: list[EvidenceOut]
    transitions: list[TransitionOut]

    @classmethod
    def of_detail(cls, detail: AnomalyDetail) -> AnomalyDetailOut:
        """From a register detail."""
        return cls(
            **_columns(detail.anomaly),
            evidence=[EvidenceOut.model_validate(e) for e in detail.evidence],
            transitions=[TransitionOut.model_validate(t) for t in detail.transitions],
        )


class AnomalyPage(BaseModel):
    """A page of anomalies."""

    items: list[AnomalyOut]
    total: int = Field(description="Anomalies matching the filters.")
    limit: int
    offset: int


class ManualEntryIn(BaseModel):
    """An officer's entry (投诉、检查、督办)."""

    model_config = ConfigDict(extra="forbid")

    source: ManualSource = Field(description="complaint_phone, complaint_web, inspection, …")
    description: str = Field(
        min_length=1, max_length=1000, description="What happened (ID numbers blanked)."
    )
    window: str | None = Field(default=None, pattern=CODE_PATTERN)
    department: str | None = Field(default=None, max_length=64)
    staff: str | None = Field(default=None, pattern=CODE_PATTERN)
    case_no: str | None = Field(default=None, pattern=CODE_PATTERN)
    service: str | None = Field(default=None, pattern=CODE_PATTERN)
    opened: AwareDatetime | None = Field(default=None, description="When it happened; now.")

    @field_validator("description")
    @classmethod
    def _no_id_numbers(cls, value: str) -> str:
        # A complaint often quotes the complainant's 身份证号: it must not be kept or sent.
        return mask_id_numbers_text(value)


class NoteIn(BaseModel):
    """An action with an optional note."""

    model_config = ConfigDict(extra="forbid")

    note: str = Field(default="", max_length=2000, description="Free text (ID numbers blanked).")

    @field_validator("note")
    @classmethod
    def _no_id_numbers(cls, value: str) -> str:
        return mask_id_numbers_text(value)


class SecondEvaluationIn(NoteIn):
    """A second evaluation (二次评价) entered by an officer."""

    level: RatingLevel = Field(description="Overall level of the second evaluation.")
    attitude: Attitude | None = Field(default=None, description="服务态度 good/bad.")


class DecisionIn(NoteIn):
    """A reviewer's decision of an appeal."""

    decision: Decision = Field(description="upheld or overturned.")


class QueueOut(BaseModel):
    """The current queue of one service."""

    model_config = ConfigDict(from_attributes=True)

    service: str = Field(description="Service (queue) code.")
    name: str = Field(default="", description="Service name from the hall config.")
    waiting: int = Field(description="Tickets waiting.")
    longest_wait_s: float = Field(description="Longest current wait, by the wait clock.")
    ts: datetime = Field(description="Time of the gauge (UTC).")

    @classmethod
    def of(cls, row: QueueStatus, name: str = "") -> QueueOut:
        """From a stored row."""
        return cls(
            service=row.service,
            name=name,
            waiting=row.waiting,
            longest_wait_s=row.longest_wait_s,
            ts=row.ts,
        )
