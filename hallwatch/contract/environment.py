"""Facts about the hall itself: hygiene of the windows' public areas, people in zones, flow.

Art. 5 of the rule asks the supervision system to watch the hall's environment: each
window's public area is 环境好 (the default) or 环境差; the distribution of people over
the hall's zones (候办区, 自助服务区, 出入口); and the flow of people in and out.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, Field

from hallwatch.contract._base import ID_PATTERN, FactKind, _FactBase, _Model
from hallwatch.contract.evidence import Evidence


class HygieneState(StrEnum):
    """The two grades of a window's public area."""

    GOOD = "good"
    """环境好 (the default)."""
    BAD = "bad"
    """环境差: litter, papers, cups or items left behind, for longer than allowed."""


class HygieneMethod(StrEnum):
    """What judged the zone."""

    REFERENCE = "reference"
    """Difference from the zone's clean reference image."""
    CLASSIFIER = "classifier"
    """The hall's own trained classifier alone."""
    BOTH = "both"
    """The reference difference, confirmed by the classifier."""


class HygieneBody(_Model):
    """A window's public area changed grade (sent on every change)."""

    camera: str = Field(pattern=ID_PATTERN, description="Camera that sees the zone.")
    zone: str = Field(pattern=ID_PATTERN, description="Zone id from the hall config.")
    window: str | None = Field(default=None, max_length=32, description="Window number.")
    state: HygieneState = Field(description="good (环境好) or bad (环境差).")
    since: AwareDatetime = Field(
        description="bad: when the difference was first seen; good: when it was first clear."
    )
    score: float = Field(
        ge=0, le=1, description="Fraction of the zone that differs (classifier: probability)."
    )
    method: HygieneMethod = Field(default=HygieneMethod.REFERENCE, description="What judged.")
    evidence: Evidence | None = Field(default=None, description="Snapshot (on a change to bad).")


class OccupancyBody(_Model):
    """People in one zone over one interval (a gauge, sent every interval)."""

    camera: str = Field(pattern=ID_PATTERN, description="Camera that sees the zone.")
    zone: str = Field(pattern=ID_PATTERN, description="Zone id from the hall config.")
    start: AwareDatetime = Field(description="Start of the interval (UTC).")
    interval_s: float = Field(gt=0, le=86400, description="Length of the interval.")
    count: int = Field(ge=0, le=100_000, description="Median of the interval's looks.")
    peak: int = Field(ge=0, le=100_000, description="Most people seen at one look.")
    mean: float = Field(ge=0, le=100_000, description="Mean over the looks.")
    looks: int = Field(ge=1, description="Looks in the interval.")
    crowded: bool = Field(default=False, description="count reached the zone's crowding_at.")
    evidence: Evidence | None = Field(
        default=None, description="Snapshot, when the zone has just become crowded."
    )


class FlowBody(_Model):
    """People who crossed an entrance line in one interval."""

    camera: str = Field(pattern=ID_PATTERN, description="Camera that sees the line.")
    zone: str = Field(pattern=ID_PATTERN, description="Entrance zone id from the hall config.")
    start: AwareDatetime = Field(description="Start of the interval (UTC).")
    interval_s: float = Field(gt=0, le=86400, description="Length of the interval.")
    in_count: int = Field(ge=0, le=1_000_000, description="Crossings into the hall.")
    out_count: int = Field(ge=0, le=1_000_000, description="Crossings out of the hall.")


class HygieneFact(_FactBase):
    kind: Literal[FactKind.HYGIENE] = FactKind.HYGIENE
    body: HygieneBody


class OccupancyFact(_FactBase):
    kind: Literal[FactKind.OCCUPANCY] = FactKind.OCCUPANCY
    body: OccupancyBody


class FlowFact(_FactBase):
    kind: Literal[FactKind.FLOW] = FactKind.FLOW
    body: FlowBody
