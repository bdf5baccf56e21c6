"""Facts from video and the edge itself: post presence, device state, pipeline stats."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, Field

from hallwatch.contract._base import ID_PATTERN, FactKind, _FactBase, _Model
from hallwatch.contract.evidence import Evidence


class PostState(StrEnum):
    """在岗在位 / 离岗."""

    ON_POST = "on_post"
    OFF_POST = "off_post"


class DeviceKind(StrEnum):
    """设备: what a device is (Art. 5: machine room, computers, screens, kiosks, cameras, lifts)."""

    CAMERA = "camera"
    QUEUE_MACHINE = "queue_machine"
    """排队叫号机."""
    EVALUATOR = "evaluator"
    """评价器."""
    KIOSK = "kiosk"
    """自助终端."""
    SCREEN = "screen"
    """显示屏 (call screens, information screens)."""
    COMPUTER = "computer"
    """窗口电脑."""
    MACHINE_ROOM = "machine_room"
    """机房 (its environment sensors or UPS)."""
    LIFT = "lift"
    """电梯."""
    OTHER = "other"


class DeviceState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class PresenceBody(_Model):
    """A post's staffing changed, or a periodic summary of it."""

    camera: str = Field(pattern=ID_PATTERN, description="Camera the post is seen by.")
    post: str = Field(pattern=ID_PATTERN, description="Post id from the hall config.")
    window: str | None = Field(default=None, max_length=32, description="Window number.")
    state: PostState = Field(description="on_post or off_post.")
    since: AwareDatetime = Field(description="When the post entered this state (UTC).")
    summary: bool = Field(
        default=False, description="True for a periodic summary, false for a change."
    )
    score: float | None = Field(
        default=None, ge=0, le=1, description="Best accepted person score at the last look."
    )
    evidence: Evidence | None = Field(
        default=None, description="Snapshot of the post, on a change to off_post."
    )


class DeviceBody(_Model):
    """A device went online or offline."""

    device: str = Field(pattern=ID_PATTERN, description="Device id (a camera id for cameras).")
    device_kind: DeviceKind = Field(description="What kind of device.")
    state: DeviceState = Field(description="online or offline.")
    reason: str = Field(default="", max_length=500, description="Why, for offline.")


class StatsBody(_Model):
    """The edge pipeline's own health over the last interval."""

    interval_s: float = Field(gt=0, description="Length of the interval these figures cover.")
    cameras_online: int = Field(ge=0, description="Cameras delivering frames.")
    cameras_total: int = Field(ge=0, description="Cameras configured.")
    frames_looked: int = Field(ge=0, description="Frames analysed in the interval.")
    crops_inferred: int = Field(ge=0, description="Post crops run through the detector.")
    crops_skipped: int = Field(ge=0, description="Post crops skipped by the motion gate.")
    inference_ms_mean: float = Field(ge=0, description="Mean detector time per crop.")
    outbox_depth: int = Field(ge=0, description="Facts written but not yet acknowledged.")


class PresenceFact(_FactBase):
    kind: Literal[FactKind.PRESENCE] = FactKind.PRESENCE
    body: PresenceBody


class DeviceFact(_FactBase):
    kind: Literal[FactKind.DEVICE] = FactKind.DEVICE
    body: DeviceBody


class StatsFact(_FactBase):
    kind: Literal[FactKind.STATS] = FactKind.STATS
    body: StatsBody
