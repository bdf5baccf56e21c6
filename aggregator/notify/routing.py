"""Alert routing: the right people, once, by MQTT and SMS, escalating until acknowledged.

:class:`AlertRouter` is an :class:`~aggregator.alerts.AlertSink` (it sits in the
aggregator's fan-out beside the live bus and the hall's alerts topic) for the halls whose
config has ``routing.routes`` (:mod:`hallwatch.config.routing`); other halls are left
alone. Decisions (docs/alert-routing.md):

- An alert opening is notified to its kind's level-1 recipients: on their own MQTT topic
  (:func:`~aggregator.notify.channels.recipient_topic`) when ``mqtt`` is on, by SMS when
  they have a phone. A 异常办件 turning red is told again to every level reached.
- Never twice: each notification is claimed by inserting its row (unique per alert,
  recipient, level, channel and event) before it is handed over; a redelivered alert, a
  second replica or a restart finds the row and sends nothing.
- Flapping: an alert of the same kind and subject (post, device, zone) re-opened within
  ``dedup.reopen_window_min`` of the last one resolving is recorded ``flapping`` at level 1,
  not sent; it still escalates.
- Quiet hours hold SMS (``held``; MQTT still goes); :meth:`AlertRouter.tick` sends them when
  quiet hours end if the alert is still open and unacknowledged, else drops them.
- Rate limit: a recipient gets at most ``rate_limit.sms_per_hour`` texts in any sliding
  hour; the rest are ``rate_limited`` and summed up in one text once the hour has room.
- Escalation (:meth:`AlertRouter.tick`, from the rule ticker): an open alert with no
  acknowledge (or manual resolve) ``escalation.after_min`` after it reached its level goes
  to the next level that has a route for its kind.

Everything is in the database (:mod:`aggregator.notify.records`), so a restart neither
repeats nor forgets: escalation continues from the stored level and time. An ``alerts`` row
opened in the last hour that the router never saw (a crash between commit and publish) is
picked up by the tick.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from sqlalchemy import exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aggregator.alerts import alert_message
from aggregator.cases.models import Anomaly
from aggregator.notify.channels import SmsSender, TopicPublisher, recipient_topic, summary_text
from aggregator.notify.claims import (
    NOTIFICATIONS,
    OPEN,
    RESOLVED,
    STOPPERS,
    ChannelsOn,
    Delivery,
    claim,
    close_routed,
    insert_notification,
    is_flapping,
    is_quiet,
    sent_last_hour,
    set_outcome,
    sms_delivery,
    sms_limit,
    stopped,
    subject_of,
)
from aggregator.notify.records import (
    AlertAction,
    AlertNotification,
    Channel,
    NotificationEvent,
    Outcome,
    RoutedAlert,
)
from aggregator.store.state import Alert, StateStore
from hallwatch.config.models import HallConfig
from hallwatch.contract import AlertKind, AlertMessage, AlertState, AnomalyLevel, encode, utcnow

logger = logging.getLogger(__name__)

CATCH_UP = timedelta(hours=1)
"""Open alerts opened this recently that the router never saw are routed by the tick."""


class AlertRouter:
    """Routes alerts to people (an ``AlertSink``) and escalates them (:meth:`tick`).

    Args:
        state: The state database (routing records, alerts, 异常办件).
        halls: Hall configurations by id (``routing`` sections, timezones).
        sms: The SMS client (None: texts are recorded ``no_gateway``).
        mqtt: Publisher of the per-recipient topics (None: no MQTT notifications; set it
            once the broker client exists).
        clock: Now (aware UTC), injectable for tests.
    """

    def __init__(
        self,
        state: StateStore,
        halls: Mapping[str, HallConfig],
        *,
        sms: SmsSender | None = None,
        mqtt: TopicPublisher | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.state = state
        self.halls = halls
        self.sms = sms
        self.mqtt = mqtt
        self.clock = clock
        for hall in halls.values():
            _warn_double_texts(hall)

    @property
    def _on(self) -> ChannelsOn:
        return ChannelsOn(mqtt=self.mqtt is not None, sms=self.sms is not None)

    # -- the sink ----------------------------------------------------------------------------

    def publish(self, alert: AlertMessage) -> None:
        """Route an alert opening (or a 异常办件 turning red) or resolving. Never raises."""
        hall = self.halls.get(alert.hall)
        if hall is None or not hall.routing.routes_kind(alert.kind):
            return
        now = self.clock()
        try:
            with self.state.session() as session:
                if alert.state is AlertState.OPEN:
                    deliveries = self._on_open(session, hall, alert, now)
                else:
                    deliveries = self._on_resolved(session, hall, alert, now)
        except Exception:
            logger.exception("routing alert %s failed", alert.id)
            return
        self._deliver(deliveries)

    def _on_open(
        self, session: Session, hall: HallConfig, alert: AlertMessage, now: datetime
    ) -> list[Delivery]:
        stage = alert.level.value if alert.level is not None else ""
        row = session.get(RoutedAlert, alert.id)
        if row is None:
            subject = subject_of(alert)
            flapping = is_flapping(session, hall, alert, subject, now)
            row = RoutedAlert(
                alert_id=alert.id,
                hall=alert.hall,
                kind=alert.kind.value,
                subject=subject,
                state=OPEN,
                level=1,
                level_at=now,
                stage=stage,
                flapping=flapping,
                payload=encode(alert).decode(),
                opened_at=now,
            )
            try:
                with session.begin_nested():
                    session.add(row)
            except IntegrityError:
                return []  # routed already (another replica, or the tick's catch-up)
            logger.info(
                "routing alert %s (%s, hall %s)%s",
                alert.id,
                alert.kind.value,
                alert.hall,
                ": flapping, level 1 not notified" if flapping else "",
            )
            suppress = Outcome.FLAPPING if flapping else None
            return claim(session, hall, row, [1], NotificationEvent.ALERT, now, self._on, suppress)
        if row.state != OPEN:
            return []
        row.payload = encode(alert).decode()
        if stage == AnomalyLevel.RED.value and row.stage != stage:
            row.stage = stage
            levels = list(range(1, row.level + 1))
            return claim(session, hall, row, levels, NotificationEvent.RED_CARD, now, self._on)
        return []

    def _on_resolved(
        self, session: Session, hall: HallConfig, alert: AlertMessage, now: datetime
    ) -> list[Delivery]:
        row = session.get(RoutedAlert, alert.id)
        if row is None or row.state != OPEN:
            return []
        close_routed(session, row, now)
        told = session.execute(
            select(AlertNotification.recipient, func.max(AlertNotification.level))
            .where(
                AlertNotification.alert_id == alert.id,
                AlertNotification.channel == Channel.MQTT.value,
                AlertNotification.outcome == Outcome.SENT.value,
            )
            .group_by(AlertNotification.recipient)
        ).all()
        out: list[Delivery] = []
        for recipient_id, level in told:
            recipient = hall.routing.recipient(recipient_id)
            if recipient is None or not recipient.mqtt or self.mqtt is None:
                continue
            note = insert_notification(
                session, row, recipient_id, level, Channel.MQTT, NotificationEvent.RESOLVED,
                now, Outcome.SENDING,
            )  # fmt: skip
            if note is not None:
                topic = recipient_topic(row.hall, recipient_id)
                out.append(Delivery(note.id, Channel.MQTT, recipient_id, topic, encode(alert)))
        return out

    # -- the tick ----------------------------------------------------------------------------

    def tick(self, now: datetime | None = None) -> int:
        """Escalate, release held texts, send rate-limit summaries, catch up missed alerts.

        Called by the rule ticker; never raises (a failing hall is logged).

        Args:
            now: The time (default: the router's clock).

        Returns:
            How many notifications were handed over.
        """
        now = now or self.clock()
        deliveries: list[Delivery] = []
        for hall in self.halls.values():
            if not hall.routing.enabled:
                continue
            try:
                deliveries.extend(self._tick_hall(hall, now))
            except Exception:
                logger.exception("alert routing tick failed for hall %s", hall.hall.id)
        return self._deliver(deliveries)

    def _tick_hall(self, hall: HallConfig, now: datetime) -> list[Delivery]:
        quiet = is_quiet(hall, now)
        with self.state.read_session() as session:
            due = self._due(session, hall, now)
            waiting = (
                not quiet
                and session.scalar(
                    select(AlertNotification.id)
                    .where(
                        AlertNotification.hall == hall.hall.id,
                        AlertNotification.outcome.in_(
                            [Outcome.HELD.value, Outcome.RATE_LIMITED.value]
                        ),
                    )
                    .limit(1)
                )
                is not None
            )
            missed = self._missed(session, hall, now)
        if not (due or waiting or missed):
            return []  # the common case: no write transaction
        out: list[Delivery] = []
        with self.state.session() as session:
            for alert in missed:
                row = session.get(Alert, alert)
                if row is not None and row.state == OPEN:
                    out.extend(self._on_open(session, hall, alert_message(row), now))
            for alert_id in due:
                out.extend(self._escalate(session, hall, alert_id, now))
            if waiting:
                out.extend(self._release_held(session, hall, now))
                out.extend(self._summaries(session, hall, now))
        return out

    def _due(self, session: Session, hall: HallConfig, now: datetime) -> list[str]:
        """Open routed alerts to escalate or to close (their source resolved)."""
        rows = session.execute(
            select(RoutedAlert, Alert.state, Anomaly.closed_at)
            .outerjoin(Alert, Alert.id == RoutedAlert.alert_id)
            .outerjoin(Anomaly, Anomaly.id == RoutedAlert.alert_id)
            .where(RoutedAlert.hall == hall.hall.id, RoutedAlert.state == OPEN)
        ).all()
        if not rows:
            return []
        handled = set(
            session.scalars(
                select(AlertAction.alert_id).where(
                    AlertAction.alert_id.in_([r.alert_id for r, _, _ in rows]),
                    AlertAction.action.in_(STOPPERS),
                )
            )
        )
        due: list[str] = []
        for row, alert_state, closed_at in rows:
            if alert_state == RESOLVED or closed_at is not None:
                due.append(row.alert_id)  # to close
                continue
            kind = AlertKind(row.kind)
            if row.alert_id in handled or hall.routing.next_level(kind, row.level) is None:
                continue
            if now - row.level_at >= hall.routing.escalation.after(kind):
                due.append(row.alert_id)
        return due

    def _missed(self, session: Session, hall: HallConfig, now: datetime) -> list[str]:
        kinds = [k.value for k in AlertKind if hall.routing.routes_kind(k)]
        routed = exists().where(RoutedAlert.alert_id == Alert.id)
        return list(
            session.scalars(
                select(Alert.id).where(
                    Alert.hall == hall.hall.id,
                    Alert.state == OPEN,
                    Alert.kind.in_(kinds),
                    Alert.opened_at >= now - CATCH_UP,
                    ~routed,
                )
            )
        )

    def _escalate(
        self, session: Session, hall: HallConfig, alert_id: str, now: datetime
    ) -> list[Delivery]:
        row = session.get(RoutedAlert, alert_id)
        if row is None or row.state != OPEN:
            return []
        source = session.get(Alert, alert_id)
        anomaly = session.get(Anomaly, alert_id) if source is None else None
        if (source is not None and source.state == RESOLVED) or (
            anomaly is not None and anomaly.closed_at is not None
        ):
            close_routed(session, row, now)
            return []
        if stopped(session, alert_id):
            return []
        kind = AlertKind(row.kind)
        nxt = hall.routing.next_level(kind, row.level)
        if nxt is None or now - row.level_at < hall.routing.escalation.after(kind):
            return []
        moved = session.execute(
            update(RoutedAlert)
            .where(RoutedAlert.alert_id == alert_id, RoutedAlert.level == row.level)
            .values(level=nxt, level_at=now)
            .execution_options(synchronize_session=False)
        )
        if getattr(moved, "rowcount", 0) != 1:
            return []  # another replica escalated it
        session.refresh(row)
        logger.info("alert %s unacknowledged: escalated to level %d", alert_id, nxt)
        return claim(session, hall, row, [nxt], NotificationEvent.ALERT, now, self._on)

    def _release_held(self, session: Session, hall: HallConfig, now: datetime) -> list[Delivery]:
        held = session.scalars(
            select(AlertNotification)
            .where(
                AlertNotification.hall == hall.hall.id,
                AlertNotification.outcome == Outcome.HELD.value,
            )
            .order_by(AlertNotification.id)
        ).all()
        out: list[Delivery] = []
        for note in held:
            row = session.get(RoutedAlert, note.alert_id)
            recipient = hall.routing.recipient(note.recipient)
            if row is None or row.state != OPEN or stopped(session, note.alert_id):
                set_outcome(note, Outcome.DROPPED, "quiet hours ended after the alert was handled")
                continue
            if recipient is None or recipient.phone is None:
                set_outcome(note, Outcome.DROPPED, "recipient no longer configured")
                continue
            if sent_last_hour(session, hall.hall.id, note.recipient, now) >= sms_limit(hall):
                set_outcome(note, Outcome.RATE_LIMITED, "after quiet hours: over the limit")
                continue
            released = session.execute(  # conditional: another replica may release it too
                update(AlertNotification)
                .where(
                    AlertNotification.id == note.id,
                    AlertNotification.outcome == Outcome.HELD.value,
                )
                .values(
                    outcome=Outcome.SENDING.value, detail="released after quiet hours", sent_at=now
                )
                .execution_options(synchronize_session=False)
            )
            if getattr(released, "rowcount", 0) != 1:
                continue  # another replica sends it
            session.refresh(note)
            out.append(sms_delivery(note, recipient.phone, hall, row))
        return out

    def _summaries(self, session: Session, hall: HallConfig, now: datetime) -> list[Delivery]:
        limited = session.scalars(
            select(AlertNotification)
            .where(
                AlertNotification.hall == hall.hall.id,
                AlertNotification.outcome == Outcome.RATE_LIMITED.value,
            )
            .order_by(AlertNotification.id)
        ).all()
        by_recipient: dict[str, list[AlertNotification]] = {}
        for note in limited:
            by_recipient.setdefault(note.recipient, []).append(note)
        out: list[Delivery] = []
        for recipient_id, notes in by_recipient.items():
            recipient = hall.routing.recipient(recipient_id)
            if recipient is None or recipient.phone is None:
                for note in notes:
                    set_outcome(note, Outcome.DROPPED, "recipient no longer configured")
                continue
            if sent_last_hour(session, hall.hall.id, recipient_id, now) >= sms_limit(hall):
                continue
            alert_ids = {n.alert_id for n in notes}
            still_open = session.scalar(
                select(func.count())
                .select_from(RoutedAlert)
                .where(RoutedAlert.alert_id.in_(alert_ids), RoutedAlert.state == OPEN)
            )
            last = notes[-1]
            row = session.get(RoutedAlert, last.alert_id)
            if row is None:
                continue
            summary = insert_notification(  # keyed by the last text it sums up: one each
                session, row, recipient_id, last.level, Channel.SMS, NotificationEvent.SUMMARY,
                now, Outcome.SENDING, alert_id=f"summary-{last.id}",
                detail=f"sums up {len(notes)} text(s)",
            )  # fmt: skip
            if summary is None:
                continue
            for note in notes:
                set_outcome(note, Outcome.SUMMARIZED, f"in summary {summary.id}")
            text = summary_text(hall, len(notes), int(still_open or 0))
            key = f"route:{last.alert_id}:{recipient_id}:summary:{summary.id}"
            out.append(Delivery(summary.id, Channel.SMS, recipient_id, recipient.phone, text, key))
        return out

    # -- handing over --------------------------------------------------------------------------

    def _deliver(self, deliveries: list[Delivery]) -> int:
        """Hand claimed notifications to the broker or the SMS client; record outcomes."""
        if not deliveries:
            return 0
        outcomes: dict[int, Outcome] = {}
        for item in deliveries:
            try:
                if item.channel is Channel.MQTT:
                    assert self.mqtt is not None and isinstance(item.body, bytes)
                    ok = self.mqtt.publish(item.address, item.body)
                else:
                    assert self.sms is not None and isinstance(item.body, str)
                    ok = self.sms.send(item.address, item.body, item.key)
                outcomes[item.notification_id] = Outcome.SENT if ok else Outcome.REFUSED
            except Exception:
                logger.exception(
                    "notification %d (%s to %s) failed",
                    item.notification_id,
                    item.channel.value,
                    item.recipient,
                )
                outcomes[item.notification_id] = Outcome.FAILED
        with self.state.session() as session:
            for note_id, outcome in outcomes.items():
                note = session.get(AlertNotification, note_id)
                if note is None:
                    continue
                note.outcome = outcome.value
                if outcome is not Outcome.SENT:
                    note.sent_at = None
                NOTIFICATIONS.labels(note.channel, outcome.value).inc()
        sent = sum(1 for o in outcomes.values() if o is Outcome.SENT)
        logger.debug("handed over %d of %d notification(s)", sent, len(outcomes))
        return sent


def _warn_double_texts(hall: HallConfig) -> None:
    """Warn when a 异常办件 kind is both routed and in ``notify.sms`` (two texts)."""
    both = sorted(
        {
            kind.value
            for recipient in hall.notify.sms
            for kind in recipient.kinds
            if hall.routing.routes_kind(AlertKind(kind.value))
        }
    )
    if both:
        logger.warning(
            "hall %s: %s are routed by routing.routes and texted by notify.sms as well; "
            "recipients in both get two texts (move them to routing)",
            hall.hall.id,
            ", ".join(both),
        )
