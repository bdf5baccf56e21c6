"""Ingest: validate one MQTT message, drop duplicates, store it, update state, notify.

:meth:`Ingestor.handle` is called by the MQTT worker thread for every message, in order.
It never raises for a bad message: a malformed one (not JSON, wrong schema version,
unknown kind, failed validation, topic and payload disagreeing, unknown hall, observed
before the dedup ledger's horizon) is counted and kept in the dead-letter table with the
reason, and ingest goes on. It raises only for
infrastructure failures (the database is down), so the caller can retry without
acknowledging the message.

Messages come in batches (:meth:`Ingestor.handle_batch`: what the MQTT worker found
queued, up to ``ingest_batch_max``). The facts of a batch are written to the time-series
store in one call (points are idempotent by fact id) and then share one state
transaction: their dedup ledger rows (``SeenFact``; a duplicate id fails its primary
key, atomically, across replicas) and their state updates
(:class:`aggregator.fact_state.FactState`: posts, devices, queues, zones, the 异常办件
register) commit together; live events and alerts go out after the commit, in order.
One transaction per batch instead of per fact is what makes ingest keep up with a
broker's backlog after an outage (``benchmarks/ingest.py``).

A dead letter keeps the payload as received except a snapshot's image
(``body.evidence.jpeg``, a picture of people), replaced by a marker
(:func:`strip_snapshot`).
"""

from __future__ import annotations

import bisect
import collections
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol, cast

from prometheus_client import Counter, Histogram
from sqlalchemy import Table, insert, select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, configure_mappers

from aggregator.bus import LiveBus, LiveEvent
from aggregator.cases.register import CaseRegister
from aggregator.fact_state import FactState, RegisterFailedError, StateEffects
from aggregator.rules.device_offline import DeviceOfflineRule
from aggregator.rules.off_post import OffPostRule, hall_watches
from aggregator.rules.zone_alerts import ZoneAlertRule
from aggregator.store.driver_sql import DriverStatement
from aggregator.store.state import EdgeStatusRow, SeenFact, StateStore
from aggregator.store.timeseries import TimeSeriesStore, facts_to_points
from hallwatch.config.models import HallConfig
from hallwatch.contract import (
    ContractError,
    EdgeStatus,
    Fact,
    FactKind,
    hall_of_topic,
    parse_edge_status,
    parse_fact,
    utcnow,
)
from hallwatch.memo import BoundedMemo
from hallwatch.privacy import mask_id_numbers_text

logger = logging.getLogger(__name__)

MESSAGES = Counter("hallwatch_ingest_messages", "MQTT messages ingested, by outcome.", ["outcome"])
REJECTED = Counter(
    "hallwatch_ingest_rejected", "Messages dead-lettered, by reason category.", ["reason"]
)
LATENCY = Histogram(
    "hallwatch_ingest_latency_seconds",
    "Time to ingest one message (validate, dedup, store, update state): one observation "
    "per batch, its time per message.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
BATCH = Histogram(
    "hallwatch_ingest_batch_messages",
    "Messages per ingest batch (one state transaction for a batch's facts).",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500),
)
LAG = Histogram(
    "hallwatch_fact_lag_seconds",
    "From a fact's observation time to its ingest (replays after outages show here).",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400),
)


def observe_many(histogram: Histogram, value: float, count: int) -> None:
    """``histogram.observe(value)`` repeated ``count`` times, in one step.

    The facts of one look of a camera share their time, hence their lag: a batch observes
    each distinct lag once with its count instead of once per fact. ``prometheus_client``
    has no weighted observe; this adds to the same sum and bucket that ``observe`` would
    (``tests/test_ingest_batch.py`` holds the two equal).

    >>> h = Histogram("example_lag_seconds", "Example.", buckets=(1, 5), registry=None)
    >>> observe_many(h, 2.0, 3)
    >>> [(s.name[20:], s.value) for s in h.collect()[0].samples if "created" not in s.name]
    [('bucket', 0.0), ('bucket', 3.0), ('bucket', 3.0), ('count', 3.0), ('sum', 6.0)]
    """
    if count == 1:
        histogram.observe(value)
        return
    histogram._sum.inc(value * count)
    histogram._buckets[bisect.bisect_left(histogram._upper_bounds, value)].inc(count)


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


def _count_outcomes(outcomes: list[IngestOutcome | None]) -> None:
    """Count a batch's outcomes in ``MESSAGES`` (None: ``error``, a batch that failed):
    one C-level pass per kind, not a Python step per message."""
    for outcome in (*IngestOutcome, None):
        count = outcomes.count(outcome)
        if count:
            MESSAGES.labels(outcome.value if outcome is not None else "error").inc(count)


_SEEN_FACTS = cast(Table, SeenFact.__table__)
_LEDGER_COLUMNS = ("id", "hall", "kind", "ts", "received_at")
_KIND_TEXT = {kind: kind.value for kind in FactKind}
"""Each fact kind's text (a dict lookup: an enum's ``.value`` is a Python property)."""
_IDS_PER_QUERY = 500
"""Fact ids per dedup query (well under every database's bound-parameter limit)."""


def _ledger_insert(dialect: Dialect) -> DriverStatement:
    """The dedup ledger's INSERT for ``dialect``."""
    column = _SEEN_FACTS.c
    times = {"ts": column.ts.type, "received_at": column.received_at.type}
    return DriverStatement(insert(_SEEN_FACTS), _LEDGER_COLUMNS, times, dialect)


def _ledger_rows(ledger: DriverStatement, facts: Sequence[Fact], now: datetime) -> list[Any]:
    """The ledger rows of ``facts``, received ``now``.

    A time is converted once per batch: the facts of one look of a camera (a summary of
    every post it sees) share their ``ts``.
    """
    convert = ledger.converter("ts")
    times: dict[datetime, Any] = {}
    received_at = ledger.converter("received_at")(now)
    rows: list[Any] = []
    for fact in facts:
        ts = times.get(fact.ts)
        if ts is None:
            ts = times[fact.ts] = convert(fact.ts)
        rows.append((fact.id, fact.hall, _KIND_TEXT[fact.kind], ts, received_at))
    return rows


class Incoming(Protocol):
    """What the ingestor reads of a received MQTT message (the MQTT worker hands over its
    subscriber's :class:`~aggregator.mqtt_wire.subscriber.Received` as they are)."""

    @property
    def topic(self) -> str: ...

    @property
    def payload(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Message:
    """One MQTT message as received: topic and raw payload."""

    topic: str
    payload: bytes


@dataclass(slots=True)
class _Pending:
    """A valid fact of a batch: its place in the batch, its message, the fact (not frozen:
    see :class:`~aggregator.store.points.Point`)."""

    index: int
    message: Incoming
    fact: Fact


_TOPICS_MAX = 4096
"""Topics whose names :class:`Ingestor` remembers (emptied when full)."""


@dataclass(frozen=True, slots=True)
class _TopicName:
    """What a topic names, read once per topic.

    Attributes:
        hall: The hall (None: not a HallWatch topic of five levels).
        section: ``facts``, ``edge`` (with kind ``status``) or anything else (refused).
        kind: The last level: the fact kind, or ``status``.
    """

    hall: str | None
    section: str
    kind: str


def _name_of_topic(topic: str) -> _TopicName:
    """The hall, section and kind of a topic."""
    parts = topic.split("/")
    hall = hall_of_topic(topic)
    if hall is None or len(parts) != 5:
        return _TopicName(None, "", "")
    return _TopicName(hall, parts[3], parts[4])


def _too_old(fact: Fact, oldest: datetime) -> _RejectError:
    """The refusal of a fact observed before ``oldest`` (the dedup ledger's horizon;
    category ``too_old``)."""
    return _RejectError(
        "too_old",
        f"fact {fact.id} observed at {fact.ts.isoformat()}, before the dedup ledger's "
        f"horizon {oldest.isoformat()} (HALLWATCH_LEDGER_RETENTION_DAYS, or how far the "
        "ledger was purged): not applied",
    )


HORIZON_READ_EVERY_S = 60.0
"""How often an ingestor reads how far the ledger was purged (another replica, with a
shorter retention, may have purged it further than this one's retention reaches)."""

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
            evaluated in each batch that changed a post, before it commits (None: no
            rules).
        cases: The 异常办件 register, told about ticket, wait, trips and rating facts
            (None: those facts are only stored as series).
        devices: The device-offline rule, told about device state changes (None: no
            device alerts).
        zones: The zone rule, given hygiene and occupancy facts (None: those facts are
            only stored as series).
        clock: Source of "now" (tests pass a fake one).
        max_age: How long the dedup ledger remembers a fact, counted from its time
            (``ledger_retention_days``; None: for ever, and the purge's horizon is not
            read). A fact observed longer ago, or before how far the ledger was purged, is
            dead-lettered as ``too_old``: its ledger row may be gone, so a redelivery of
            it could be applied twice.
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
        max_age: timedelta | None = None,
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
        self.max_age = max_age
        self.fact_state = FactState(rule=rule, cases=cases, devices=devices, zones=zones)
        self._topics = BoundedMemo(_name_of_topic, _TOPICS_MAX)
        self._forgotten_before: datetime | None = None
        self._forgotten_read_at: float | None = None
        self._warm = False
        self.newest_fact_ts: datetime | None = None
        """The newest time of a fact this ingestor stored, at most the time it was stored
        (None: none yet): the edges' clocks, which the ledger's purge checks the
        aggregator's own against."""

    def warm_up(self) -> bool:
        """Do once, before the first batch, what that batch would otherwise do first:
        configure the ORM's mappers, compile the hot statements, and run the first reads
        of the configured halls (ledger horizon, posts, devices, what the off-post rule
        reads) in a read-only transaction. After a restart the first batch is a
        backlog's: unprepared, it took ~90 ms more than the next (~45 ms configuring the
        mappers, ~40 ms compiling statements).

        Returns:
            Whether it is done (False: the database failed, logged; the first batch then
            does the same work, and is retried as any batch).
        """
        if self._warm:
            return True
        try:
            configure_mappers()
            self._oldest_accepted()
            halls = list(self.halls)
            with self.state.read_session() as session:  # not SQLite's write lock
                dialect = session.get_bind().dialect
                DriverStatement.cached("ledger", dialect, _ledger_insert)
                self.fact_state.warm_up(session, halls)
                if self.rule is not None:
                    hall_watches(session, halls)
        except Exception:
            logger.exception("warming up ingest failed; the first batch does it")
            return False
        self._warm = True
        return True

    def handle(self, topic: str, payload: bytes) -> IngestOutcome:
        """Ingest one message (a batch of one: see :meth:`handle_batch`).

        Args:
            topic: The MQTT topic it arrived on.
            payload: Its raw payload.

        Returns:
            stored, duplicate or dead_lettered.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: The database failed (the message is neither
                stored nor dead-lettered; retry it).
        """
        return self.handle_batch([Message(topic, payload)])[0]

    def handle_batch(self, messages: Sequence[Incoming]) -> list[IngestOutcome]:
        """Ingest messages in order, consecutive facts in one state transaction.

        Each message is validated on its own (a malformed one is dead-lettered and the
        others go on). The facts between two edge-status messages are deduplicated with one
        query, their points written to the time-series store in one call (before the state
        transaction, which the store's backpressure then cannot hold open; points are
        idempotent, so a retried batch writes nothing twice), and their state updates
        committed together with the off-post rule's evaluation of each hall whose posts
        changed; live events and alerts go out after the commit, in order.

        If one fact of a batch cannot be applied (the anomaly register fails on it, or
        another replica stored one of its facts in the meantime) the batch is rolled back
        and its facts applied one by one, so the others are not held back by it.

        Args:
            messages: Topic and payload of each message, in arrival order.

        Returns:
            The outcome of each message, in order.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: The database failed (nothing of the batch is
                acknowledged-safe; retry it — what was stored is dropped as duplicate).
        """
        started = time.perf_counter()
        outcomes: list[IngestOutcome | None] = [None] * len(messages)
        facts: list[_Pending] = []
        rejected: list[tuple[int, Incoming, _RejectError]] = []
        try:
            oldest = self._oldest_accepted()
            for i, message in enumerate(messages):
                try:
                    routed = self._route(message.topic, message.payload)
                    if (
                        oldest is not None
                        and not isinstance(routed, EdgeStatus)
                        and routed.ts < oldest
                    ):
                        raise _too_old(routed, oldest)
                except _RejectError as rej:
                    rejected.append((i, message, rej))
                    continue
                if isinstance(routed, EdgeStatus):
                    self._facts(facts, outcomes)  # the facts that came before it first
                    facts = []
                    outcomes[i] = self._edge_status(routed)
                else:
                    facts.append(_Pending(i, message, routed))
            self._facts(facts, outcomes)
            # last: a retry after a database failure above dead-letters nothing twice
            for i, message, rejection in rejected:
                self.dead_letter(
                    message.topic, message.payload, rejection.reason, rejection.category
                )
                outcomes[i] = IngestOutcome.DEAD_LETTERED
        finally:
            LATENCY.observe((time.perf_counter() - started) / max(1, len(messages)))
            _count_outcomes(outcomes)
            BATCH.observe(len(messages))
        return [o if o is not None else IngestOutcome.DEAD_LETTERED for o in outcomes]

    def _oldest_accepted(self) -> datetime | None:
        """The oldest fact time accepted now: ``max_age`` ago, or how far the ledger was
        purged (:meth:`StateStore.ledger_horizon`, read at most every
        :data:`HORIZON_READ_EVERY_S`) if that is later; None without ``max_age``."""
        if self.max_age is None:
            return None
        oldest = self.clock() - self.max_age
        read_at = time.monotonic()
        if self._forgotten_read_at is None or read_at - self._forgotten_read_at >= (
            HORIZON_READ_EVERY_S
        ):
            self._forgotten_before = self.state.ledger_horizon()
            self._forgotten_read_at = read_at
        forgotten = self._forgotten_before
        return oldest if forgotten is None or forgotten <= oldest else forgotten

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

    def _route(self, topic: str, payload: bytes) -> Fact | EdgeStatus:
        """The fact or edge status a message carries.

        Raises:
            _RejectError: The message is malformed or not for a configured hall.
        """
        named = self._topics(topic)
        hall = named.hall
        if hall is None:
            raise _RejectError("unknown_topic", f"not a fact or status topic: {topic}")
        if hall not in self.halls:
            raise _RejectError("unknown_hall", f"unknown hall {hall!r} (not configured)")
        if named.section == "edge" and named.kind == "status":
            try:
                status = parse_edge_status(payload)
            except ContractError as exc:
                raise _RejectError("invalid", f"invalid edge status: {exc}") from exc
            if status.hall != hall:
                raise _RejectError(
                    "topic_mismatch", f"payload hall {status.hall!r} != topic hall {hall!r}"
                )
            return status
        if named.section != "facts":
            raise _RejectError("unknown_topic", f"not a fact or status topic: {topic}")
        try:
            fact = parse_fact(payload)
        except ContractError as exc:
            raise _RejectError("invalid", f"invalid fact: {exc}") from exc
        if not _REQUIRED_ON_WIRE.issubset(fact.model_fields_set):
            missing = _REQUIRED_ON_WIRE - fact.model_fields_set
            # The contract fills these with defaults (for senders); a receiver must
            # not: a made-up id defeats dedup, a made-up ts misdates the fact.
            names = ", ".join(sorted(m.replace("schema_version", "schema") for m in missing))
            raise _RejectError("invalid", f"invalid fact: missing {names}")
        if fact.hall != hall:
            raise _RejectError(
                "topic_mismatch", f"payload hall {fact.hall!r} != topic hall {hall!r}"
            )
        if fact.kind != named.kind:  # a StrEnum: equal to its text
            raise _RejectError(
                "topic_mismatch",
                f"payload kind {fact.kind.value!r} != topic kind {named.kind!r}",
            )
        return fact

    # -- facts -----------------------------------------------------------------------------

    def _facts(self, facts: Sequence[_Pending], outcomes: list[IngestOutcome | None]) -> None:
        """Store ``facts`` in one transaction; fill in their ``outcomes``."""
        if not facts:
            return
        now = self.clock()
        unique: list[_Pending] = []
        ids: set[str] = set()
        for pending in facts:  # twice in this batch
            if pending.fact.id in ids:
                logger.debug("duplicate fact %s dropped", pending.fact.id)
                outcomes[pending.index] = IngestOutcome.DUPLICATE
            else:
                ids.add(pending.fact.id)
                unique.append(pending)
        # Before the transaction: the store's backpressure cannot hold it open. A fact
        # stored before (a redelivery) is written again: points are idempotent.
        self.series.write([point for p in unique for point in facts_to_points(p.fact)])
        effects = StateEffects()
        try:
            with self.state.session() as session:
                fresh = self._claim(session, unique, now, outcomes)
                self.fact_state.preload(session, [p.fact for p in fresh], effects)
                for pending in fresh:
                    self.fact_state.apply(session, pending.fact, now, effects)
                self.fact_state.settle(session, effects)
                self.fact_state.judge(session, effects, now)
        except (_DuplicateError, RegisterFailedError) as exc:
            for pending in facts:
                outcomes[pending.index] = None
            if len(facts) > 1:
                logger.info("batch of %d facts applied one by one: %s", len(facts), exc)
                for pending in facts:
                    self._facts([pending], outcomes)
                return
            only = facts[0]
            if isinstance(exc, _DuplicateError):
                logger.debug("duplicate fact %s dropped", only.fact.id)
                outcomes[only.index] = IngestOutcome.DUPLICATE
            else:
                logger.error("the anomaly register failed on fact %s; dead-lettered", only.fact.id)
                reason = f"the anomaly register failed: {exc}"
                self.dead_letter(only.message.topic, only.message.payload, reason, "register_error")
                outcomes[only.index] = IngestOutcome.DEAD_LETTERED
            return
        except BaseException:
            for pending in facts:
                outcomes[pending.index] = None
            raise
        for pending in fresh:
            outcomes[pending.index] = IngestOutcome.STORED
        lags = collections.Counter(p.fact.ts for p in fresh)
        for ts, count in lags.items():
            observe_many(LAG, max(0.0, (now - ts).total_seconds()), count)
        if lags:
            newest = min(max(lags), now)  # an edge whose clock is ahead proves nothing
            if self.newest_fact_ts is None or newest > self.newest_fact_ts:
                self.newest_fact_ts = newest
        self._after_commit(effects)

    @staticmethod
    def _known_ids(session: Session, ids: Sequence[str]) -> set[str]:
        known: set[str] = set()
        for start in range(0, len(ids), _IDS_PER_QUERY):
            chunk = ids[start : start + _IDS_PER_QUERY]
            known.update(session.scalars(select(SeenFact.id).where(SeenFact.id.in_(chunk))))
        return known

    def _claim(
        self,
        session: Session,
        facts: Sequence[_Pending],
        now: datetime,
        outcomes: list[IngestOutcome | None],
    ) -> list[_Pending]:
        """Record ``facts`` in the dedup ledger; those it already held are duplicates.

        Optimistic: the batch's rows are inserted at once; only when the ledger's primary
        key refuses one (a redelivery) are the known ids looked up and the rest inserted.

        Returns:
            The facts not seen before (their outcomes are left to the caller).

        Raises:
            _DuplicateError: Another replica recorded one of them between the lookup and
                the second insert (the batch is then applied one by one).
        """
        try:
            self._record(session, facts, now)
            return list(facts)
        except IntegrityError:
            pass
        known = self._known_ids(session, [p.fact.id for p in facts])
        fresh = []
        for pending in facts:
            if pending.fact.id in known:
                logger.debug("duplicate fact %s dropped", pending.fact.id)
                outcomes[pending.index] = IngestOutcome.DUPLICATE
            else:
                fresh.append(pending)
        if fresh:
            try:
                self._record(session, fresh, now)
            except IntegrityError as exc:
                raise _DuplicateError("a fact of the batch was stored meanwhile") from exc
        return fresh

    @staticmethod
    def _record(session: Session, facts: Sequence[_Pending], now: datetime) -> None:
        """Insert the ledger rows of ``facts`` in a savepoint (all or none).

        Raises:
            IntegrityError: The ledger holds one of them already.
        """
        ledger = DriverStatement.cached("ledger", session.get_bind().dialect, _ledger_insert)
        with session.begin_nested():  # the savepoint is taken by the next connection()
            ledger.execute(session.connection(), _ledger_rows(ledger, [p.fact for p in facts], now))

    def _after_commit(self, effects: StateEffects) -> None:
        """Live events and alerts of a committed batch."""
        if self.bus is not None:
            for event in effects.events:
                self.bus.publish(event)
        if effects.alerts and self.rule is not None:
            self.rule.publish(effects.alerts)
        if effects.device_alerts and self.devices is not None:
            self.devices.publish(effects.device_alerts)
        if effects.zone_alerts and self.zones is not None:
            self.zones.publish(effects.zone_alerts)
        if self.cases is not None and (effects.touched or effects.case_alerts):
            try:
                self.cases.after_commit(effects.touched, effects.case_alerts)
            except Exception:  # the facts and their anomalies are stored
                logger.exception("publishing anomalies failed")

    def _edge_status(self, status: EdgeStatus) -> IngestOutcome:
        hall = status.hall
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
