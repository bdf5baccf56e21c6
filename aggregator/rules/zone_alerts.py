"""The zone rules: 环境差 (``hygiene_bad``) and crowding (``crowding``) alerts, and zone state.

Policy:

- **环境差** is a reminder to the hall manager. A hygiene fact ``bad`` opens one
  ``hygiene_bad`` alert for its zone, ``good`` resolves it (``end`` = the ``good`` fact's
  ``since``). The alert's duration is how long the area stayed dirty in the open hall.
- **Only service time opens a 环境差 alert**: outside opening hours the edge still grades
  the zones, but chairs stacked for the night, cleaning carts or the lights going off
  would page the manager for nothing. An episode that starts outside service time opens
  its alert at the start of the next service period if it still lasts then (the ticker's
  :meth:`ZoneAlertRule.evaluate`), with ``start`` = that moment; one cleared before
  the hall opens raises nothing. Inside service time ``start`` = the fact's ``since``
  (when the dirt was first seen). An open alert resolves whenever ``good`` arrives,
  hours or not. An episode replayed after an outage (``bad`` and ``good`` both late) that
  overlapped service time is recorded as an already resolved alert, and so is one whose
  ``bad`` arrives only after a newer ``good`` (replay order: the ``bad``'s ``since`` is
  older than the stored ``good``'s): ``start`` = the ``bad``'s ``since`` (or the next
  opening), ``end`` = the stored ``good``'s ``since``; the zone's state stays the newer one.
- **Crowding** alerts at any hour: people in a zone when the hall is closed (a queue at
  the door before opening, a late close) is exactly what the manager should know, and
  people counts have no night-time false alarms like the hygiene reference has. An
  occupancy fact ``crowded`` opens one ``crowding`` alert (``start`` = the interval's
  start) unless one is open; the first interval not crowded resolves it (``end`` = its
  start).
- Repeated facts (same grade, or still crowded) and stale facts (older than the zone's
  stored state, per side) change nothing, except the late ``bad`` above: the dedup ledger
  drops redeliveries, and a partial unique index allows one open alert per hall, zone and
  kind across replicas.
- **Replicas**: a fact reads the zone's ``ZoneStatus`` row ``FOR UPDATE`` (PostgreSQL; a
  no-op on SQLite, whose writers are serialised) and keeps the lock until its transaction
  commits, so the ``bad`` and ``good`` facts of one zone handled by two replicas at once
  apply one after the other instead of both reading the old grade. A zone's first row is
  inserted in a savepoint; if another replica inserted it meanwhile, the row is re-read
  (locked). The ticker skips rows a fact holds (``SKIP LOCKED``) and retries at the next
  tick.
- A fact's ``evidence`` snapshot is stored (:mod:`aggregator.store.evidence`) when the
  fact starts an episode, and the episode's alert links it (``Alert.evidence_id``).

All state is in the database (``ZoneStatus``, ``Alert``, ``EvidenceSnapshot``);
:meth:`ZoneAlertRule.evaluate` takes ``now`` explicitly: deterministic.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aggregator.alerts import AlertSink, add_alert, alert_message, publish_alerts
from aggregator.bus import LiveEvent
from aggregator.store.evidence import store_evidence
from aggregator.store.state import Alert, StateStore, ZoneStatus
from hallwatch.config.models import HallConfig
from hallwatch.config.zones import ZoneConfig
from hallwatch.contract import (
    AlertKind,
    AlertMessage,
    AlertState,
    HygieneFact,
    HygieneMethod,
    HygieneState,
    OccupancyFact,
    new_id,
)
from hallwatch.service_time import next_in_service

logger = logging.getLogger(__name__)

HYGIENE = AlertKind.HYGIENE_BAD.value
CROWDING = AlertKind.CROWDING.value
BAD = HygieneState.BAD.value
GOOD = HygieneState.GOOD.value
OPEN = AlertState.OPEN.value

_MESSAGE_MAX = 500


@dataclass(frozen=True, slots=True)
class ZoneOutcome:
    """What one zone fact did: alerts to publish after commit, and a live event."""

    alerts: list[AlertMessage] = field(default_factory=list)
    event: LiveEvent | None = None


def _zone(hall: HallConfig | None, zone_id: str) -> ZoneConfig | None:
    if hall is None:
        return None
    try:
        return hall.zone(zone_id)
    except KeyError:
        return None


def _clip(text: str) -> str:
    return text if len(text) <= _MESSAGE_MAX else text[: _MESSAGE_MAX - 1] + "…"


@dataclass(frozen=True, slots=True)
class HygieneEpisode:
    """One 环境差 episode of a zone: since when, how bad, what judged it, its snapshot."""

    since: datetime
    score: float
    method: str
    evidence_id: str | None

    @classmethod
    def of(cls, row: ZoneStatus) -> HygieneEpisode | None:
        """The zone's current episode (None unless it is graded bad)."""
        if row.hygiene_state != BAD or row.hygiene_since is None:
            return None
        return cls(
            since=row.hygiene_since,
            score=row.hygiene_score or 0.0,
            method=row.hygiene_method or HygieneMethod.REFERENCE.value,
            evidence_id=row.hygiene_evidence_id,
        )


def hygiene_message(name: str, window: str | None, episode: HygieneEpisode) -> str:
    """The 环境差 alert's Chinese message: zone, window, a reminder and the measured score.

    >>> from datetime import UTC, datetime
    >>> ep = HygieneEpisode(datetime(2026, 11, 2, tzinfo=UTC), 0.12, "reference", None)
    >>> hygiene_message("1号窗口公共区域", "1", ep)
    '环境差：1号窗口公共区域（1号窗口），请及时清理（变化面积12%）'
    """
    where = f"{name}（{window}号窗口）" if window else name
    if episode.method == HygieneMethod.CLASSIFIER.value:
        measured = f"判定概率{episode.score:.0%}"
    else:
        measured = f"变化面积{episode.score:.0%}"
    return _clip(f"环境差：{where}，请及时清理（{measured}）")


def crowding_message(zone: ZoneConfig | None, row: ZoneStatus) -> str:
    """The crowding alert's Chinese message: zone, count, peak and the threshold.

    >>> from datetime import UTC, datetime
    >>> row = ZoneStatus(hall="h", zone="waiting", camera="c1", occupancy_count=31,
    ...                  occupancy_peak=35, updated_at=datetime(2026, 11, 2, tzinfo=UTC))
    >>> crowding_message(None, row)
    '人员拥挤：waiting当前31人（峰值35人），请及时疏导'
    """
    where = zone.name if zone is not None else row.zone
    text = f"人员拥挤：{where}当前{row.occupancy_count or 0}人（峰值{row.occupancy_peak or 0}人）"
    if zone is not None and zone.crowding_at is not None:
        text += f"，已达拥挤阈值{zone.crowding_at}人"
    return _clip(text + "，请及时疏导")


class ZoneAlertRule:
    """Keeps zones' state and opens / resolves ``hygiene_bad`` and ``crowding`` alerts.

    Args:
        state: The state database (for :meth:`evaluate`).
        halls: Hall configurations by hall id (zones, service hours).
        sink: Where opened and resolved alerts are published (after commit); the same sink
            as the other rules' (MQTT alerts topic, live bus).
    """

    def __init__(
        self,
        state: StateStore,
        halls: Mapping[str, HallConfig],
        sink: AlertSink | None = None,
    ) -> None:
        self.state = state
        self.halls = halls
        self.sink = sink

    # -- called by the ingestor inside a fact's transaction --------------------------------

    def on_hygiene(self, session: Session, fact: HygieneFact, now: datetime) -> ZoneOutcome:
        """Apply a hygiene fact: update the zone's grade and open / resolve its alert.

        Args:
            session: The fact's session.
            fact: The hygiene fact.
            now: Ingest time (``opened_at`` / ``resolved_at``, storage time of snapshots).

        Returns:
            Alerts to publish once the transaction commits, and a live ``hygiene`` event
            (none for a repeated or stale fact).
        """
        b = fact.body
        row = self._row(session, fact.hall, b.zone, b.camera, now)
        if row.hygiene_fact_ts is not None and fact.ts < row.hygiene_fact_ts:
            return ZoneOutcome(self._late_bad(session, fact, row, now))
        row.hygiene_fact_ts, row.camera, row.updated_at = fact.ts, b.camera, now
        row.window = b.window if b.window is not None else row.window
        if row.hygiene_state == b.state.value:
            return ZoneOutcome()  # a repeat: ``since`` and the episode stand
        ended = HygieneEpisode.of(row)
        row.hygiene_state, row.hygiene_since = b.state.value, b.since
        row.hygiene_score, row.hygiene_method = b.score, b.method.value
        row.hygiene_evidence_id = None
        alerts: list[AlertMessage] = []
        if b.state is HygieneState.BAD:
            if b.evidence is not None:
                row.hygiene_evidence_id = store_evidence(
                    session, fact.hall, b.evidence, fact_id=fact.id, zone=b.zone, now=now
                )
            episode = HygieneEpisode.of(row)
            assert episode is not None
            alerts += self._open_hygiene(session, row, episode, now)
        elif ended is not None:
            alerts += self._end_hygiene(session, row, ended, b.since, now)
        event = LiveEvent(
            "hygiene",
            fact.hall,
            {
                "zone": row.zone,
                "camera": row.camera,
                "window": row.window,
                "state": row.hygiene_state,
                "since": b.since.isoformat(),
                "score": b.score,
            },
        )
        return ZoneOutcome(alerts, event)

    def on_occupancy(self, session: Session, fact: OccupancyFact, now: datetime) -> ZoneOutcome:
        """Apply an occupancy fact: keep the zone's latest count and open / resolve its
        crowding alert.

        Returns:
            Alerts to publish once the transaction commits, and a live ``occupancy`` event
            (none for a stale fact: one whose interval ends before the stored one's).
        """
        b = fact.body
        at = b.start + timedelta(seconds=b.interval_s)
        row = self._row(session, fact.hall, b.zone, b.camera, now)
        if row.occupancy_at is not None and at < row.occupancy_at:
            logger.debug("stale occupancy fact %s (older than state) kept as series", fact.id)
            return ZoneOutcome()
        was_crowded = row.occupancy_crowded
        row.camera, row.updated_at = b.camera, now
        row.occupancy_count, row.occupancy_peak, row.occupancy_mean = b.count, b.peak, b.mean
        row.occupancy_start, row.occupancy_at = b.start, at
        row.occupancy_crowded = b.crowded
        alerts: list[AlertMessage] = []
        if b.crowded and not was_crowded:
            row.crowded_since = b.start
            evidence_id = None
            if b.evidence is not None:
                evidence_id = store_evidence(
                    session, fact.hall, b.evidence, fact_id=fact.id, zone=b.zone, now=now
                )
            alerts += self._open_crowding(session, row, evidence_id, now)
        elif was_crowded and not b.crowded:
            row.crowded_since = None
            alert = _open_alert(session, row.hall, row.zone, CROWDING)
            if alert is not None:
                _resolve(alert, b.start, now)
                alerts.append(alert_message(alert))
        event = LiveEvent(
            "occupancy",
            fact.hall,
            {
                "zone": row.zone,
                "camera": row.camera,
                "count": b.count,
                "peak": b.peak,
                "crowded": b.crowded,
                "at": at.isoformat(),
            },
        )
        return ZoneOutcome(alerts, event)

    # -- periodic evaluation ---------------------------------------------------------------

    def evaluate(self, now: datetime, *, hall: str | None = None) -> list[AlertMessage]:
        """Open the 环境差 alerts of zones still bad once service time has begun (episodes
        that started while the hall was closed). Publishes the results to the sink.

        Args:
            now: The evaluation time (aware); tests pass it explicitly.
            hall: Only this hall; None: every configured hall.

        Returns:
            The alert messages opened by this evaluation.
        """
        halls = [hall] if hall is not None else list(self.halls)
        out: list[AlertMessage] = []
        with self.state.session() as session:
            open_zones = set(
                session.execute(
                    select(Alert.hall, Alert.zone).where(
                        Alert.state == OPEN, Alert.kind == HYGIENE, Alert.hall.in_(halls)
                    )
                ).all()
            )
            bad = session.scalars(
                select(ZoneStatus)
                .where(ZoneStatus.hygiene_state == BAD, ZoneStatus.hall.in_(halls))
                # a row a fact holds is skipped: that fact decides, or the next tick does
                .with_for_update(skip_locked=True)
            ).all()
            for row in bad:
                episode = HygieneEpisode.of(row)
                if episode is not None and (row.hall, row.zone) not in open_zones:
                    out += self._open_hygiene(session, row, episode, now)
        publish_alerts(self.sink, out)
        return out

    def publish(self, messages: list[AlertMessage]) -> None:
        """Send messages produced inside a transaction, once it has committed."""
        publish_alerts(self.sink, messages)

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _row(session: Session, hall: str, zone: str, camera: str, now: datetime) -> ZoneStatus:
        """The zone's row, locked until the fact's transaction ends; created if new."""
        row = session.get(ZoneStatus, (hall, zone), with_for_update=True)
        if row is not None:
            return row
        row = ZoneStatus(hall=hall, zone=zone, camera=camera, occupancy_crowded=False,
                         updated_at=now)  # fmt: skip
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            # another replica created it meanwhile (its insert committed first): use its row
            logger.debug("zone %s/%s created by another replica; re-read locked", hall, zone)
            found = session.get(ZoneStatus, (hall, zone), with_for_update=True)
            if found is None:
                raise
            row = found
        return row

    def _service_start(self, hall: str, since: datetime) -> datetime | None:
        """When an episode from ``since`` first meets service time (None: never)."""
        config = self.halls.get(hall)
        return next_in_service(config, since) if config is not None else since

    def _open_hygiene(
        self, session: Session, row: ZoneStatus, episode: HygieneEpisode, now: datetime
    ) -> list[AlertMessage]:
        start = self._service_start(row.hall, episode.since)
        if start is None or start > now:
            return []  # outside service time: the ticker opens it when service begins
        if _open_alert(session, row.hall, row.zone, HYGIENE) is not None:
            return []  # already open (e.g. opened by another replica)
        if _already_alerted(session, row.hall, row.zone, HYGIENE, start):
            return []  # this very episode was alerted (and resolved) already
        return _add(session, self._hygiene_alert(row, episode, start, now))

    def _end_hygiene(
        self,
        session: Session,
        row: ZoneStatus,
        ended: HygieneEpisode,
        end: datetime,
        now: datetime,
    ) -> list[AlertMessage]:
        """The zone is good again from ``end``: resolve the episode's alert, or record it
        already resolved if it overlapped service time unseen (facts replayed late)."""
        alert = _open_alert(session, row.hall, row.zone, HYGIENE)
        if alert is not None:
            _resolve(alert, end, now)
            return [alert_message(alert)]
        start = self._recorded_start(session, row, ended, end)
        return [] if start is None else self._record_resolved(session, row, ended, start, end, now)

    def _late_bad(
        self, session: Session, fact: HygieneFact, row: ZoneStatus, now: datetime
    ) -> list[AlertMessage]:
        """A fact older than the zone's state: kept as series only, unless it is a ``bad``
        from before the stored ``good`` (replay order): that episode ended at the ``good``'s
        ``since`` and is recorded resolved. The zone's state stays the newer one."""
        b = fact.body
        end = row.hygiene_since
        if b.state is not HygieneState.BAD or row.hygiene_state != GOOD or end is None:
            logger.debug("stale hygiene fact %s (older than state) kept as series", fact.id)
            return []
        if b.since >= end:
            logger.debug("stale bad %s after the stored good's since: series only", fact.id)
            return []
        episode = HygieneEpisode(
            since=b.since, score=b.score, method=b.method.value, evidence_id=None
        )
        start = self._recorded_start(session, row, episode, end)
        if start is None:
            return []
        if b.evidence is not None:  # stored only now that an alert will use it
            evidence_id = store_evidence(
                session, fact.hall, b.evidence, fact_id=fact.id, zone=b.zone, now=now
            )
            episode = dataclasses.replace(episode, evidence_id=evidence_id)
        logger.info("late bad %s of zone %s/%s: its episode until %s is recorded", fact.id,
                    row.hall, row.zone, end.isoformat())  # fmt: skip
        return self._record_resolved(session, row, episode, start, end, now)

    def _recorded_start(
        self, session: Session, row: ZoneStatus, episode: HygieneEpisode, end: datetime
    ) -> datetime | None:
        """Start of the alert an episode ended at ``end`` gets when seen only afterwards;
        None if it never met service time or an alert already covers it."""
        start = self._service_start(row.hall, episode.since)
        if start is None or start >= end:
            return None  # cleared before the hall opened: no reminder needed
        if _alerted_during(session, row.hall, row.zone, HYGIENE, start, end):
            return None
        return start

    def _record_resolved(
        self,
        session: Session,
        row: ZoneStatus,
        episode: HygieneEpisode,
        start: datetime,
        end: datetime,
        now: datetime,
    ) -> list[AlertMessage]:
        alert = self._hygiene_alert(row, episode, start, now)
        _resolve(alert, end, now)
        return _add(session, alert)

    def _hygiene_alert(
        self, row: ZoneStatus, episode: HygieneEpisode, start: datetime, now: datetime
    ) -> Alert:
        zone = _zone(self.halls.get(row.hall), row.zone)
        alert = _new_alert(row, HYGIENE, start, episode.evidence_id, now)
        alert.window = row.window or (zone.window if zone is not None else None)
        alert.message = hygiene_message(zone.name if zone else row.zone, alert.window, episode)
        return alert

    def _open_crowding(
        self, session: Session, row: ZoneStatus, evidence_id: str | None, now: datetime
    ) -> list[AlertMessage]:
        start = row.crowded_since
        assert start is not None
        if _open_alert(session, row.hall, row.zone, CROWDING) is not None:
            return []
        if _already_alerted(session, row.hall, row.zone, CROWDING, start):
            return []
        zone = _zone(self.halls.get(row.hall), row.zone)
        alert = _new_alert(row, CROWDING, start, evidence_id, now)
        alert.window = zone.window if zone is not None else None
        alert.message = crowding_message(zone, row)
        return _add(session, alert)


def _new_alert(
    row: ZoneStatus, kind: str, start: datetime, evidence_id: str | None, now: datetime
) -> Alert:
    return Alert(
        id=new_id(),
        hall=row.hall,
        kind=kind,
        post=None,
        window=None,
        device=None,
        zone=row.zone,
        evidence_id=evidence_id,
        state=OPEN,
        start=start,
        end=None,
        opened_at=now,
        resolved_at=None,
        message="",
    )


def _add(session: Session, alert: Alert) -> list[AlertMessage]:
    if not add_alert(session, alert):
        return []
    logger.info(
        "%s alert %s %s: hall %s zone %s since %s",
        alert.kind,
        alert.id,
        "opened" if alert.state == OPEN else "recorded resolved",
        alert.hall,
        alert.zone,
        alert.start.isoformat(),
    )
    return [alert_message(alert)]


def _resolve(alert: Alert, end: datetime, now: datetime) -> None:
    alert.state = AlertState.RESOLVED.value
    alert.end = max(end, alert.start)
    alert.resolved_at = now
    logger.info("%s alert %s resolved: end %s", alert.kind, alert.id, alert.end.isoformat())


def _open_alert(session: Session, hall: str, zone: str, kind: str) -> Alert | None:
    stmt = select(Alert).where(
        Alert.hall == hall, Alert.zone == zone, Alert.kind == kind, Alert.state == OPEN
    )
    return session.scalars(stmt).first()


def _alerted_during(
    session: Session, hall: str, zone: str, kind: str, start: datetime, end: datetime
) -> bool:
    """Whether an alert of the zone starts at ``start`` or overlaps ``[start, end)``."""
    stmt = select(Alert.id).where(
        Alert.hall == hall,
        Alert.zone == zone,
        Alert.kind == kind,
        or_(
            Alert.start == start,
            and_(Alert.start < end, or_(Alert.end.is_(None), Alert.end > start)),
        ),
    )
    return session.scalars(stmt).first() is not None


def _already_alerted(session: Session, hall: str, zone: str, kind: str, start: datetime) -> bool:
    stmt = select(Alert.id).where(
        Alert.hall == hall, Alert.zone == zone, Alert.kind == kind, Alert.start == start
    )
    return session.scalars(stmt).first() is not None
