"""Telling people about anomalies, after the transaction that changed them commits.

- :func:`alert_of` builds the :class:`~hallwatch.contract.AlertMessage` of an anomaly
  (its id is the anomaly's id): sent when it opens, when it turns red and when it closes
  (``state: resolved``).
- :class:`CaseNotifier` publishes those messages to the alert sink (MQTT alerts topic and
  live bus) and texts the hall's ``notify.sms`` recipients whose ``kinds`` and
  ``min_level`` match, once per anomaly and level (dedup key ``<anomaly id>:<level>``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Protocol

from prometheus_client import Counter

from aggregator.alerts import AlertSink
from aggregator.cases.models import Anomaly
from hallwatch.config.models import HallConfig
from hallwatch.contract import (
    AlertKind,
    AlertMessage,
    AlertState,
    AnomalyKind,
    AnomalyLevel,
    utcnow,
)

logger = logging.getLogger(__name__)

CASE_ALERTS = Counter(
    "hallwatch_case_alerts",
    "异常办件 alerts published, by kind, state and level.",
    ["kind", "state", "level"],
)
SMS_ROUTED = Counter(
    "hallwatch_case_sms", "异常办件 texts handed to the SMS gateway, by outcome.", ["outcome"]
)

KIND_LABELS: dict[str, str] = {
    AnomalyKind.WAIT_OVER_LIMIT: "窗口等待超时",
    AnomalyKind.TRIPS_OVER_PROMISE: "跑动次数超过承诺",
    AnomalyKind.BAD_RATING: "差评",
    AnomalyKind.BAD_ATTITUDE: "服务态度差",
    AnomalyKind.MANUAL: "人工登记",
}
LEVEL_LABELS: dict[str, str] = {AnomalyLevel.WARNING: "预警（黄牌）", AnomalyLevel.RED: "红牌"}
_LEVEL_RANK = {AnomalyLevel.WARNING: 0, AnomalyLevel.RED: 1}


class SmsSender(Protocol):
    """What :class:`CaseNotifier` needs of :class:`aggregator.notify.sms.SmsNotifier`."""

    def send(self, phone: str, text: str, dedup_key: str) -> bool:
        """Queue one text; False if it is not sent (duplicate, over the rate limit)."""
        ...


def alert_text(anomaly: Anomaly, hall: HallConfig | None, *, closed: bool = False) -> str:
    """The Chinese text of an anomaly's alert (also the SMS text)."""
    parts = [f"【异常办件·{LEVEL_LABELS.get(anomaly.level, anomaly.level)}】"]
    parts.append(KIND_LABELS.get(anomaly.kind, anomaly.kind))
    where = []
    if hall is not None:
        where.append(hall.hall.name)
    if anomaly.window:
        win = hall.window(anomaly.window) if hall is not None else None
        where.append(win.name if win is not None and win.name else f"{anomaly.window}号窗口")
    if where:
        parts.append("：" + " ".join(where))
    if anomaly.description:
        parts.append(f"。{anomaly.description}")
    if anomaly.case_no:
        parts.append(f"。办件编号{anomaly.case_no}")
    if closed:
        parts.append("。已办结")
    elif anomaly.rectify_deadline is not None:
        tz = hall.tzinfo if hall is not None else None
        due = anomaly.rectify_deadline.astimezone(tz)
        parts.append(f"。整改期限{due:%Y-%m-%d %H:%M}前")
    return "".join(parts)[:500]


def alert_of(anomaly: Anomaly, hall: HallConfig | None) -> AlertMessage:
    """The alert message of an anomaly in its current state (closed → resolved)."""
    closed = anomaly.closed_at is not None
    return AlertMessage(
        id=anomaly.id,
        hall=anomaly.hall,
        kind=AlertKind(anomaly.kind),
        state=AlertState.RESOLVED if closed else AlertState.OPEN,
        window=anomaly.window,
        start=anomaly.opened,
        end=anomaly.closed_at,
        message=alert_text(anomaly, hall, closed=closed),
        level=AnomalyLevel(anomaly.level),
        case_no=anomaly.case_no,
        deadline=anomaly.rectify_deadline,
        ts=utcnow(),
    )


class CaseNotifier:
    """Publishes anomaly alerts and routes SMS.

    Args:
        halls: Hall configurations by id (``notify.sms`` recipients).
        sink: The alert sink (MQTT alerts topic + live bus); None: no alerts.
        sms: The SMS gateway client; None: no texts.
    """

    def __init__(
        self,
        halls: Mapping[str, HallConfig],
        sink: AlertSink | None = None,
        sms: SmsSender | None = None,
    ) -> None:
        self.halls = halls
        self.sink = sink
        self.sms = sms

    def publish(self, messages: Iterable[AlertMessage]) -> None:
        """Send messages produced inside a transaction, once it has committed.

        Never raises: a failing sink or gateway is logged.
        """
        for message in messages:
            level = message.level.value if message.level else ""
            CASE_ALERTS.labels(message.kind.value, message.state.value, level).inc()
            if self.sink is not None:
                try:
                    self.sink.publish(message)
                except Exception:
                    logger.exception("publishing anomaly alert %s failed", message.id)
            if self.sms is not None and message.state is AlertState.OPEN:
                self._texts(message)

    def recipients(self, message: AlertMessage) -> list[str]:
        """Phones of the hall's SMS recipients whose kinds and min_level match."""
        hall = self.halls.get(message.hall)
        if hall is None or message.level is None or message.kind is AlertKind.OFF_POST:
            return []
        kind = AnomalyKind(message.kind.value)
        rank = _LEVEL_RANK[message.level]
        return [
            r.phone for r in hall.notify.sms if kind in r.kinds and rank >= _LEVEL_RANK[r.min_level]
        ]

    def _texts(self, message: AlertMessage) -> None:
        assert self.sms is not None
        key = f"{message.id}:{message.level.value if message.level else ''}"
        for phone in self.recipients(message):
            try:
                sent = self.sms.send(phone, message.message, key)
            except Exception:
                logger.exception("SMS for anomaly %s failed", message.id)
                SMS_ROUTED.labels("error").inc()
                continue
            SMS_ROUTED.labels("queued" if sent else "refused").inc()
