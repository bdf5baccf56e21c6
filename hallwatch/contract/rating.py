"""Facts from the evaluators (评价器): ratings of a service (好差评).

The five levels are stored by name, never by number: GB/T 39046-2020 numbers them
1 = 非常满意 … 5 = 非常不满意 and some provincial platforms the other way round, so a
number on its own is ambiguous. Each vendor adapter at the edge maps its own codes.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, Field

from hallwatch.contract._base import ID_PATTERN, FactKind, _FactBase, _Model
from hallwatch.contract.queue import CODE_PATTERN, TICKET_ID_PATTERN


class RatingLevel(StrEnum):
    """The five named levels of 好差评."""

    VERY_SATISFIED = "very_satisfied"
    SATISFIED = "satisfied"
    BASICALLY_SATISFIED = "basically_satisfied"
    DISSATISFIED = "dissatisfied"
    VERY_DISSATISFIED = "very_dissatisfied"

    @property
    def label(self) -> str:
        """The Chinese name (非常满意 … 非常不满意)."""
        return RATING_LABELS[self]

    @property
    def is_bad(self) -> bool:
        """差评: 不满意 or 非常不满意."""
        return self in (RatingLevel.DISSATISFIED, RatingLevel.VERY_DISSATISFIED)


RATING_LABELS: dict[RatingLevel, str] = {
    RatingLevel.VERY_SATISFIED: "非常满意",
    RatingLevel.SATISFIED: "满意",
    RatingLevel.BASICALLY_SATISFIED: "基本满意",
    RatingLevel.DISSATISFIED: "不满意",
    RatingLevel.VERY_DISSATISFIED: "非常不满意",
}


class RatingDimension(StrEnum):
    """Optional dimensions an evaluator may rate separately."""

    ATTITUDE = "attitude"
    """服务态度."""
    QUALITY = "quality"
    """服务质量."""
    EFFICIENCY = "efficiency"
    """办事效率."""
    INTEGRITY = "integrity"
    """廉洁."""


class Attitude(StrEnum):
    """服务态度 好 / 差."""

    GOOD = "good"
    BAD = "bad"


class RatingChannel(StrEnum):
    """Where the rating was given (评价渠道)."""

    EVALUATOR = "evaluator"
    """The window's evaluator device (评价器)."""
    APP = "app"
    WEB = "web"
    SMS = "sms"
    PHONE = "phone"
    KIOSK = "kiosk"
    OTHER = "other"


class RatingBody(_Model):
    """One rating, normalised."""

    rating_id: str = Field(
        pattern=CODE_PATTERN,
        description="The vendor's id of this rating, or one the edge derives from its "
        "content; the same rating sent twice has the same id.",
    )
    at: AwareDatetime = Field(description="When the applicant rated (device clock).")
    level: RatingLevel = Field(description="Overall level, by name.")
    dimensions: dict[RatingDimension, RatingLevel] = Field(
        default_factory=dict, description="Levels of optional dimensions (态度, 质量, …)."
    )
    attitude: Attitude | None = Field(default=None, description="服务态度 good/bad, if asked.")
    channel: RatingChannel = Field(default=RatingChannel.EVALUATOR, description="评价渠道.")
    evaluation: Literal[1, 2] = Field(default=1, description="1: first, 2: second (二次评价).")
    case_no: str | None = Field(default=None, pattern=CODE_PATTERN, description="办件编号.")
    ticket_id: str | None = Field(default=None, pattern=TICKET_ID_PATTERN)
    window: str | None = Field(default=None, pattern=CODE_PATTERN, description="Window number.")
    staff: str | None = Field(default=None, pattern=CODE_PATTERN, description="Staff id.")
    device: str | None = Field(
        default=None, pattern=ID_PATTERN, description="Evaluator device id (for device health)."
    )


class RatingFact(_FactBase):
    kind: Literal[FactKind.RATING] = FactKind.RATING
    body: RatingBody
