"""The channels alert routing sends through, and the texts it sends.

- MQTT: :class:`TopicPublisher` (what the router needs), :class:`PahoTopicPublisher` (the
  aggregator's paho client, QoS 1) and :func:`recipient_topic`
  (``hallwatch/v1/{hall}/alerts/{recipient}``: one topic per person, so an escalation
  reaches the next level's people only; the hall's own alerts topic keeps every alert).
- SMS: :class:`SmsSender`, which :class:`aggregator.notify.sms.SmsNotifier` is.
- :func:`notification_text` and :func:`summary_text`: the Chinese texts.
"""

from __future__ import annotations

import logging
from typing import Protocol

import paho.mqtt.client as mqtt

from hallwatch.config.models import HallConfig
from hallwatch.contract import AlertMessage, alerts_topic

logger = logging.getLogger(__name__)

TEXT_MAX = 500
"""Longest text (the contract's ``AlertMessage.message`` bound)."""

LEVEL_TAGS = {2: "【二级提醒】", 3: "【三级提醒】"}
"""What an escalated notification starts with."""


class TopicPublisher(Protocol):
    """Publishes a payload on a topic (QoS 1)."""

    def publish(self, topic: str, payload: bytes) -> bool:
        """Queue one message; False if it was not accepted."""
        ...


class SmsSender(Protocol):
    """What the router needs of :class:`aggregator.notify.sms.SmsNotifier`."""

    def send(self, phone: str, text: str, dedup_key: str) -> bool:
        """Queue one text; False if it is not sent (duplicate, over its limit, stopped)."""
        ...


class PahoTopicPublisher:
    """Publishes through a paho client at QoS 1 (kept in memory while disconnected).

    Args:
        client: The aggregator's MQTT client (:attr:`aggregator.mqtt_ingest.MqttIngest.client`).
    """

    def __init__(self, client: mqtt.Client) -> None:
        self.client = client

    def publish(self, topic: str, payload: bytes) -> bool:
        """Queue the message; True when paho took it (sent now or on reconnect)."""
        info = self.client.publish(topic, payload, qos=1)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            logger.error("MQTT publish on %s refused: %s", topic, mqtt.error_string(info.rc))
            return False
        return True


def recipient_topic(hall: str, recipient: str) -> str:
    """A recipient's own alerts topic.

    >>> recipient_topic("h1", "zhang")
    'hallwatch/v1/h1/alerts/zhang'
    """
    return f"{alerts_topic(hall)}/{recipient}"


def notification_text(hall: HallConfig | None, alert: AlertMessage, level: int) -> str:
    """The text of a notification: level tag, hall name (unless the message names it), the
    alert's message.

    >>> from datetime import UTC, datetime
    >>> from hallwatch.contract import AlertKind, AlertState
    >>> alert = AlertMessage(id="a1", hall="h1", kind=AlertKind.OFF_POST,
    ...     state=AlertState.OPEN, start=datetime(2026, 11, 2, tzinfo=UTC),
    ...     message="离岗告警：1号窗口无人在岗超过10分钟")
    >>> notification_text(None, alert, 2)
    '【二级提醒】离岗告警：1号窗口无人在岗超过10分钟'
    """
    parts = [LEVEL_TAGS.get(level, "")]
    body = alert.message or alert.kind.value
    if hall is not None and hall.hall.name not in body:
        parts.append(f"【{hall.hall.name}】")
    parts.append(body)
    return "".join(parts)[:TEXT_MAX]


def summary_text(hall: HallConfig | None, more: int, still_open: int) -> str:
    """The one text summing up texts held back by the rate limit.

    >>> summary_text(None, 3, 1)
    '【告警汇总】另有3条告警未逐条短信通知（其中1条仍未处理），请登录电子监察平台查看。'
    """
    where = f"{hall.hall.name}：" if hall is not None else ""
    return (
        f"【告警汇总】{where}另有{more}条告警未逐条短信通知（其中{still_open}条仍未处理），"
        "请登录电子监察平台查看。"
    )[:TEXT_MAX]
