"""The 异常办件 register: :class:`CaseRegister`, the one entry point for the ingestor,
the escalation ticker and the HTTP API.

- :meth:`CaseRegister.on_fact` runs inside a fact's ingest transaction and returns the
  alerts to publish after commit (:meth:`CaseRegister.after_commit`).
- Officers' actions (:meth:`~CaseRegister.open_manual`, :meth:`~CaseRegister.appeal`,
  :meth:`~CaseRegister.second_evaluation`, :meth:`~CaseRegister.decide`,
  :meth:`~CaseRegister.rectify`, :meth:`~CaseRegister.close`) each run in their own
  transaction and publish after it commits.
- :meth:`CaseRegister.escalate` is called by the rule ticker: red card past the
  rectification deadline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aggregator.bus import LiveBus, LiveEvent
from aggregator.cases import from_facts as ff
from aggregator.cases import lifecycle as lc
from aggregator.cases.models import Anomaly, AnomalyEvidence, AnomalyTransition, QueueStatus
from aggregator.cases.notify import CaseNotifier, alert_of
from aggregator.store.state import StateStore
from hallwatch.config.models import HallConfig
from hallwatch.contract import (
    AlertMessage,
    AnomalyKind,
    AnomalyLevel,
    Attitude,
    RatingFact,
    RatingLevel,
    TicketFact,
    TripsFact,
    WaitFact,
    new_id,
    utcnow,
)

logger = logging.getLogger(__name__)


class InvalidEntryError(lc.CaseError):
    """A manual entry names an unknown window or department, or a future time (422)."""


@dataclass(frozen=True, slots=True)
class ManualEntry:
    """An officer's entry of an anomaly (complaint, inspection, instruction)."""

    source: lc.ManualSource
    description: str
    window: str | None = None
    department: str | None = None
    staff: str | None = None
    case_no: str | None = None
    service: str | None = None
    opened: datetime | None = None


@dataclass(frozen=True, slots=True)
class AnomalyFilter:
    """Filters of :meth:`CaseRegister.list_anomalies`; ``since <= opened < until``."""

    kind: str | None = None
    state: str | None = None
    level: str | None = None
    window: str | None = None
    department: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(slots=True)
class AnomalyDetail:
    """An anomaly with its evidence and transitions (oldest first)."""

    anomaly: Anomaly
    evidence: list[AnomalyEvidence]
    transitions: list[AnomalyTransition]


def anomaly_event(anomaly: Anomaly) -> LiveEvent:
    """The live-bus ``anomaly`` event of an anomaly's current state."""
    return LiveEvent(
        "anomaly",
        anomaly.hall,
        {
            "id": anomaly.id,
            "kind": anomaly.kind,
            "state": anomaly.state,
            "level": anomaly.level,
            "window": anomaly.window,
            "department": anomaly.department,
            "staff": anomaly.staff,
            "service": anomaly.service,
            "case_no": anomaly.case_no,
            "description": anomaly.description,
            "opened": anomaly.opened.isoformat(),
            "rectify_deadline": (
                anomaly.rectify_deadline.isoformat() if anomaly.rectify_deadline else None
            ),
        },
    )


class CaseRegister:
    """Opens, changes and escalates anomalies; every change is a transition row.

    Args:
        state: The state database.
        halls: Hall configurations by id (calendar, case policy, windows, departments).
        notifier: Publishes alerts (and SMS) after commit; None: none.
        bus: Live bus for ``anomaly`` events after commit; None: none.
        clock: Source of "now" for officers' actions.
    """

    def __init__(
        self,
        state: StateStore,
        halls: Mapping[str, HallConfig],
        notifier: CaseNotifier | None = None,
        *,
        bus: LiveBus | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.state = state
        self.halls = halls
        self.notifier = notifier
        self.bus = bus
        self.clock = clock

    # -- facts (inside the ingest transaction) ---------------------------------------------

    def on_fact(
        self,
        session: Session,
        fact: WaitFact | TripsFact | RatingFact | TicketFact,
        now: datetime,
        touched: list[Anomaly] | None = None,
    ) -> list[AlertMessage]:
        """Open or update anomalies from a fact, in the fact's transaction.

        Args:
            session: The ingest transaction.
            fact: A wait, trips, rating or ticket fact.
            now: Ingest time.
            touched: If given, receives every anomaly the fact changed (for live events).

        Returns:
            Alerts to publish once the transaction commits (opened; turned red).
        """
        hall = self.halls.get(fact.hall)
        if hall is None:
            return []
        out = ff.Outcome()
        if isinstance(fact, WaitFact):
            ff.on_wait(session, hall, fact, now, out)
        elif isinstance(fact, TicketFact):
            ff.on_ticket(session, hall, fact, now, out)
        elif isinstance(fact, TripsFact):
            ff.on_trips(session, hall, fact, now, out)
        else:
            ff.on_rating(session, hall, fact, now, out)
        if touched is not None:
            touched.extend(out.touched)
        return [alert_of(a, hall) for a in out.alert]

    def after_commit(self, touched: Sequence[Anomaly], alerts: Sequence[AlertMessage]) -> None:
        """Publish live ``anomaly`` events and alerts of a committed transaction."""
        if self.bus is not None:
            for anomaly in touched:
                self.bus.publish(anomaly_event(anomaly))
        if self.notifier is not None and alerts:
            self.notifier.publish(alerts)

    # -- officers' actions (own transactions) ----------------------------------------------

    def open_manual(
        self, hall: str, entry: ManualEntry, *, actor: str, now: datetime | None = None
    ) -> Anomaly:
        """Register an anomaly entered by an officer (kind ``manual``).

        Raises:
            AnomalyNotFoundError: Unknown hall.
            InvalidEntryError: Unknown window or department, or ``opened`` in the future.
        """
        config = self._hall(hall)
        now = now or self.clock()
        opened = entry.opened or now
        if opened > now:
            raise InvalidEntryError("opened must not be in the future")
        if entry.window is not None and config.windows and config.window(entry.window) is None:
            raise InvalidEntryError(f"unknown window {entry.window!r}")
        departments = {d.id for d in config.departments}
        if entry.department is not None and departments and entry.department not in departments:
            raise InvalidEntryError(f"unknown department {entry.department!r}")
        department = entry.department or config.department_of(entry.window, entry.service)
        with self._tx() as (session, touched, alerts):
            anomaly = ff.open_anomaly(
                session,
                config,
                now,
                kind=AnomalyKind.MANUAL,
                dedup_key=f"manual:{new_id()}",
                opened=opened,
                source=entry.source.value,
                actor=actor,
                evidence=(
                    None,
                    "manual",
                    now,
                    {
                        "source": entry.source.value,
                        "description": entry.description,
                        "actor": actor,
                    },
                ),
                description=entry.description,
                window=entry.window,
                department=department,
                staff=entry.staff,
                case_no=entry.case_no,
                service=entry.service,
            )
            assert anomaly is not None  # a fresh dedup key
            touched.append(anomaly)
            alerts.append(alert_of(anomaly, config))
        return anomaly

    def appeal(
        self, hall: str, anomaly_id: str, *, actor: str, note: str = "", now: datetime | None = None
    ) -> Anomaly:
        """申诉.

        Raises:
            AnomalyNotFoundError: No such anomaly in the hall.
            TransitionError: Not open.
            DeadlineError: Past the appeal deadline.
        """
        return self._act(
            hall, anomaly_id, now, lambda s, c, a, t: lc.appeal(s, a, t, actor=actor, note=note)
        )

    def second_evaluation(
        self,
        hall: str,
        anomaly_id: str,
        *,
        level: RatingLevel,
        attitude: Attitude | None = None,
        actor: str,
        note: str = "",
        now: datetime | None = None,
    ) -> Anomaly:
        """二次评价 entered through the API; decides an appeal in progress.

        Raises:
            AnomalyNotFoundError: No such anomaly in the hall.
            TransitionError: Closed.
        """
        bad = level.is_bad or attitude is Attitude.BAD
        label = level.label + ("，服务态度差" if attitude is Attitude.BAD else "")

        def act(s: Session, c: HallConfig, a: Anomaly, t: datetime) -> None:
            lc.second_evaluation(s, c, a, bad=bad, label=label, now=t, actor=actor, note=note)
            ff.add_evidence(
                s,
                a,
                fact_id=None,
                fact_kind="second_evaluation",
                ts=t,
                payload={"level": level.value, "attitude": attitude, "actor": actor, "note": note},
            )

        return self._act(hall, anomaly_id, now, act)

    def decide(
        self,
        hall: str,
        anomaly_id: str,
        decision: lc.Decision,
        *,
        actor: str,
        note: str = "",
        now: datetime | None = None,
    ) -> Anomaly:
        """A reviewer's decision of an appeal.

        Raises:
            AnomalyNotFoundError: No such anomaly in the hall.
            TransitionError: Not appealed.
        """
        return self._act(
            hall,
            anomaly_id,
            now,
            lambda s, c, a, t: lc.decide(s, c, a, decision, t, actor=actor, note=note),
        )

    def rectify(
        self, hall: str, anomaly_id: str, *, actor: str, note: str = "", now: datetime | None = None
    ) -> Anomaly:
        """整改 done.

        Raises:
            AnomalyNotFoundError: No such anomaly in the hall.
            TransitionError: Not open or upheld.
        """
        return self._act(
            hall, anomaly_id, now, lambda s, c, a, t: lc.rectify(s, a, t, actor=actor, note=note)
        )

    def close(
        self, hall: str, anomaly_id: str, *, actor: str, note: str = "", now: datetime | None = None
    ) -> Anomaly:
        """办结; publishes the resolved alert.

        Raises:
            AnomalyNotFoundError: No such anomaly in the hall.
            TransitionError: Neither rectified nor overturned.
        """
        return self._act(
            hall,
            anomaly_id,
            now,
            lambda s, c, a, t: lc.close(s, a, t, actor=actor, note=note),
            alert=True,
        )

    # -- escalation ticker -----------------------------------------------------------------

    def escalate(self, now: datetime, *, hall: str | None = None) -> list[AlertMessage]:
        """Red card for anomalies still open or upheld past their rectification deadline.

        Returns:
            The red alerts (also published after commit).
        """
        halls = [hall] if hall is not None else list(self.halls)
        with self._tx() as (session, touched, alerts):
            stmt = (
                select(Anomaly)
                .where(
                    Anomaly.hall.in_(halls),
                    Anomaly.state.in_(lc.ESCALATES_FROM),
                    Anomaly.level == AnomalyLevel.WARNING.value,
                    Anomaly.rectify_deadline.is_not(None),
                    Anomaly.rectify_deadline <= now,
                )
                .with_for_update(skip_locked=True)
            )
            for anomaly in session.scalars(stmt):
                config = self.halls[anomaly.hall]
                assert anomaly.rectify_deadline is not None
                due = anomaly.rectify_deadline.astimezone(config.tzinfo)
                lc.apply(
                    session,
                    anomaly,
                    now,
                    actor=lc.SYSTEM,
                    action=lc.Action.ESCALATED,
                    to_level=AnomalyLevel.RED,
                    note=f"红牌：逾期未整改（整改期限{due:%Y-%m-%d %H:%M}）",
                )
                touched.append(anomaly)
                alerts.append(alert_of(anomaly, config))
        return list(alerts)

    # -- reads -----------------------------------------------------------------------------

    def get(self, hall: str, anomaly_id: str) -> AnomalyDetail:
        """One anomaly with its evidence and transitions.

        Raises:
            AnomalyNotFoundError: No such anomaly in the hall.
        """
        with self.state.read_session() as session:
            anomaly = self._load(session, hall, anomaly_id)
            evidence = session.scalars(
                select(AnomalyEvidence)
                .where(AnomalyEvidence.anomaly_id == anomaly_id)
                .order_by(AnomalyEvidence.id)
            ).all()
            transitions = session.scalars(
                select(AnomalyTransition)
                .where(AnomalyTransition.anomaly_id == anomaly_id)
                .order_by(AnomalyTransition.id)
            ).all()
            return AnomalyDetail(anomaly, list(evidence), list(transitions))

    def list_anomalies(
        self, hall: str, filters: AnomalyFilter | None = None, *, limit: int = 50, offset: int = 0
    ) -> tuple[list[Anomaly], int]:
        """A hall's anomalies matching the filters, newest (by ``opened``) first, and the
        total count."""
        f = filters or AnomalyFilter()
        conds: list[Any] = [Anomaly.hall == hall]
        for column, value in (
            (Anomaly.kind, f.kind),
            (Anomaly.state, f.state),
            (Anomaly.level, f.level),
            (Anomaly.window, f.window),
            (Anomaly.department, f.department),
        ):
            if value is not None:
                conds.append(column == value)
        if f.since is not None:
            conds.append(Anomaly.opened >= f.since)
        if f.until is not None:
            conds.append(Anomaly.opened < f.until)
        with self.state.read_session() as session:
            total = session.scalar(select(func.count()).select_from(Anomaly).where(*conds)) or 0
            stmt = (
                select(Anomaly)
                .where(*conds)
                .order_by(Anomaly.opened.desc(), Anomaly.id.desc())
                .limit(limit)
                .offset(offset)
            )
            return list(session.scalars(stmt)), int(total)

    def queue(self, hall: str) -> list[QueueStatus]:
        """The current queue of each service of a hall, by service code."""
        with self.state.read_session() as session:
            stmt = select(QueueStatus).where(QueueStatus.hall == hall).order_by(QueueStatus.service)
            return list(session.scalars(stmt))

    # -- helpers ---------------------------------------------------------------------------

    def _hall(self, hall: str) -> HallConfig:
        config = self.halls.get(hall)
        if config is None:
            raise lc.AnomalyNotFoundError(f"unknown hall {hall!r}")
        return config

    @staticmethod
    def _load(session: Session, hall: str, anomaly_id: str) -> Anomaly:
        # Row lock on PostgreSQL (no-op on SQLite, whose writes are serialised): an
        # officer's decision and a second-evaluation fact cannot both pass the check.
        anomaly = session.get(Anomaly, anomaly_id, with_for_update=True)
        if anomaly is None or anomaly.hall != hall:
            raise lc.AnomalyNotFoundError(f"unknown anomaly {anomaly_id!r}")
        return anomaly

    @contextmanager
    def _tx(self) -> Iterator[tuple[Session, list[Anomaly], list[AlertMessage]]]:
        touched: list[Anomaly] = []
        alerts: list[AlertMessage] = []
        with self.state.session() as session:
            yield session, touched, alerts
        self.after_commit(touched, alerts)

    def _act(
        self,
        hall: str,
        anomaly_id: str,
        now: datetime | None,
        action: Callable[[Session, HallConfig, Anomaly, datetime], None],
        *,
        alert: bool = False,
    ) -> Anomaly:
        config = self._hall(hall)
        now = now or self.clock()
        with self._tx() as (session, touched, alerts):
            anomaly = self._load(session, hall, anomaly_id)
            action(session, config, anomaly, now)
            touched.append(anomaly)
            if alert:
                alerts.append(alert_of(anomaly, config))
        return anomaly
