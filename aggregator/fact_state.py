"""State updates of facts: post, device, queue and zone status, the 异常办件 register.

:class:`FactState` applies one fact to the state database inside the caller's transaction
(the ingestor's batch) and collects what must go out once that transaction commits — live
events, alerts, anomalies touched, the halls whose posts changed — in a
:class:`StateEffects`. An older fact never overwrites newer state: each status row keeps
the time of the fact it reflects.

- presence → ``PostStatus`` (and the off-post rule's clock; a change to off_post keeps its
  snapshot on the status until the absence ends);
- device → ``DeviceStatus`` and ``device_offline`` alerts (only cameras pause the
  off-post clock);
- queue → ``QueueStatus``;
- hygiene, occupancy → ``ZoneStatus``, ``hygiene_bad`` and ``crowding`` alerts;
- ticket, wait, trips, rating → the 异常办件 register, in a savepoint.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import BindParameter, Table, bindparam, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from aggregator.bus import LiveEvent
from aggregator.cases.models import Anomaly, QueueStatus
from aggregator.cases.register import CaseRegister
from aggregator.rules.device_offline import DeviceOfflineRule
from aggregator.rules.off_post import OffPostRule, PostSnapshot, forget_hall_watch
from aggregator.rules.zone_alerts import ZoneAlertRule
from aggregator.store.driver_sql import DriverStatement
from aggregator.store.evidence import store_evidence
from aggregator.store.state import DeviceStatus, PostStatus
from hallwatch.contract import (
    AlertMessage,
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
)

logger = logging.getLogger(__name__)

_Row = TypeVar("_Row", PostStatus, DeviceStatus)


class RegisterFailedError(Exception):
    """The anomaly register failed on a fact (a bug, not the database): the fact is to be
    rolled back and dead-lettered, to be replayed once the bug is fixed."""


_POST_STATUS = cast(Table, PostStatus.__table__)
_HALLS: BindParameter[str] = bindparam("halls", expanding=True)
_POSTS_OF_HALLS = select(PostStatus).where(PostStatus.hall.in_(_HALLS))
_DEVICES_OF_HALLS = select(DeviceStatus).where(DeviceStatus.hall.in_(_HALLS))
"""What a batch loads (:meth:`FactState.preload`), built once."""
_SEEN_NAMES = ("camera", "source", "window", "last_fact_ts", "updated_at")
"""The columns a state-repeating presence fact writes to its post's row."""


def _post_seen_update(dialect: Dialect) -> DriverStatement:
    """The UPDATE of posts' state-repeating facts (:meth:`FactState.settle`)."""
    table = _POST_STATUS
    statement = (
        update(table)
        .where(table.c.hall == bindparam("key_hall"), table.c.post == bindparam("key_post"))
        .values({table.c[name]: bindparam(f"v_{name}") for name in _SEEN_NAMES})
    )
    names = (*(f"v_{name}" for name in _SEEN_NAMES), "key_hall", "key_post")
    types = {f"v_{name}": table.c[name].type for name in ("last_fact_ts", "updated_at")}
    return DriverStatement(statement, names, types, dialect)


@dataclass(slots=True)
class _Seen:
    """The newest presence fact of a post that repeated its state (not yet on the row; not
    frozen: see :class:`~aggregator.store.points.Point`), and that state: the row's, which
    only a change of state (that ends this record) alters."""

    ts: datetime
    camera: str
    source: str
    window: str | None
    at: datetime
    state: str


@dataclass(slots=True)
class StateEffects:
    """What a transaction's facts send out once it commits, in the order they arose.

    Attributes:
        events: Live events (presence, device, queue, zone).
        alerts: Off-post alerts opened or resolved.
        device_alerts: ``device_offline`` alerts.
        zone_alerts: ``hygiene_bad`` and ``crowding`` alerts.
        case_alerts: Alerts of the 异常办件 register.
        touched: Anomalies opened or changed.
        presence_halls: Halls with a post whose state changed (the off-post rule is
            evaluated for them before the commit: :meth:`FactState.judge`).
        rows: Status rows the transaction's facts loaded, by model and key. Held here
            because the session's identity map holds clean rows weakly: without it every
            fact of a batch would load (and flush) its post's row again.
        seen: Posts whose newest facts repeat their state, by key: that fact's time,
            camera, source, window and arrival, written to the row once
            (:meth:`FactState.settle`) instead of once per fact.
        loaded: Models and halls whose rows were all loaded (:meth:`FactState.preload`):
            a key of theirs missing from ``rows`` has no row, and is not looked up.
    """

    events: list[LiveEvent] = field(default_factory=list)
    alerts: list[AlertMessage] = field(default_factory=list)
    device_alerts: list[AlertMessage] = field(default_factory=list)
    zone_alerts: list[AlertMessage] = field(default_factory=list)
    case_alerts: list[AlertMessage] = field(default_factory=list)
    touched: list[Anomaly] = field(default_factory=list)
    presence_halls: set[str] = field(default_factory=set)
    rows: dict[tuple[type, tuple[str, str]], Any] = field(default_factory=dict)
    seen: dict[tuple[str, str], _Seen] = field(default_factory=dict)
    loaded: set[tuple[type, str]] = field(default_factory=set)

    def row(self, session: Session, model: type[_Row], key: tuple[str, str]) -> _Row | None:
        """The row of ``model`` with primary key ``key``, loaded once per transaction."""
        found: _Row | None = self.rows.get((model, key))  # no cast(): a call per fact
        if found is None and (model, key[0]) not in self.loaded:
            found = session.get(model, key)
            if found is not None:
                self.rows[(model, key)] = found
        return found

    def keep(self, row: PostStatus | DeviceStatus, key: tuple[str, str]) -> None:
        """Hold a row the transaction created."""
        self.rows[(type(row), key)] = row


class FactState:
    """Applies facts to the state database.

    Args:
        rule: The off-post rule, told about presence and observation changes (None: no
            off-post alerts).
        cases: The 异常办件 register (None: ticket, wait, trips and rating facts are only
            stored as series).
        devices: The device-offline rule (None: no device alerts).
        zones: The zone rule (None: hygiene and occupancy facts are only stored as series).
    """

    def __init__(
        self,
        *,
        rule: OffPostRule | None = None,
        cases: CaseRegister | None = None,
        devices: DeviceOfflineRule | None = None,
        zones: ZoneAlertRule | None = None,
    ) -> None:
        self.rule = rule
        self.cases = cases
        self.devices = devices
        self.zones = zones

    @classmethod
    def preload(cls, session: Session, facts: Sequence[Fact], effects: StateEffects) -> None:
        """Load, in one query per kind, the post and device rows ``facts`` will update."""
        post_halls: set[str] = set()
        device_halls: set[str] = set()
        for fact in facts:  # one pass: most facts of a batch are presence
            if isinstance(fact, PresenceFact):
                post_halls.add(fact.hall)
            elif isinstance(fact, DeviceFact):
                device_halls.add(fact.hall)
        cls._load(session, post_halls, device_halls, effects)

    @classmethod
    def warm_up(cls, session: Session, halls: Sequence[str]) -> None:
        """Compile and run once what a batch of ``halls``' facts runs first (rows loaded,
        posts' UPDATE compiled): :meth:`aggregator.ingest.Ingestor.warm_up`."""
        cls._load(session, set(halls), set(halls), StateEffects())
        DriverStatement.cached("post_seen", session.get_bind().dialect, _post_seen_update)

    @staticmethod
    def _load(
        session: Session, post_halls: set[str], device_halls: set[str], effects: StateEffects
    ) -> None:
        if post_halls:
            for post in session.scalars(_POSTS_OF_HALLS, {"halls": list(post_halls)}):
                effects.keep(post, (post.hall, post.post))
            effects.loaded.update((PostStatus, hall) for hall in post_halls)
        if device_halls:
            for device in session.scalars(_DEVICES_OF_HALLS, {"halls": list(device_halls)}):
                effects.keep(device, (device.hall, device.device))
            effects.loaded.update((DeviceStatus, hall) for hall in device_halls)

    def apply(self, session: Session, fact: Fact, now: datetime, effects: StateEffects) -> None:
        """Update state for one fact inside the caller's transaction.

        Raises:
            RegisterFailedError: The anomaly register failed on the fact.
            sqlalchemy.exc.SQLAlchemyError: The database failed.
        """
        if isinstance(fact, PresenceFact):
            if self._presence(session, fact, now, effects):
                effects.presence_halls.add(fact.hall)
            return
        self.settle(session, effects)  # what follows may read posts' cameras and sources
        if isinstance(fact, DeviceFact):
            self._device(session, fact, now, effects)
        elif isinstance(fact, QueueFact):
            self._queue(session, fact, now, effects.events)
        elif self.zones is not None and isinstance(fact, HygieneFact | OccupancyFact):
            effects.zone_alerts.extend(self._zone(session, fact, now, effects.events))
        elif self.cases is not None and isinstance(
            fact, WaitFact | TripsFact | RatingFact | TicketFact
        ):
            effects.case_alerts.extend(self._cases(session, fact, now, effects.touched))

    @staticmethod
    def settle(session: Session, effects: StateEffects) -> None:
        """Write the posts' newest state-repeating facts to their rows, in one statement
        (before the transaction commits, and before anything reads the rows).

        The rows' attributes take the written values as committed values, so the ORM has
        none of them left to flush: its unit of work, for one row per post and batch, cost
        more than the rest of the batch's repeated presence facts.
        """
        if not effects.seen:
            return
        if session.new:  # posts this transaction created: inserted before the UPDATE
            session.flush()
        dialect = session.get_bind().dialect
        statement = DriverStatement.cached("post_seen", dialect, _post_seen_update)
        to_ts = statement.converter("v_last_fact_ts")
        to_at = statement.converter("v_updated_at")
        rows = []
        for (hall, post), seen in sorted(effects.seen.items()):  # rows locked in key order
            row = effects.rows[(PostStatus, (hall, post))]
            window = seen.window if seen.window is not None else row.window
            values = (seen.camera, seen.source, window, seen.ts, seen.at)
            for name, value in zip(_SEEN_NAMES, values, strict=True):
                set_committed_value(row, name, value)
            rows.append((*values[:3], to_ts(seen.ts), to_at(seen.at), hall, post))
        statement.execute(session.connection(), rows)
        effects.seen.clear()

    def judge(self, session: Session, effects: StateEffects, now: datetime) -> None:
        """Evaluate the off-post rule for the halls whose posts the transaction changed, on
        the rows it holds (:meth:`OffPostRule.judge_batch`), last before it commits.

        The batch's own changes are written first, outside the rule: a database failure
        there fails the batch (it is retried), as it would at the commit. The rule runs in a
        savepoint per hall: a failure of the rule is logged and rolled back to it, its
        alert messages are dropped, and the facts commit without it (the rule ticker
        evaluates again), unless the failure ended the transaction itself.
        """
        if self.rule is None or not effects.presence_halls:
            return
        session.flush()
        for hall in sorted(effects.presence_halls):
            posts = {
                key[1]: row
                for (model, key), row in effects.rows.items()
                if model is PostStatus and key[0] == hall
            }
            try:
                with session.begin_nested():
                    messages = self.rule.judge_batch(session, hall, posts, now)
            except Exception:
                if not session.is_active:  # not a savepoint's failure: the batch's
                    raise
                logger.exception("off-post evaluation of %s in an ingest batch failed", hall)
            else:
                effects.alerts.extend(messages)

    @staticmethod
    def _write_seen(row: PostStatus, seen: _Seen) -> None:
        row.camera, row.source = seen.camera, seen.source
        if seen.window is not None:
            row.window = seen.window
        row.last_fact_ts, row.updated_at = seen.ts, seen.at

    def _presence(
        self, session: Session, fact: PresenceFact, now: datetime, effects: StateEffects
    ) -> bool:
        b = fact.body
        key = (fact.hall, b.post)
        row = effects.row(session, PostStatus, key)
        before: PostSnapshot | None = None
        if row is None:
            row = PostStatus(
                hall=fact.hall, post=b.post, camera=b.camera, window=b.window,
                source=fact.source, state=b.state.value, since=b.since,
                last_fact_ts=fact.ts, updated_at=now, clock_banked_s=0.0, clock_from=None,
                evidence_id=self._absence_snapshot(session, fact, now),
            )  # fmt: skip
            session.add(row)  # inserted with the batch's other new posts, in one flush
            effects.keep(row, (fact.hall, b.post))
        else:
            seen = effects.seen.get(key)
            if seen is None:
                newest, state = row.last_fact_ts, row.state
            else:  # most facts of a batch: the row's attributes are not read again
                newest, state = seen.ts, seen.state
            if fact.ts < newest:
                logger.debug("stale presence fact %s (older than state) kept as series", fact.id)
                return False
            if state == b.state:  # a StrEnum: equal to its text
                # same state (summary or repeat): ``since`` stands; the row takes the
                # newest such fact once, when the batch settles
                if seen is None:
                    seen = _Seen(fact.ts, b.camera, fact.source, b.window, now, state)
                    effects.seen[key] = seen
                else:  # updated in place, not made anew
                    seen.ts, seen.camera, seen.source, seen.at = fact.ts, b.camera, fact.source, now
                    if b.window is not None:
                        seen.window = b.window
                return False
            if seen is not None:
                self._write_seen(row, effects.seen.pop(key))
            before = PostSnapshot.of(row)
            row.camera, row.source = b.camera, fact.source
            row.window = b.window if b.window is not None else row.window
            row.last_fact_ts, row.updated_at = fact.ts, now
            row.state, row.since = b.state.value, b.since
            if row.state == PostState.OFF_POST.value:
                row.evidence_id = self._absence_snapshot(session, fact, now)
        if self.rule is not None:
            # an off-post alert opened or recorded here copies the absence's snapshot id
            # from the post's status (``OffPostRule._new_alert``), so it is cleared only
            # afterwards
            effects.alerts.extend(self.rule.on_presence_change(session, row, before, now))
        if row.state == PostState.ON_POST.value:
            row.evidence_id = None
        effects.events.append(
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
        self, session: Session, fact: DeviceFact, now: datetime, effects: StateEffects
    ) -> None:
        d = fact.body
        row = effects.row(session, DeviceStatus, (fact.hall, d.device))
        if row is None:
            row = DeviceStatus(
                hall=fact.hall, device=d.device, kind=d.device_kind.value, source=fact.source,
                state=d.state.value, since=fact.ts, reason=d.reason, last_fact_ts=fact.ts,
            )  # fmt: skip
            session.add(row)
            session.flush()
            effects.keep(row, (fact.hall, d.device))
        else:
            if fact.ts < row.last_fact_ts:
                return
            if row.kind != d.device_kind.value:  # a camera that no longer is one, or now is
                forget_hall_watch(session, fact.hall)
            row.kind, row.source, row.reason = d.device_kind.value, fact.source, d.reason
            row.last_fact_ts = fact.ts
            if row.state == d.state.value:
                return
            row.state, row.since = d.state.value, fact.ts
        if self.rule is not None and row.kind == DeviceKind.CAMERA.value:
            # only a camera's outage hides posts: a kiosk offline pauses no off-post clock
            self.rule.on_observation_change(session, fact.hall, fact.ts)
        if self.devices is not None:
            effects.device_alerts.extend(self.devices.on_device_change(session, row, now))
        effects.events.append(
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
            raise RegisterFailedError(reason) from exc

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
