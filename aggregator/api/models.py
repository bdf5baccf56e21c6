"""Response models of the HTTP API (pydantic v2, described for the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from aggregator.notify.actions import Acknowledgement
from aggregator.notify.records import (
    ActionKind,
    AlertAction,
    AlertNotification,
    Channel,
    NotificationEvent,
    Outcome,
)
from aggregator.store.evidence import evidence_path
from aggregator.store.state import Alert
from hallwatch.config.zones import ZoneKind
from hallwatch.contract import (
    AlertKind,
    AlertState,
    DeviceKind,
    DeviceState,
    HygieneMethod,
    HygieneState,
    PostState,
    utcnow,
)


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


class CallOut(BaseModel):
    """The ticket a window called last today (叫号), from the queue machine."""

    ticket: str = Field(description="Ticket number as printed, e.g. A017.")
    at: datetime = Field(description="When it was called (or service started), UTC.")
    staff: str | None = Field(description="Staff id the machine reported, if any.")


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
    last_call: CallOut | None = Field(
        default=None,
        description="The ticket the post's window called last today (hall-local day): the "
        "one being served, unless finished since (finishes are not tracked here).",
    )


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
    kind: AlertKind = Field(
        description="Alert kind (off_post: 离岗, device_offline: 设备离线, hygiene_bad: 环境差, "
        "crowding: 人员拥挤, …)."
    )
    state: AlertState = Field(description="open or resolved.")
    post: str | None = Field(description="Post id, for post alerts.")
    window: str | None = Field(description="Window number, if any.")
    device: str | None = Field(description="Device id, for device_offline alerts.")
    zone: str | None = Field(description="Zone id, for hygiene_bad and crowding alerts.")
    start: datetime = Field(description="When the breach began (UTC).")
    end: datetime | None = Field(description="When it ended (UTC), once resolved.")
    duration_s: float = Field(
        description="Seconds from start to end, or to now while the alert is open."
    )
    opened_at: datetime = Field(description="When the alert was raised (UTC).")
    resolved_at: datetime | None = Field(description="When it was resolved (UTC).")
    message: str = Field(description="Human-readable message (Chinese).")
    evidence_url: str | None = Field(
        description="API path of the alert's snapshot (alerts from video; supervision "
        "officers, hall managers and admins only), null if it has none.",
    )
    acknowledged_by: str | None = Field(
        default=None, description="Who acknowledged it (已确认): escalation stopped then."
    )
    acknowledged_at: datetime | None = Field(
        default=None, description="When it was acknowledged (UTC); null: not yet."
    )

    @classmethod
    def of(
        cls, row: Alert, now: datetime | None = None, ack: Acknowledgement | None = None
    ) -> AlertOut:
        """From a stored alert (``now``: the end of an open alert's duration; ``ack``: its
        acknowledgement, if any)."""
        end = row.end if row.end is not None else (now or utcnow())
        return cls(
            id=row.id,
            hall=row.hall,
            kind=AlertKind(row.kind),
            state=AlertState(row.state),
            post=row.post,
            window=row.window,
            device=row.device,
            zone=row.zone,
            start=row.start,
            end=row.end,
            duration_s=max(0.0, (end - row.start).total_seconds()),
            opened_at=row.opened_at,
            resolved_at=row.resolved_at,
            message=row.message,
            evidence_url=evidence_path(row.hall, row.id) if row.evidence_id else None,
            acknowledged_by=ack.by if ack is not None else None,
            acknowledged_at=ack.at if ack is not None else None,
        )


class AlertPage(BaseModel):
    """A page of alerts, newest first."""

    items: list[AlertOut] = Field(description="Alerts on this page.")
    total: int = Field(description="Alerts matching the filters, on all pages.")
    limit: int = Field(description="Page size.")
    offset: int = Field(description="Alerts skipped before this page.")


class AlertNoteIn(BaseModel):
    """An optional note with an action (acknowledge)."""

    note: str = Field(default="", max_length=500, description="Note, e.g. 已通知窗口负责人.")


class AlertResolveIn(BaseModel):
    """Why an alert is resolved by hand (or what a comment says)."""

    note: str = Field(min_length=1, max_length=500, description="Note; required.")


class AlertActionOut(BaseModel):
    """A person's recorded action on an alert."""

    id: int = Field(description="Action id.")
    alert_id: str = Field(description="The alert (an alerts id or a 异常办件 id).")
    hall: str = Field(description="Hall id.")
    action: ActionKind = Field(description="acknowledge, resolve or comment.")
    actor: str = Field(description="Who (user name).")
    role: str = Field(description="Their role then.")
    at: datetime = Field(description="When (UTC).")
    note: str = Field(description="Their note.")

    @classmethod
    def of(cls, row: AlertAction) -> AlertActionOut:
        """From a stored action."""
        return cls(
            id=row.id,
            alert_id=row.alert_id,
            hall=row.hall,
            action=ActionKind(row.action),
            actor=row.actor,
            role=row.role,
            at=row.at,
            note=row.note,
        )


class AlertNotificationOut(BaseModel):
    """One notification the router decided (phone numbers are not shown)."""

    recipient: str = Field(description="Recipient id (routing.recipients[].id).")
    level: int = Field(description="Escalation level (1..3).")
    channel: Channel = Field(description="mqtt (the recipient's topic) or sms.")
    event: NotificationEvent = Field(description="alert, red_card, resolved or summary.")
    at: datetime = Field(description="When it was decided (UTC).")
    outcome: Outcome = Field(
        description="sent, held (quiet hours), dropped, rate_limited, summarized, flapping, "
        "refused, failed, no_gateway, or sending."
    )
    sent_at: datetime | None = Field(description="When it was handed over (UTC).")
    detail: str = Field(description="Why, for outcomes other than sent.")

    @classmethod
    def of(cls, row: AlertNotification) -> AlertNotificationOut:
        """From a stored notification."""
        return cls(
            recipient=row.recipient,
            level=row.level,
            channel=Channel(row.channel),
            event=NotificationEvent(row.event),
            at=row.at,
            outcome=Outcome(row.outcome),
            sent_at=row.sent_at,
            detail=row.detail,
        )


class AlertActionsOut(BaseModel):
    """What was done about an alert: people's actions and the notifications sent."""

    alert_id: str = Field(description="The alert.")
    hall: str = Field(description="Hall id.")
    open: bool = Field(description="Whether the alert is still open.")
    acknowledged_by: str | None = Field(description="Who acknowledged it, if anyone.")
    acknowledged_at: datetime | None = Field(description="When (UTC).")
    actions: list[AlertActionOut] = Field(description="Actions, oldest first.")
    notifications: list[AlertNotificationOut] = Field(description="Notifications, oldest first.")


class ZoneHygieneOut(BaseModel):
    """A zone's hygiene grade (环境好 / 环境差)."""

    state: HygieneState = Field(description="good (环境好) or bad (环境差).")
    since: datetime = Field(description="When the grade began (UTC).")
    score: float = Field(description="Fraction of the zone that differs (classifier: probability).")
    method: HygieneMethod = Field(description="reference, classifier or both.")


class ZoneOccupancyOut(BaseModel):
    """A zone's latest people count."""

    count: int = Field(description="People in the zone (median of the interval's looks).")
    peak: int = Field(description="Most people at one look in the interval.")
    crowded: bool = Field(description="Whether the count reached the zone's crowding_at.")
    at: datetime = Field(description="End of the interval counted (UTC).")
    crowded_since: datetime | None = Field(description="Start of the current crowding (UTC).")


class ZoneOut(BaseModel):
    """One configured zone (区域) with its live state."""

    id: str = Field(description="Zone id.")
    name: str = Field(description="Display name, e.g. 候办区.")
    kind: ZoneKind = Field(description="window_public, waiting_area, self_service, entrance …")
    camera: str = Field(description="Camera that sees it.")
    window: str | None = Field(description="Window whose public area it is, if any.")
    grades_hygiene: bool = Field(description="Whether its hygiene is graded (环境好/差).")
    counts_people: bool = Field(description="Whether its people are counted.")
    crowding_at: int | None = Field(description="People count from which it is crowded.")
    hygiene: ZoneHygieneOut | None = Field(
        description="Hygiene grade; null before any report (the grade defaults to 环境好)."
    )
    occupancy: ZoneOccupancyOut | None = Field(description="Latest count; null before any.")
    hygiene_alert: str | None = Field(description="Id of its open hygiene_bad alert, if any.")
    crowding_alert: str | None = Field(description="Id of its open crowding alert, if any.")


class ZoneOccupancyStats(BaseModel):
    """People in one zone over a time range."""

    zone: str = Field(description="Zone id.")
    name: str = Field(description="Display name (the id for a zone the config does not list).")
    reports: int = Field(description="Occupancy intervals reported in the range.")
    peak: int | None = Field(description="Most people at one look; null without reports.")
    mean: float | None = Field(description="Mean of the intervals' means; null without reports.")
    crowded_reports: int = Field(description="Intervals reported crowded.")


class OccupancyOut(BaseModel):
    """Occupancy of a hall's zones over ``[since, until)`` (intervals ending in it)."""

    hall: str = Field(description="Hall id.")
    since: datetime = Field(description="Range start (UTC).")
    until: datetime = Field(description="Range end, exclusive (UTC).")
    zones: list[ZoneOccupancyStats] = Field(description="Counted zones, in config order.")


class FlowBucketOut(BaseModel):
    """People in and out during one hour or day (hall-local)."""

    start: datetime = Field(description="Bucket start, in the hall's timezone (with offset).")
    in_count: int = Field(description="Crossings into the hall.")
    out_count: int = Field(description="Crossings out of the hall.")
    reports: int = Field(description="Flow intervals reported (0: no data, not no people).")


class FlowZoneOut(BaseModel):
    """One entrance's totals over the range."""

    zone: str = Field(description="Entrance zone id.")
    name: str = Field(description="Display name (the id for a zone the config does not list).")
    in_count: int = Field(description="Crossings into the hall.")
    out_count: int = Field(description="Crossings out of the hall.")


class FlowOut(BaseModel):
    """Flow of people through a hall's entrances, per hour or per day."""

    hall: str = Field(description="Hall id.")
    bucket: Literal["hour", "day"] = Field(description="Bucket size.")
    timezone: str = Field(description="Timezone the buckets are cut in (the hall's).")
    since: datetime = Field(description="Range start (UTC).")
    until: datetime = Field(description="Range end, exclusive (UTC).")
    buckets: list[FlowBucketOut] = Field(
        description="Every bucket overlapping the range, oldest first; an interval counts in "
        "the bucket of its start."
    )
    zones: list[FlowZoneOut] = Field(description="Totals per entrance.")
    in_count: int = Field(description="Total crossings into the hall.")
    out_count: int = Field(description="Total crossings out of the hall.")


class HealthOut(BaseModel):
    """Readiness of the aggregator."""

    status: str = Field(description="ok, or unavailable when a check failed.")
    checks: dict[str, str] = Field(description="Each check's result: ok or the reason.")
