"""Deciding and claiming notifications: the rules :class:`~aggregator.notify.routing.AlertRouter`
applies inside its transactions.

A notification is *claimed* by inserting its :class:`~aggregator.notify.records.AlertNotification`
row (unique per alert, recipient, level, channel and event) with the outcome decided at
once: ``sending`` (hand it over after commit), ``held`` (quiet hours), ``rate_limited``,
``flapping`` or ``no_gateway``. An insert that collides means it was claimed before: it
is not sent again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from prometheus_client import Counter
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aggregator.notify.channels import notification_text, recipient_topic
from aggregator.notify.records import (
    ActionKind,
    AlertAction,
    AlertNotification,
    Channel,
    NotificationEvent,
    Outcome,
    RoutedAlert,
)
from aggregator.notify.sms import mask_phone
from hallwatch.config.models import HallConfig
from hallwatch.config.routing import RoutingRecipient
from hallwatch.contract import AlertKind, AlertMessage, AlertState, encode

logger = logging.getLogger(__name__)

NOTIFICATIONS = Counter(
    "hallwatch_alert_notifications",
    "Alert notifications decided by the router, by channel and outcome.",
    ["channel", "outcome"],
)

HOUR = timedelta(hours=1)
OPEN = AlertState.OPEN.value
RESOLVED = AlertState.RESOLVED.value
STOPPERS = (ActionKind.ACKNOWLEDGE.value, ActionKind.RESOLVE.value)
"""Actions after which an alert neither escalates nor releases held texts."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """A claimed notification to hand over once its row is committed."""

    notification_id: int
    channel: Channel
    recipient: str
    address: str
    """The MQTT topic, or the phone number."""
    body: bytes | str
    """The MQTT payload, or the SMS text."""
    key: str = ""
    """The SMS client's dedup key."""


@dataclass(frozen=True, slots=True)
class ChannelsOn:
    """Which channels this aggregator can send on."""

    mqtt: bool
    sms: bool


def subject_of(alert: AlertMessage) -> str | None:
    """What a rule-driven alert is about (flapping is judged per subject; None: a case).

    >>> from datetime import UTC, datetime
    >>> subject_of(AlertMessage(id="a", hall="h", kind=AlertKind.OFF_POST,
    ...     state=AlertState.OPEN, post="w1", start=datetime(2026, 1, 1, tzinfo=UTC)))
    'post:w1'
    """
    if alert.level is not None:
        return None
    for name in ("post", "device", "zone"):
        value = getattr(alert, name)
        if value:
            return f"{name}:{value}"[:80]
    return None


def claim(
    session: Session,
    hall: HallConfig,
    row: RoutedAlert,
    levels: Iterable[int],
    event: NotificationEvent,
    now: datetime,
    on: ChannelsOn,
    suppress: Outcome | None = None,
) -> list[Delivery]:
    """Claim the notifications of the recipients of ``levels`` (a person at several levels
    is told once, at the highest).

    Args:
        session: The open transaction.
        hall: The alert's hall.
        row: The routed alert.
        levels: Levels whose recipients are told.
        event: What they are told.
        now: The time.
        on: Channels available.
        suppress: Record every notification with this outcome, send none (flapping).

    Returns:
        The notifications to hand over once the transaction commits.
    """
    kind = AlertKind(row.kind)
    told: set[str] = set()
    out: list[Delivery] = []
    for level in sorted(levels, reverse=True):
        for recipient in hall.routing.recipients_for(kind, level):
            if recipient.id in told:
                continue
            told.add(recipient.id)
            if recipient.mqtt and on.mqtt:
                outcome = suppress or Outcome.SENDING
                note = insert_notification(
                    session, row, recipient.id, level, Channel.MQTT, event, now, outcome
                )
                if note is not None and outcome is Outcome.SENDING:
                    out.append(mqtt_delivery(note, row, hall))
            if recipient.phone is not None:
                outcome = suppress or sms_outcome(session, hall, kind, level, recipient, now, on)
                note = insert_notification(
                    session, row, recipient.id, level, Channel.SMS, event, now, outcome
                )
                if note is not None and outcome is Outcome.SENDING:
                    out.append(sms_delivery(note, recipient.phone, hall, row))
    return out


def sms_outcome(
    session: Session,
    hall: HallConfig,
    kind: AlertKind,
    level: int,
    recipient: RoutingRecipient,
    now: datetime,
    on: ChannelsOn,
) -> Outcome:
    """What happens to a text now: no gateway, held, rate-limited or sending."""
    if not on.sms:
        return Outcome.NO_GATEWAY
    if is_quiet(hall, now) and not hall.routing.ignores_quiet_hours(kind, level, recipient.id):
        return Outcome.HELD
    if sent_last_hour(session, hall.hall.id, recipient.id, now) >= sms_limit(hall):
        logger.info(
            "SMS to %s (%s) rate-limited: %d per hour",
            recipient.id,
            mask_phone(recipient.phone or ""),
            sms_limit(hall),
        )
        return Outcome.RATE_LIMITED
    return Outcome.SENDING


def insert_notification(
    session: Session,
    row: RoutedAlert,
    recipient: str,
    level: int,
    channel: Channel,
    event: NotificationEvent,
    now: datetime,
    outcome: Outcome,
    *,
    alert_id: str | None = None,
    detail: str = "",
) -> AlertNotification | None:
    """Claim one notification (``alert_id``: another than ``row``'s, for summaries).

    Returns:
        The row, or None if it was claimed before (never twice).
    """
    note = AlertNotification(
        alert_id=alert_id or row.alert_id,
        hall=row.hall,
        recipient=recipient,
        level=level,
        channel=channel.value,
        event=event.value,
        at=now,
        outcome=outcome.value,
        sent_at=now if outcome is Outcome.SENDING else None,
        detail=detail[:200],
    )
    try:
        with session.begin_nested():
            session.add(note)
    except IntegrityError:
        return None
    if outcome is not Outcome.SENDING:  # those are counted once handed over
        NOTIFICATIONS.labels(channel.value, outcome.value).inc()
    return note


def mqtt_delivery(note: AlertNotification, row: RoutedAlert, hall: HallConfig) -> Delivery:
    """The recipient's topic and the alert message, with the notification's text."""
    alert = AlertMessage.model_validate_json(row.payload)
    text = notification_text(hall, alert, note.level)
    payload = encode(alert.model_copy(update={"message": text, "ts": note.at}))
    topic = recipient_topic(row.hall, note.recipient)
    return Delivery(note.id, Channel.MQTT, note.recipient, topic, payload)


def sms_delivery(
    note: AlertNotification, phone: str, hall: HallConfig, row: RoutedAlert
) -> Delivery:
    """The text of a notification, keyed for the SMS client's own dedup."""
    alert = AlertMessage.model_validate_json(row.payload)
    text = notification_text(hall, alert, note.level)
    key = f"route:{note.alert_id}:{note.recipient}:{note.level}:{note.event}"
    return Delivery(note.id, Channel.SMS, note.recipient, phone, text, key)


def is_flapping(
    session: Session, hall: HallConfig, alert: AlertMessage, subject: str | None, now: datetime
) -> bool:
    """Whether an alert re-opens its subject within ``dedup.reopen_window_min`` of the last
    one resolving. A previous one still open here resolved unseen: it is closed now."""
    window = timedelta(minutes=hall.routing.dedup.reopen_window_min)
    if subject is None or not window:
        return False
    previous = session.scalars(
        select(RoutedAlert).where(
            RoutedAlert.hall == alert.hall,
            RoutedAlert.kind == alert.kind.value,
            RoutedAlert.subject == subject,
            RoutedAlert.alert_id != alert.id,
        )
    ).all()
    flapping = False
    for prev in previous:
        if prev.state == OPEN:
            close_routed(session, prev, now)
        if prev.resolved_at is not None and prev.resolved_at >= now - window:
            flapping = True
    return flapping


def sent_last_hour(session: Session, hall: str, recipient: str, now: datetime) -> int:
    """Texts handed over (or being handed over) to a recipient in the hour before ``now``."""
    stmt = (
        select(func.count())
        .select_from(AlertNotification)
        .where(
            AlertNotification.hall == hall,
            AlertNotification.recipient == recipient,
            AlertNotification.channel == Channel.SMS.value,
            AlertNotification.outcome.in_([Outcome.SENDING.value, Outcome.SENT.value]),
            AlertNotification.sent_at > now - HOUR,
        )
    )
    return int(session.scalar(stmt) or 0)


def is_quiet(hall: HallConfig, now: datetime) -> bool:
    """Whether ``now`` is in the hall's quiet hours (hall-local)."""
    return hall.routing.is_quiet(now.astimezone(hall.tzinfo).time())


def close_routed(session: Session, row: RoutedAlert, now: datetime) -> None:
    """Mark a routed alert resolved; its held texts are dropped."""
    row.state = RESOLVED
    row.resolved_at = now
    session.execute(
        update(AlertNotification)
        .where(
            AlertNotification.alert_id == row.alert_id,
            AlertNotification.outcome == Outcome.HELD.value,
        )
        .values(outcome=Outcome.DROPPED.value, detail="resolved in quiet hours")
    )


def stopped(session: Session, alert_id: str) -> bool:
    """Whether someone acknowledged or resolved the alert by hand."""
    stmt = select(AlertAction.id).where(
        AlertAction.alert_id == alert_id, AlertAction.action.in_(STOPPERS)
    )
    return session.scalar(stmt.limit(1)) is not None


def set_outcome(note: AlertNotification, outcome: Outcome, detail: str) -> None:
    """Change a claimed notification's outcome."""
    note.outcome = outcome.value
    note.detail = detail[:200]


def sms_limit(hall: HallConfig) -> int:
    """Texts per recipient and hour."""
    return hall.routing.rate_limit.sms_per_hour
