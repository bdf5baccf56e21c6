"""What alert routing keeps in the state database (migration 0006).

- :class:`RoutedAlert`: one row per alert the router took on (the alert's id: an
  ``alerts`` row or a 异常办件): the level it reached and since when (the escalation
  clock), whether it is still open, and the alert message to send again on escalation.
- :class:`AlertNotification`: one row per notification decided: alert, recipient, level,
  channel (``mqtt``/``sms``), event, when, and the outcome. The unique key (alert,
  recipient, level, channel, event) is what makes "never twice" hold across restarts and
  replicas: a notification is claimed by inserting its row before it is sent.
- :class:`AlertAction`: what people did to an alert (acknowledge, resolve, comment): who,
  with which role, when, and their note.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from aggregator.store.state import Base


class Channel(StrEnum):
    """How a notification travels."""

    MQTT = "mqtt"
    """The recipient's topic ``hallwatch/v1/{hall}/alerts/{recipient}`` (QoS 1)."""
    SMS = "sms"
    """A text through the SMS gateway."""


class NotificationEvent(StrEnum):
    """What a notification tells."""

    ALERT = "alert"
    """The alert is open (at the row's level: 1 when it opens, 2 and 3 escalations)."""
    RED_CARD = "red_card"
    """A 异常办件 turned red (红牌): told again to the levels reached so far."""
    RESOLVED = "resolved"
    """The alert resolved (MQTT only, to those told by MQTT)."""
    SUMMARY = "summary"
    """One text summing up the recipient's texts held back by the rate limit."""


class Outcome(StrEnum):
    """What became of a notification."""

    SENDING = "sending"
    """Claimed and being handed over (a row left so by a crash was never sent)."""
    SENT = "sent"
    """Handed to the broker (QoS 1) or the SMS gateway client."""
    HELD = "held"
    """SMS held in quiet hours; sent when they end if the alert is still open."""
    DROPPED = "dropped"
    """Held, and the alert was resolved or acknowledged before quiet hours ended."""
    RATE_LIMITED = "rate_limited"
    """Over the recipient's texts per hour; counted in the next summary."""
    SUMMARIZED = "summarized"
    """Rate-limited, then counted in a summary text."""
    FLAPPING = "flapping"
    """Not sent: the same subject's alert resolved moments ago (dedup.reopen_window_min)."""
    REFUSED = "refused"
    """The SMS client refused it (its own hourly limit or queue, or it is stopped)."""
    FAILED = "failed"
    """Handing it over raised an error."""
    NO_GATEWAY = "no_gateway"
    """SMS is not configured on this aggregator (HALLWATCH_SMS_GATEWAY_URL)."""


class ActionKind(StrEnum):
    """What a person did to an alert."""

    ACKNOWLEDGE = "acknowledge"
    """Taken in hand (已确认): escalation stops."""
    RESOLVE = "resolve"
    """Closed by hand (人工关闭), with a note."""
    COMMENT = "comment"
    """A note only."""


class RoutedAlert(Base):
    """An alert the router has taken on, with its escalation state."""

    __tablename__ = "routed_alerts"
    __table_args__ = (
        Index("routed_alerts_open", "state", "hall"),
        Index("routed_alerts_by_subject", "hall", "kind", "subject"),
    )

    alert_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    hall: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str | None] = mapped_column(String(80), default=None)
    """``post:<id>``, ``device:<id>`` or ``zone:<id>`` (flapping is judged per subject);
    None for 异常办件 (each case is its own)."""
    state: Mapped[str] = mapped_column(String(16))
    """open or resolved (as far as the router knows; the ticker reconciles)."""
    level: Mapped[int] = mapped_column(Integer)
    """The highest level reached (1..3)."""
    level_at: Mapped[datetime]
    """When that level was reached: the escalation clock."""
    stage: Mapped[str] = mapped_column(String(16), default="")
    """A 异常办件's card level (warning/red), "" for other alerts."""
    flapping: Mapped[bool] = mapped_column(default=False)
    """Level 1 was not notified: a re-open within the dedup window."""
    payload: Mapped[str] = mapped_column(Text)
    """The last open alert message (JSON), sent again on escalation."""
    opened_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)


class AlertNotification(Base):
    """One notification of one alert to one recipient, at one level, on one channel."""

    __tablename__ = "alert_notifications"
    __table_args__ = (
        UniqueConstraint(
            "alert_id",
            "recipient",
            "level",
            "channel",
            "event",
            name="uq_alert_notifications_once",
        ),
        Index("alert_notifications_by_recipient", "hall", "recipient", "channel", "sent_at"),
        Index("alert_notifications_by_outcome", "outcome", "hall"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(String(40))
    hall: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(64))
    level: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(8))
    event: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime]
    """When it was decided."""
    outcome: Mapped[str] = mapped_column(String(16))
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    """When it was handed over (None: not, or not yet)."""
    detail: Mapped[str] = mapped_column(String(200), default="")


class AlertAction(Base):
    """A person's action on an alert (全程留痕); at most one acknowledge per alert."""

    __tablename__ = "alert_actions"
    __table_args__ = (
        Index("alert_actions_by_alert", "alert_id", "at"),
        Index(
            "alert_actions_one_acknowledge",
            "alert_id",
            unique=True,
            sqlite_where=text("action = 'acknowledge'"),
            postgresql_where=text("action = 'acknowledge'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(String(40))
    hall: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime]
    note: Mapped[str] = mapped_column(String(500), default="")
