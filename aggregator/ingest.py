"""Ingest: validate one MQTT message, drop duplicates, store it, update state, notify.

:meth:`Ingestor.handle` is called by the MQTT worker thread for every message, in order.
It never raises for a bad message: a malformed one (not JSON, wrong schema version,
unknown kind, failed validation, topic and payload disagreeing, unknown hall) is counted
and kept in the dead-letter table with the reason, and ingest goes on. It raises only for
infrastructure failures (the database is down), so the caller can retry without
acknowledging the message.

One fact = one transaction: the dedup ledger row (``SeenFact``; a duplicate id fails
its primary key, atomically, across replicas), the time-series points (idempotent by id)
and the state update commit together; live events and alerts go out after the commit.
Ticket, wait, trips and rating facts go to the 异常办件 register
(:class:`aggregator.cases.register.CaseRegister`) inside that transaction; queue gauges
update ``QueueStatus``. Device facts update ``DeviceStatus`` and, through
:class:`aggregator.rules.device_offline.DeviceOfflineRule`, open / resolve
``device_offline`` alerts; only cameras pause the off-post clock. Hygiene and occupancy
facts update ``ZoneStatus`` and open / resolve ``hygiene_bad`` and ``crowding`` alerts
through :class:`aggregator.rules.zone_alerts.ZoneAlertRule`. Evidence snapshots are stored
(:mod:`aggregator.store.evidence`) with the facts that start an episode: a presence change
to ``off_post`` keeps its snapshot on the post's status until the absence ends, and the
off-post alert of that absence links it. An older fact never overwrites newer state.

A dead letter keeps the payload as received except a snapshot's image
(``body.evidence.jpeg``, a picture of people), replaced by a marker
(:func:`strip_snapshot`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from prometheus_client import Counter, Histogram
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from aggregator.bus import LiveBus, LiveEvent
from aggregator.cases.models import Anomaly, QueueStatus
from aggregator.cases.register import CaseRegister
from aggregator.rules.device_offline import DeviceOfflineRule
from aggregator.rules.off_post import OffPostRule, PostSnapshot
from aggregator.rules.zone_alerts import ZoneAlertRule
from aggregator.store.evidence import store_evidence
from aggregator.store.state import DeviceStatus, EdgeStatusRow, PostStatus, SeenFact, StateStore
from aggregator.store.timeseries import TimeSeriesStore, facts_to_points
from hallwatch.config.models import HallConfig
from hallwatch.contract import (
    AlertMessage,
    ContractError,
    DeviceFact,
    DeviceKind,
    Fact,
    HygieneFact,
    OccupancyFact,
    PostState,
    PresenceFact,
    QueueFact,
    RatingFact,
    TicketFact,
    TripsFact,
    WaitFact,
    hall_of_topic,
    parse_edge_status,
    parse_fact,
    utcnow,
)
from hallwatch.privacy import mask_id_numbers_text

logger = logging.getLogger(__name__)

MESSAGES = Counter("hallwatch_ingest_messages", "MQTT messages ingested, by outcome.", ["outcome"])
REJECTED = Counter(
    "hallwatch_ingest_rejected", "Messages dead-lettered, by reason category.", ["reason"]
)
LATENCY = Histogram(
    "hallwatch_ingest_latency_seconds",
    "Time to ingest one message (validate, dedup, store, update state).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
LAG = Histogram(
    "hallwatch_fact_lag_seconds",
    "From a fact's observation time to its ingest (replays after outages show here).",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400),
)


class IngestOutcome(StrEnum):
    """What became of one message."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    DEAD_LETTERED = "dead_lettered"


def strip_snapshot(payload: bytes) -> bytes:
    """``payload`` without its snapshot's image, to be kept as a dead letter.

    A JSON payload with a ``body.evidence.jpeg`` gets the base64 JPEG replaced by
    ``"<jpeg removed, N chars>"``; everything else stays as received (byte for byte when
    the image's JSON text occurs once, else re-serialised). Other payloads are unchanged.

    >>> strip_snapshot(b'{"id": "F1", "body": {"evidence": {"jpeg": "/9j/4AAQ", "width": 4}}}')
    b'{"id": "F1", "body": {"evidence": {"jpeg": "<jpeg removed, 8 chars>", "width": 4}}}'
    >>> strip_snapshot(b'not json /9j/4AAQ')
    b'not json /9j/4AAQ'
    """
    try:
        tree: Any = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return payload
    body = tree.get("body") if isinstance(tree, dict) else None
    evidence = body.get("evidence") if isinstance(body, dict) else None
    if not isinstance(evidence, dict) or evidence.get("jpeg") is None:
        return payload
    jpeg = evidence["jpeg"]
    size = len(jpeg) if isinstance(jpeg, str) else len(json.dumps(jpeg))
    marker = f"<jpeg removed, {size} chars>"
    as_text = json.dumps(jpeg).encode()
    if isinstance(jpeg, str) and payload.count(as_text) == 1:
        return payload.replace(as_text, json.dumps(marker).encode())
    evidence["jpeg"] = marker
    return json.dumps(tree, ensure_ascii=False).encode()


class _RejectError(Exception):
    def __init__(self, category: str, reason: str) -> None:
        super().__init__(reason)
        self.category = category
        self.reason = reason


class _DuplicateError(Exception):
    pass


_REQUIRED_ON_WIRE = frozenset({"id", "ts", "schema_version"})
"""Envelope fields the contract defaults but every received fact must carry."""


class Ingestor:
    """Turns MQTT messages into stored facts, state and notifications.

    Args:
        state: The state database.
        series: The time-series store.
        halls: Hall configurations by hall id; facts of other halls are dead-lettered.
        bus: Live bus for presence/device/edge events (None: no live events).
        rule: The off-post rule, told about presence and observation changes and
            evaluated after each presence change (None: no rules).
        cases: The 异常办件 register, told about ticket, wait, trips and rating facts
            (None: those facts are only stored as series).
        devices: The device-offline rule, told about device state changes (None: no
            device alerts).
        zones: The zone rule, given hygiene and occupancy facts (None: those facts are
            only stored as series).
        clock: Source of "now" (tests pass a fake one).
    """

    def __init__(
        self,
        state: StateStore,
        series: TimeSeriesStore,
        halls: Mapping[str, HallConfig],
        bus: LiveBus | None = None,
        *,
        rule: OffPostRule | None = None,
        cases: CaseRegister | None = None,
        devices: DeviceOfflineRule | None = None,
        zones: ZoneAlertRule | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.state = state
        self.series = series
        self.halls = halls
        self.bus = bus
        self.rule = rule
        self.cases = cases
        self.devices = devices
        self.zones = zones
        self.clock = clock

    def handle(self, topic: str, payload: bytes) -> IngestOutcome:
        """Ingest one message.

        Args:
            topic: The MQTT topic it arrived on.
            payload: Its raw payload.

        Returns:
            stored, duplicate or dead_lettered.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: The database failed (the message is neither
                stored nor dead-lettered; retry it).
        """
        started = time.perf_counter()
        outcome = "error"
        try:
            result = self._handle(topic, payload)
            outcome = result.value
            return result
        finally:
            LATENCY.observe(time.perf_counter() - started)
            MESSAGES.labels(outcome).inc()

    def dead_letter(self, topic: str, payload: bytes, reason: str, category: str) -> None:
        """Keep a message that cannot be ingested (without its snapshot's image: see
        :func:`strip_snapshot`), with the reason, and count it."""
        REJECTED.labels(category).inc()
        logger.warning(
            "dead-lettering message on %s (%d bytes): %s",
            topic,
            len(payload),
            mask_id_numbers_text(reason[:300]),
        )
        self.state.dead_letter(topic, strip_snapshot(payload), reason, received_size=len(payload))

    # -- routing ---------------------------------------------------------------------------

    def _handle(self, topic: str, payload: bytes) -> IngestOutcome:
        try:
            parts = topic.split("/")
            hall = hall_of_topic(topic)
            if hall is None or len(parts) != 5:
                raise _RejectError("unknown_topic", f"not a fact or status topic: {topic}")
            if hall not in self.halls:
                raise _RejectError("unknown_hall", f"unknown hall {hall!r} (not configured)")
            if parts[3:] == ["edge", "status"]:
                return self._edge_status(hall, payload)
            if parts[3] != "facts":
                raise _RejectError("unknown_topic", f"not a fact or status topic: {topic}")
            try:
                fact = parse_fact(payload)
            except ContractError as exc:
                raise _RejectError("invalid", f"invalid fact: {exc}") from exc
            missing = _REQUIRED_ON_WIRE - fact.model_fields_set
            if missing:
                # The contract fills these with defaults (for senders); a receiver must
                # not: a made-up id defeats dedup, a made-up ts misdates the fact.
                names = ", ".join(sorted(m.replace("schema_version", "schema") for m in missing))
                raise _RejectError("invalid", f"invalid fact: missing {names}")
            if fact.hall != hall:
                raise _RejectError(
                    "topic_mismatch", f"payload hall {fact.hall!r} != topic hall {hall!r}"
                )
            if fact.kind.value != parts[4]:
                raise _RejectError(
                    "topic_mismatch", f"payload kind {fact.kind.value!r} != topic kind {parts[4]!r}"
                )
            return self._fact(fact)
        except _RejectError as rej:
            self.dead_letter(topic, payload, rej.reason, rej.category)
            return IngestOutcome.DEAD_LETTERED

    def _fact(self, fact: Fact) -> IngestOutcome:
        now = self.clock()
        events: list[LiveEvent] = []
        alerts: list[AlertMessage] = []
        case_alerts: list[AlertMessage] = []
        device_alerts: list[AlertMessage] = []
        zone_alerts: list[AlertMessage] = []
        touched: list[Anomaly] = []
        presence_changed = False
        try:
            with self.state.session() as session:
                session.add(
                    SeenFact(
                        id=fact.id,
                        hall=fact.hall,
                        kind=fact.kind.value,
                        ts=fact.ts,
                        received_at=now,
                    )
                )
                try:
                    session.flush()
                except IntegrityError as exc:
                    raise _DuplicateError from exc
                self.series.write(facts_to_points(fact))
                if isinstance(fact, PresenceFact):
                    presence_changed = self._presence(session, fact, now, events, alerts)
                elif isinstance(fact, DeviceFact):
                    self._device(session, fact, now, events, device_alerts)
                elif isinstance(fact, QueueFact):
                    self._queue(session, fact, now, events)
                elif self.zones is not None and isinstance(fact, HygieneFact | OccupancyFact):
                    zone_alerts = self._zone(session, fact, now, events)
                elif self.cases is not None and isinstance(
                    fact, WaitFact | TripsFact | RatingFact | TicketFact
                ):
                    case_alerts = self._cases(session, fact, now, touched)
        except _DuplicateError:
            logger.debug("duplicate fact %s dropped", fact.id)
            return IngestOutcome.DUPLICATE
        LAG.observe(max(0.0, (now - fact.ts).total_seconds()))
        self._notify(events, alerts)
        if device_alerts and self.devices is not None:
            self.devices.publish(device_alerts)
        if zone_alerts and self.zones is not None:
            self.zones.publish(zone_alerts)
        if self.cases is not None and (touched or case_alerts):
            try:
                self.cases.after_commit(touched, case_alerts)
            except Exception:  # the fact and its anomalies are stored
                logger.exception("publishing anomalies of fact %s failed", fact.id)
        if presence_changed and self.rule is not None:
            try:
                self.rule.evaluate(now, hall=fact.hall)
            except Exception:  # the fact is stored; the ticker evaluates again
                logger.exception("rule evaluation after fact %s failed", fact.id)
        return IngestOutcome.STORED

    def _notify(self, events: list[LiveEvent], alerts: list[AlertMessage]) -> None:
        if self.bus is not None:
            for event in events:
                self.bus.publish(event)
        if alerts and self.rule is not None:
            self.rule.publish(alerts)

    # -- state updates (inside the fact's transaction) -----------------------------------

    def _presence(
        self,
        session: Session,
        fact: PresenceFact,
        now: datetime,
        events: list[LiveEvent],
        alerts: list[AlertMessage],
    ) -> bool:
        b = fact.body
        row = session.get(PostStatus, (fact.hall, b.post))
        before: PostSnapshot | None = None
        if row is None:
            row = PostStatus(
                hall=fact.hall, post=b.post, camera=b.camera, window=b.window,
                source=fact.source, state=b.state.value, since=b.since,
                last_fact_ts=fact.ts, updated_at=now, clock_banked_s=0.0, clock_from=None,
                evidence_id=self._absence_snapshot(session, fact, now),
            )  # fmt: skip
            session.add(row)
            session.flush()
        else:
            if fact.ts < row.last_fact_ts:
                logger.debug("stale presence fact %s (older than state) kept as series", fact.id)
                return False
            before = PostSnapshot.of(row)
            row.camera, row.source = b.camera, fact.source
            row.window = b.window if b.window is not None else row.window
            row.last_fact_ts, row.updated_at = fact.ts, now
            if row.state == b.state.value:
                return False  # same state (summary or repeat): ``since`` stands
            row.state, row.since = b.state.value, b.since
            if row.state == PostState.OFF_POST.value:
                row.evidence_id = self._absence_snapshot(session, fact, now)
        if self.rule is not None:
            # an off-post alert opened or recorded here copies the absence's snapshot id
            # from the post's status (``OffPostRule._new_alert``), so it is cleared only
            # afterwards
            alerts.extend(self.rule.on_presence_change(session, row, before, now))
        if row.state == PostState.ON_POST.value:
            row.evidence_id = None
        events.append(
            LiveEvent(
                "presence",
                fact.hall,
                {
                    "post": row.post,
                    "camera": row.camera,
                    "window": row.window,
                    "state": row.state,
                    "since": row.since.isoformat(),
                },
            )
        )
        return True

    @staticmethod
    def _absence_snapshot(session: Session, fact: PresenceFact, now: datetime) -> str | None:
        """Store the snapshot of a presence change to off_post; its id (None: no snapshot)."""
        b = fact.body
        if b.state is not PostState.OFF_POST or b.evidence is None:
            return None
        return store_evidence(session, fact.hall, b.evidence, fact_id=fact.id, post=b.post, now=now)

    def _zone(
        self,
        session: Session,
        fact: HygieneFact | OccupancyFact,
        now: datetime,
        events: list[LiveEvent],
    ) -> list[AlertMessage]:
        assert self.zones is not None
        if isinstance(fact, HygieneFact):
            outcome = self.zones.on_hygiene(session, fact, now)
        else:
            outcome = self.zones.on_occupancy(session, fact, now)
        if outcome.event is not None:
            events.append(outcome.event)
        return outcome.alerts

    def _device(
        self,
        session: Session,
        fact: DeviceFact,
        now: datetime,
        events: list[LiveEvent],
        alerts: list[AlertMessage],
    ) -> None:
        d = fact.body
        row = session.get(DeviceStatus, (fact.hall, d.device))
        if row is None:
            row = DeviceStatus(
                hall=fact.hall, device=d.device, kind=d.device_kind.value, source=fact.source,
                state=d.state.value, since=fact.ts, reason=d.reason, last_fact_ts=fact.ts,
            )  # fmt: skip
            session.add(row)
            session.flush()
        else:
            if fact.ts < row.last_fact_ts:
                return
            row.kind, row.source, row.reason = d.device_kind.value, fact.source, d.reason
            row.last_fact_ts = fact.ts
            if row.state == d.state.value:
                return
            row.state, row.since = d.state.value, fact.ts
        if self.rule is not None and row.kind == DeviceKind.CAMERA.value:
            # only a camera's outage hides posts: a kiosk offline pauses no off-post clock
            self.rule.on_observation_change(session, fact.hall, fact.ts)
        if self.devices is not None:
            alerts.extend(self.devices.on_device_change(session, row, now))
        events.append(
            LiveEvent(
                "device",
                fact.hall,
                {
                    "device": row.device,
                    "kind": row.kind,
                    "state": row.state,
                    "since": row.since.isoformat(),
                    "reason": row.reason,
                },
            )
        )

    def _cases(
        self,
        session: Session,
        fact: WaitFact | TripsFact | RatingFact | TicketFact,
        now: datetime,
        touched: list[Anomaly],
    ) -> list[AlertMessage]:
        assert self.cases is not None
        try:
            with session.begin_nested():
                return self.cases.on_fact(session, fact, now, touched)
        except SQLAlchemyError:
            raise  # infrastructure: the fact is retried
        except Exception as exc:
            # A bug must neither block ingest nor lose the anomaly: the whole fact is
            # rolled back and dead-lettered, to be replayed once the bug is fixed.
            logger.exception("the anomaly register failed on fact %s; dead-lettered", fact.id)
            touched.clear()
            reason = f"the anomaly register failed: {type(exc).__name__}: {exc}"
            raise _RejectError("register_error", reason) from exc

    def _queue(
        self, session: Session, fact: QueueFact, now: datetime, events: list[LiveEvent]
    ) -> None:
        changed = []
        rows = {  # one query for the hall's services, not one per service
            r.service: r
            for r in session.scalars(select(QueueStatus).where(QueueStatus.hall == fact.hall))
        }
        for item in fact.body.services:
            row = rows.get(item.service)
            if row is None:
                row = QueueStatus(
                    hall=fact.hall,
                    service=item.service,
                    waiting=item.waiting,
                    longest_wait_s=item.longest_wait_s,
                    ts=fact.ts,
                    updated_at=now,
                )
                session.add(row)
            elif fact.ts < row.ts:
                continue  # an older gauge: the stored one is newer
            else:
                row.waiting, row.longest_wait_s = item.waiting, item.longest_wait_s
                row.ts, row.updated_at = fact.ts, now
            changed.append(
                {
                    "service": item.service,
                    "waiting": item.waiting,
                    "longest_wait_s": item.longest_wait_s,
                }
            )
        if changed:
            events.append(
                LiveEvent("queue", fact.hall, {"ts": fact.ts.isoformat(), "services": changed})
            )

    def _edge_status(self, hall: str, payload: bytes) -> IngestOutcome:
        try:
            status = parse_edge_status(payload)
        except ContractError as exc:
            raise _RejectError("invalid", f"invalid edge status: {exc}") from exc
        if status.hall != hall:
            raise _RejectError(
                "topic_mismatch", f"payload hall {status.hall!r} != topic hall {hall!r}"
            )
        now = self.clock()
        changed = False
        with self.state.session() as session:
            row = session.get(EdgeStatusRow, (hall, status.source))
            if row is None:
                row = EdgeStatusRow(hall=hall, source=status.source, state=status.state.value,
                                    ts=status.ts)  # fmt: skip
                session.add(row)
                session.flush()
                changed = True
            else:
                # Arrival order, not ``ts``: an edge's will is built (and dated) at connect.
                changed = row.state != status.state.value
                row.state, row.ts = status.state.value, status.ts
            if changed and self.rule is not None:
                self.rule.on_observation_change(session, hall, now)
        if changed and self.bus is not None:
            self.bus.publish(
                LiveEvent(
                    "edge",
                    hall,
                    {
                        "source": status.source,
                        "state": status.state.value,
                        "ts": status.ts.isoformat(),
                    },
                )
            )
        return IngestOutcome.STORED
