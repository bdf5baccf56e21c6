"""Response models of the HTTP API (pydantic v2, described for the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from aggregator.store.state import Alert
from hallwatch.contract import AlertKind, AlertState, DeviceKind, DeviceState, PostState


class EdgeOut(BaseModel):
    """Last status of one edge worker."""

    source: str = Field(description="Edge worker id.")
    state: DeviceState = Field(description="online or offline.")
    ts: datetime = Field(description="Time of the status message (UTC).")


class HallCounts(BaseModel):
    """Counts over a hall's posts and alerts."""

    posts: int = Field(description="Posts configured.")
    on_post: int = Field(description="Posts staffed (在岗).")
    off_post: int = Field(description="Posts unstaffed (离岗).")
    unknown: int = Field(description="Posts that have not reported yet.")
    cameras_offline: int = Field(description="Cameras reported offline.")
    open_alerts: int = Field(description="Open alerts.")


class HallOut(BaseModel):
    """One hall and its live summary."""

    id: str = Field(description="Hall id.")
    name: str = Field(description="Display name.")
    timezone: str = Field(description="IANA timezone of its service hours.")
    in_service: bool = Field(description="Whether the hall is serving now (off-post rules apply).")
    edge_online: bool | None = Field(
        description="True if every edge worker reported online, false if one is offline, "
        "null if none has reported."
    )
    edges: list[EdgeOut] = Field(description="Edge workers' last status.")
    counts: HallCounts = Field(description="Post and alert counts.")


class PostOut(BaseModel):
    """One post (岗位) with its live state."""

    id: str = Field(description="Post id.")
    name: str = Field(description="Display name, e.g. 3号窗口.")
    kind: str = Field(description="guide, helper, consult, front_desk or back_office.")
    window: str | None = Field(description="Window (窗口) number, if any.")
    camera: str = Field(description="Camera that sees the post.")
    state: PostState | None = Field(description="on_post / off_post; null before any report.")
    since: datetime | None = Field(description="When the post entered its state (UTC).")
    last_report: datetime | None = Field(description="Time of the latest presence fact (UTC).")
    camera_online: bool | None = Field(
        description="Camera state: false while offline (the post is not judged), null if "
        "the camera has not reported."
    )
    off_post_after_s: float = Field(description="Off-post threshold in service seconds.")
    open_alert: str | None = Field(description="Id of the post's open off-post alert, if any.")


class DeviceOut(BaseModel):
    """One device of a hall (a camera or another configured device) with its live state."""

    id: str = Field(description="Device id (a camera id for cameras).")
    name: str = Field(description="Display name (the id if the config gives none).")
    kind: DeviceKind = Field(description="camera, queue_machine, evaluator, kiosk, screen, …")
    configured: bool = Field(
        description="Whether the hall config lists it (false: reported by the edge only)."
    )
    state: DeviceState | None = Field(description="online / offline; null before any report.")
    since: datetime | None = Field(description="When the device entered its state (UTC).")
    reason: str = Field(description="Why it is offline, as the edge reported it.")
    last_report: datetime | None = Field(description="Time of the latest device fact (UTC).")
    open_alert: str | None = Field(description="Id of the device's open offline alert, if any.")


class AlertOut(BaseModel):
    """One alert."""

    id: str = Field(description="Alert id (ULID).")
    hall: str = Field(description="Hall id.")
    kind: AlertKind = Field(description="Alert kind (off_post: 离岗, device_offline: 设备离线).")
    state: AlertState = Field(description="open or resolved.")
    post: str | None = Field(description="Post id, for post alerts.")
    window: str | None = Field(description="Window number, if any.")
    device: str | None = Field(description="Device id, for device_offline alerts.")
    start: datetime = Field(description="When the breach began (UTC).")
    end: datetime | None = Field(description="When it ended (UTC), once resolved.")
    opened_at: datetime = Field(description="When the alert was raised (UTC).")
    resolved_at: datetime | None = Field(description="When it was resolved (UTC).")
    message: str = Field(description="Human-readable message (Chinese).")

    @classmethod
    def of(cls, row: Alert) -> AlertOut:
        """From a stored alert."""
        return cls(
            id=row.id,
            hall=row.hall,
            kind=AlertKind(row.kind),
            state=AlertState(row.state),
            post=row.post,
            window=row.window,
            device=row.device,
            start=row.start,
            end=row.end,
            opened_at=row.opened_at,
            resolved_at=row.resolved_at,
            message=row.message,
        )


class AlertPage(BaseModel):
    """A page of alerts, newest first."""

    items: list[AlertOut] = Field(description="Alerts on this page.")
    total: int = Field(description="Alerts matching the filters, on all pages.")
    limit: int = Field(description="Page size.")
    offset: int = Field(description="Alerts skipped before this page.")


class HealthOut(BaseModel):
    """Readiness of the aggregator."""

    status: str = Field(description="ok, or unavailable when a check failed.")
    checks: dict[str, str] = Field(description="Each check's result: ok or the reason.")
