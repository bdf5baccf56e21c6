"""Config of the 异常办件 register: windows and departments, deadlines, escalation, SMS.

The aggregator reads these sections of each hall's file; the rules are in
``docs/cases.md``.
"""

from __future__ import annotations

from pydantic import Field

from hallwatch.config.errors import _Base
from hallwatch.contract import CODE_PATTERN, AnomalyKind, AnomalyLevel


class DepartmentConfig(_Base):
    """A department (部门) with staff at the hall, e.g. 税务局."""

    id: str = Field(pattern=CODE_PATTERN, description="Department id, e.g. tax.")
    name: str = Field(min_length=1, max_length=100, description="Display name, e.g. 县税务局.")


class WindowConfig(_Base):
    """A window (窗口): who it belongs to, for the 异常办件 register."""

    id: str = Field(
        pattern=CODE_PATTERN,
        description="Window number as the queue machine and evaluators send it (and as "
        "posts[].window).",
    )
    name: str = Field(default="", max_length=100, description="Display name, e.g. 3号窗口.")
    department: str | None = Field(
        default=None, max_length=64, description="Department id (departments[].id)."
    )


class RedCardRule(_Base):
    """红牌 for a window that collects too many anomalies."""

    anomalies: int = Field(
        default=3, ge=2, le=100, description="Anomalies at one window that make a red card."
    )
    period_days: int = Field(
        default=30, ge=1, le=366, description="… within this many calendar days."
    )


class CasePolicyConfig(_Base):
    """Deadlines and escalation of 异常办件 (working days on the hall's calendar)."""

    appeal_working_days: int = Field(
        default=10, ge=1, le=60, description="An anomaly can be appealed (申诉) this long."
    )
    rectify_working_days: int = Field(
        default=5,
        ge=1,
        le=60,
        description="An anomaly must be rectified (整改) this long after it opens (or after "
        "an appeal is upheld); past it the anomaly escalates to a red card.",
    )
    red_card: RedCardRule = Field(
        default_factory=RedCardRule, description="Red card for repeated anomalies."
    )


class SmsRecipient(_Base):
    """A person who gets the hall's 异常办件 by SMS."""

    name: str = Field(min_length=1, max_length=50, description="Name, e.g. 大厅负责人 张三.")
    phone: str = Field(pattern=r"^\+?[0-9]{6,20}$", description="Mobile number.")
    kinds: list[AnomalyKind] = Field(
        default_factory=lambda: list(AnomalyKind),
        description="Which anomaly kinds (default: all).",
    )
    min_level: AnomalyLevel = Field(
        default=AnomalyLevel.WARNING, description="warning (every anomaly) or red (red only)."
    )


class NotifyConfig(_Base):
    """Who is told about the hall's anomalies (MQTT alerts topic always; SMS here)."""

    sms: list[SmsRecipient] = Field(
        default_factory=list, max_length=100, description="SMS recipients."
    )
