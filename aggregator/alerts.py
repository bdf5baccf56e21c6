"""Where opened and resolved alerts go: the :class:`AlertSink` protocol and helpers.

Implementations: :class:`aggregator.mqtt_ingest.MqttAlertPublisher` (the hall's alerts
topic, for hall managers), :class:`BusAlertSink` (the live dashboard),
:class:`aggregator.notify.routing.AlertRouter` (the people a hall's ``routing`` names, by
their own MQTT topic and SMS, with escalation; docs/alert-routing.md), and
:class:`FanoutSink` to send to several. :func:`publish_alerts` is how every rule (off-post,
device-offline, hygiene and crowding) hands its alerts over after its transaction
commits. SMS for 异常办件 is also sent by :class:`aggregator.cases.notify.CaseNotifier`
to the hall's ``notify.sms`` recipients, through :mod:`aggregator.notify.sms`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Protocol, cast, runtime_checkable

from prometheus_client import Counter
from sqlalchemy import Column, Table, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, make_transient_to_detached

from aggregator.bus import LiveBus, LiveEvent
from aggregator.store.evidence import evidence_path
from aggregator.store.state import Alert
from hallwatch.contract import AlertKind, AlertMessage, AlertState, utcnow

logger = logging.getLogger(__name__)

ALERTS = Counter("hallwatch_alerts", "Alerts opened and resolved.", ["kind", "state"])


@runtime_checkable
class AlertSink(Protocol):
    """Receives every alert when it opens and again (same id) when it resolves."""

    def publish(self, alert: AlertMessage) -> None:
        """Deliver one alert message; must not block for long."""
        ...


def add_alert(session: Session, alert: Alert) -> bool:
    """Insert ``alert`` in a savepoint of its own.

    Returns:
        False when a partial unique index refuses it: another replica opened the alert of
        its subject (post, device or zone) meanwhile; the transaction goes on without it.
    """
    try:
        with session.begin_nested():
            session.add(alert)
    except IntegrityError:
        subject = alert.post or alert.device or alert.zone
        logger.info("%s alert for %s/%s already opened elsewhere", alert.kind, alert.hall, subject)
        return False
    return True


_ALERTS = cast(Table, Alert.__table__)


def _inserted_value(alert: Alert, column: Column[object]) -> object:
    """What an INSERT of ``alert`` writes to ``column``: the attribute set, else the
    column's scalar default (as the unit of work would), else NULL, which is then set on
    ``alert`` too."""
    if column.key in alert.__dict__:
        return alert.__dict__[column.key]
    default = column.default
    value = default.arg if default is not None and default.is_scalar else None  # type: ignore[attr-defined]
    setattr(alert, column.key, value)  # held as the row has it: nothing left to load
    return value


def insert_alerts(session: Session, alerts: Sequence[Alert]) -> None:
    """Insert new (transient) alerts in one statement, then hold them in ``session`` as
    rows loaded from the database: later changes to them are flushed as UPDATEs.

    Not through the unit of work, whose INSERT was about half of what opening a batch's
    off-post alerts cost; the rows written are the same (column defaults included). The
    session's pending changes are flushed first.

    Raises:
        sqlalchemy.exc.IntegrityError: A partial unique index refused one of them
            (another replica opened the alert of its subject): none is held, and the
            caller's savepoint is to be rolled back.
    """
    if not alerts:
        return
    session.flush()  # an alert resolved before frees its subject in the unique indexes
    columns = list(_ALERTS.columns)
    rows = [{c.key: _inserted_value(alert, c) for c in columns} for alert in alerts]
    session.connection().execute(insert(_ALERTS), rows)
    for alert in alerts:
        make_transient_to_detached(alert)
        session.add(alert)


def alert_message(row: Alert) -> AlertMessage:
    """The wire form of a stored alert (``evidence_url``: the API path of its snapshot)."""
    return AlertMessage(
        id=row.id,
        hall=row.hall,
        kind=AlertKind(row.kind),
        state=AlertState(row.state),
        post=row.post,
        window=row.window,
        device=row.device,
        zone=row.zone,
        evidence_url=evidence_path(row.hall, row.id) if row.evidence_id else None,
        start=row.start,
        end=row.end,
        message=row.message,
        ts=utcnow(),
    )


class BusAlertSink:
    """Sends alerts to the live bus as ``alert`` events."""

    def __init__(self, bus: LiveBus) -> None:
        self.bus = bus

    def publish(self, alert: AlertMessage) -> None:
        """Publish ``event: alert`` with the alert's JSON."""
        data = alert.model_dump(mode="json", by_alias=True)
        data.pop("hall", None)
        self.bus.publish(LiveEvent("alert", alert.hall, data))


class FanoutSink:
    """Sends each alert to several sinks; one failing sink does not stop the others."""

    def __init__(self, sinks: Iterable[AlertSink]) -> None:
        self.sinks = list(sinks)

    def publish(self, alert: AlertMessage) -> None:
        """Publish to every sink, logging (not raising) failures."""
        for sink in self.sinks:
            try:
                sink.publish(alert)
            except Exception:
                logger.exception("alert sink %s failed for alert %s", type(sink).__name__, alert.id)


class ListSink:
    """Collects alerts in a list (tests, dry runs)."""

    def __init__(self) -> None:
        self.alerts: list[AlertMessage] = []

    def publish(self, alert: AlertMessage) -> None:
        """Append the alert."""
        self.alerts.append(alert)


def publish_alerts(sink: AlertSink | None, messages: Iterable[AlertMessage]) -> None:
    """Count and deliver alerts produced inside a transaction, once it has committed.

    Never raises: a failing sink is logged, and the next message is still delivered.
    """
    for message in messages:
        ALERTS.labels(message.kind.value, message.state.value).inc()
        if sink is None:
            continue
        try:
            sink.publish(message)
        except Exception:
            logger.exception("publishing alert %s failed", message.id)
