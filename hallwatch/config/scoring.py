"""Config of performance scores (绩效考核): the scoring model of a hall.

Every window starts a period at ``base`` points and loses points per item: warning
anomalies, red cards, 差评, started blocks of off-post minutes and appeals upheld. The
score never falls below 0. Departments and the hall are roll-ups of their windows'
scores. The rules and a worked example are in ``docs/scores.md``;
:mod:`aggregator.scores` applies the model.

Example:
    >>> model = ScoringModel(per_red_card=15)
    >>> model.base, model.per_warning, model.rollup
    (100.0, 2.0, 'mean')
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from hallwatch.config.errors import _Base

RollUp = Literal["mean", "weighted_by_cases"]
"""How window scores roll up to departments and the hall."""


class ScoringModel(_Base):
    """Performance scoring model (绩效考核): base score and deductions per item."""

    version: str = Field(
        default="default-2026.1",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Name of this model; shown with every score. Change it whenever a "
        "weight changes, so that scores of different models are never compared.",
    )
    base: float = Field(
        default=100.0, gt=0, le=1000, description="Points a window starts each period with."
    )
    per_warning: float = Field(
        default=2.0,
        ge=0,
        le=100,
        description="Points off per anomaly (异常办件) at warning level opened in the "
        "period (not overturned; 差评 anomalies count as 差评 instead).",
    )
    per_red_card: float = Field(
        default=10.0,
        ge=0,
        le=100,
        description="Points off per red card (红牌): an anomaly at red level, instead of "
        "its warning deduction.",
    )
    per_bad_rating: float = Field(
        default=1.0,
        ge=0,
        le=100,
        description="Points off per 差评 (first evaluation 不满意 or 非常不满意) at the "
        "window, less those whose anomaly was overturned on appeal.",
    )
    per_off_post_block: float = Field(
        default=1.0,
        ge=0,
        le=100,
        description="Points off per started block of off-post minutes (离岗) at the window.",
    )
    off_post_block_minutes: int = Field(
        default=10,
        ge=1,
        le=480,
        description="Length of an off-post block in minutes (1: per minute).",
    )
    per_appeal_upheld: float = Field(
        default=1.0,
        ge=0,
        le=100,
        description="Points off per appeal (申诉) upheld, i.e. the anomaly stood, on top of "
        "its own deduction. An overturned anomaly deducts nothing and earns no credit.",
    )
    rollup: RollUp = Field(
        default="mean",
        description="Department and hall scores: mean (plain mean of their windows) or "
        "weighted_by_cases (mean weighted by tickets called at each window; plain mean "
        "when none was called).",
    )

    @model_validator(mode="after")
    def _red_not_below_warning(self) -> ScoringModel:
        if self.per_red_card < self.per_warning:
            raise ValueError("per_red_card must not be below per_warning")
        return self
