"""The device-offline rule (设备离线): a device reported offline raises an alert.

Policy:

- Any device (cameras, queue machines, evaluators, kiosks, screens, computers, the machine
  room, lifts …) reported ``offline`` by the edge opens one ``device_offline`` alert for
  that device, with ``start`` = the offline fact's time; reported ``online`` again, the
  alert is resolved (same id) with ``end`` = the online fact's time.
- Unlike the off-post rule, service hours do not matter: equipment must run (and be
  repaired) whether or not the hall is serving, so a device going offline at night or on
  a closed day alerts too.
- The ingestor calls :meth:`DeviceOfflineRule.on_device_change` only when a device's
  stored state actually changed, so repeated facts, redelivered facts (the dedup ledger)
  and stale facts (older than the stored state) change nothing.

All state is in the database (``DeviceStatus`` and ``Alert`` rows); a partial unique
index allows one open alert per hall, device and kind, so replicas cannot duplicate one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from aggregator.alerts import AlertSink, add_alert, alert_message, publish_alerts
from aggregator.store.state import Alert, DeviceStatus
from hallwatch.config.models import HallConfig
from hallwatch.contract import AlertKind, AlertMessage, AlertState, DeviceState, new_id

logger = logging.getLogger(__name__)

KIND = AlertKind.DEVICE_OFFLINE.value
OFFLINE = DeviceState.OFFLINE.value
ONLINE = DeviceState.ONLINE.value

KIND_ZH = {
    "camera": "摄像头",
    "queue_machine": "排队叫号机",
    "evaluator": "评价器",
    "kiosk": "自助终端",
    "screen": "显示屏",
    "computer": "窗口电脑",
    "machine_room": "机房",
    "lift": "电梯",
    "other": "设备",
}
"""Chinese names of device kinds (:class:`hallwatch.contract.DeviceKind` values)."""

_MESSAGE_MAX = 500


def device_name(hall: HallConfig | None, device: str) -> str | None:
    """A device's display name from the hall config.

    Args:
        hall: The hall's configuration (None: unknown hall).
        device: A device id or a camera id.

    Returns:
        The configured device's name, the camera's name (if it has one), else None.
    """
    if hall is None:
        return None
    for dev in hall.devices:
        if dev.id == device:
            return dev.name
    for cam in hall.cameras:
        if cam.id == device:
            return cam.name or None
    return None


def offline_message(hall: HallConfig | None, row: DeviceStatus) -> str:
    """The alert's Chinese message, naming the device and the reason.

    >>> from datetime import UTC, datetime
    >>> now = datetime(2026, 11, 2, tzinfo=UTC)
    >>> row = DeviceStatus(hall="h", device="k1", kind="kiosk", state="offline",
    ...                    since=now, reason="HTTP 503", last_fact_ts=now)
    >>> offline_message(None, row)
    '设备离线：自助终端 k1，原因：HTTP 503'
    """
    kind = KIND_ZH.get(row.kind, "设备")
    name = device_name(hall, row.device)
    if name:
        what = f"{name if kind in name else f'{kind}“{name}”'}（{row.device}）"
    else:
        what = f"{kind} {row.device}"
    text = f"设备离线：{what}"
    if row.reason:
        text += f"，原因：{row.reason}"
    return text if len(text) <= _MESSAGE_MAX else text[: _MESSAGE_MAX - 1] + "…"


class DeviceOfflineRule:
    """Opens and resolves ``device_offline`` alerts as devices go offline and online.

    Args:
        halls: Hall configurations by hall id (device and camera names).
        sink: Where opened and resolved alerts are published (after commit); the same
            sink as the off-post rule's (MQTT alerts topic, live bus).
    """

    kind = AlertKind.DEVICE_OFFLINE

    def __init__(self, halls: Mapping[str, HallConfig], sink: AlertSink | None = None) -> None:
        self.halls = halls
        self.sink = sink

    def on_device_change(
        self, session: Session, row: DeviceStatus, now: datetime
    ) -> list[AlertMessage]:
        """React to a device's state changing (``row`` updated, not yet committed).

        Called inside the fact's transaction, only when the stored state changed (or the
        device reported for the first time). Service hours are not consulted: a device
        offline outside them alerts all the same (equipment must run).

        Args:
            session: The fact's session.
            row: The device's state, already updated (``since`` = the fact's time).
            now: Ingest time (``opened_at`` / ``resolved_at``).

        Returns:
            Alert messages to publish once the transaction commits.
        """
        if row.state == OFFLINE:
            message = self._open(session, row, now)
        elif row.state == ONLINE:
            message = self._resolve(session, row, now)
        else:
            message = None
        return [message] if message is not None else []

    def publish(self, messages: list[AlertMessage]) -> None:
        """Send messages produced inside a transaction, once it has committed."""
        publish_alerts(self.sink, messages)

    # -- helpers ---------------------------------------------------------------------------

    def _open(self, session: Session, row: DeviceStatus, now: datetime) -> AlertMessage | None:
        if _open_alert(session, row.hall, row.device) is not None:
            return None  # already open (e.g. opened by another replica)
        already = select(Alert.id).where(
            Alert.hall == row.hall,
            Alert.device == row.device,
            Alert.kind == KIND,
            Alert.start == row.since,
        )
        if session.scalars(already).first() is not None:
            return None  # this very outage was alerted (and resolved) already
        alert = Alert(
            id=new_id(),
            hall=row.hall,
            kind=KIND,
            post=None,
            window=None,
            device=row.device,
            state=AlertState.OPEN.value,
            start=row.since,
            end=None,
            opened_at=now,
            resolved_at=None,
            message=offline_message(self.halls.get(row.hall), row),
        )
        if not add_alert(session, alert):
            return None
        logger.info(
            "device-offline alert %s opened: hall %s device %s (%s) since %s",
            alert.id,
            row.hall,
            row.device,
            row.kind,
            row.since.isoformat(),
        )
        return alert_message(alert)

    @staticmethod
    def _resolve(session: Session, row: DeviceStatus, now: datetime) -> AlertMessage | None:
        alert = _open_alert(session, row.hall, row.device)
        if alert is None:
            return None
        alert.state = AlertState.RESOLVED.value
        alert.end = max(row.since, alert.start)
        alert.resolved_at = now
        logger.info("device-offline alert %s resolved: end %s", alert.id, alert.end.isoformat())
        return alert_message(alert)


def _open_alert(session: Session, hall: str, device: str) -> Alert | None:
    stmt = select(Alert).where(
        Alert.hall == hall,
        Alert.device == device,
        Alert.kind == KIND,
        Alert.state == AlertState.OPEN.value,
    )
    return session.scalars(stmt).first()
