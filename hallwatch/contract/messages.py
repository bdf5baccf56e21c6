"""Messages that are not facts: the edge's retained status, and alerts to hall managers."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, Field

from hallwatch.contract._base import ID_PATTERN, _Model, utcnow
from hallwatch.contract.video import DeviceState


class EdgeStatus(_Model):
    """Retained on ``edge_status_topic``; the ``offline`` form is the MQTT will."""

    hall: str = Field(pattern=ID_PATTERN)
    source: str = Field(pattern=ID_PATTERN)
    state: DeviceState
    ts: AwareDatetime = Field(default_factory=utcnow)
    schema_version: Literal[1] = Field(default=1, alias="schema")


class AnomalyKind(StrEnum):
    """Kinds of 异常办件 (abnormal case)."""

    WAIT_OVER_LIMIT = "wait_over_limit"
    """窗口等待超过 30 分钟."""
    TRIPS_OVER_PROMISE = "trips_over_promise"
    """跑动次数超过承诺."""
    BAD_RATING = "bad_rating"
    """差评: 不满意 or 非常不满意."""
    BAD_ATTITUDE = "bad_attitude"
    """服务态度差."""
    MANUAL = "manual"
    """Entered by a supervision officer (complaint, inspection, instruction)."""


class AnomalyLevel(StrEnum):
    """Escalation level of an anomaly."""

    WARNING = "warning"
    """预警 / 黄牌: raised when the anomaly opens."""
    RED = "red"
    """红牌: not rectified by its deadline, or too many anomalies at one window."""


class AlertKind(StrEnum):
    """Kinds of alert on the alerts topic: off-post, device offline, every kind of 异常办件."""

    OFF_POST = "off_post"
    DEVICE_OFFLINE = "device_offline"
    """A device (camera, queue machine, kiosk, …) shows no sign of life."""
    HYGIENE_BAD = "hygiene_bad"
    """环境差: a window's public area is not clean (a reminder to the hall manager)."""
    CROWDING = "crowding"
    """A zone holds at least its configured number of people."""
    WAIT_OVER_LIMIT = "wait_over_limit"
    TRIPS_OVER_PROMISE = "trips_over_promise"
    BAD_RATING = "bad_rating"
    BAD_ATTITUDE = "bad_attitude"
    MANUAL = "manual"


class AlertState(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class AlertMessage(_Model):
    """An alert as published to hall managers on ``alerts_topic``.

    For a 异常办件 the ``id`` is the anomaly's id and the message is sent again, with the
    same id, when its level rises to red and when it is closed (``resolved``).
    """

    id: str = Field(description="Alert id; the same id is re-sent when the alert resolves.")
    hall: str = Field(pattern=ID_PATTERN)
    kind: AlertKind
    state: AlertState
    post: str | None = None
    window: str | None = None
    device: str | None = Field(default=None, max_length=64, description="device_offline: which.")
    zone: str | None = Field(
        default=None, max_length=64, description="hygiene_bad, crowding: which zone."
    )
    evidence_url: str | None = Field(
        default=None, max_length=200, description="API path of the alert's snapshot, if any."
    )
    start: AwareDatetime = Field(description="When the breach began.")
    end: AwareDatetime | None = Field(default=None, description="When it ended, if resolved.")
    message: str = Field(default="", max_length=500, description="Human-readable, Chinese.")
    level: AnomalyLevel | None = Field(
        default=None, description="异常办件: warning (预警/黄牌) or red (红牌)."
    )
    case_no: str | None = Field(default=None, max_length=64, description="异常办件: 办件编号.")
    deadline: AwareDatetime | None = Field(
        default=None, description="异常办件: when it must be rectified."
    )
    ts: AwareDatetime = Field(default_factory=utcnow)
    schema_version: Literal[1] = Field(default=1, alias="schema")
