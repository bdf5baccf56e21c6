"""Opening and updating anomalies from facts (``docs/cases.md`` §3), inside the fact's
ingest transaction.

- ``wait`` → ``wait_over_limit``, one per ticket leg (``wait:<ticket_id>:<leg>``);
- ``trips`` → ``trips_over_promise``, one per case: a later trip is evidence of the case's
  anomaly not yet closed (same ``case_ref``, case number, or applicant key and service);
  the key is ``trips:<case_ref>:<trips>``;
- ``rating`` 差评 → ``bad_rating``; attitude 差 (level not 差评) → ``bad_attitude``; one
  per rating (``rating:<rating_id>``).

A ``ticket`` fact (called, recalled, service started) fills in the window, staff and
department of the ticket's ``wait_over_limit`` anomaly. A second evaluation (rating
``evaluation: 2``) of a rating anomaly's case is evidence and decides an appeal.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aggregator.cases import lifecycle as lc
from aggregator.cases.models import Anomaly, AnomalyEvidence, TicketCall
from hallwatch.config.models import HallConfig
from hallwatch.contract import (
    AnomalyKind,
    AnomalyLevel,
    Attitude,
    RatingDimension,
    RatingFact,
    TicketEventType,
    TicketFact,
    TripsFact,
    WaitFact,
    new_id,
)

logger = logging.getLogger(__name__)

CALLS = frozenset(
    {TicketEventType.CALLED, TicketEventType.RECALLED, TicketEventType.SERVICE_STARTED}
)
CLOCK_SKEW = timedelta(minutes=5)
"""A call this much before a wait anomaly opened may still be its call (clock skew)."""
RATING_KINDS = (AnomalyKind.BAD_RATING.value, AnomalyKind.BAD_ATTITUDE.value)

CaseFact = WaitFact | TripsFact | RatingFact | TicketFact


@dataclass
class Outcome:
    """What a fact did: anomalies changed, and those whose alert must go out."""

    touched: list[Anomaly] = field(default_factory=list)
    alert: list[Anomaly] = field(default_factory=list)

    def add(self, anomaly: Anomaly, *, alert: bool) -> None:
        """Record a changed anomaly (once)."""
        if anomaly not in self.touched:
            self.touched.append(anomaly)
        if alert and anomaly not in self.alert:
            self.alert.append(anomaly)


def _payload(fact: CaseFact) -> dict[str, Any]:
    return fact.model_dump(mode="json", by_alias=True)


def add_evidence(
    session: Session,
    anomaly: Anomaly,
    *,
    fact_id: str | None,
    fact_kind: str,
    ts: datetime,
    payload: dict[str, Any],
) -> bool:
    """Attach evidence; False if this fact is already evidence of the anomaly."""
    if fact_id is not None:
        stmt = select(AnomalyEvidence.id).where(
            AnomalyEvidence.anomaly_id == anomaly.id, AnomalyEvidence.fact_id == fact_id
        )
        if session.scalars(stmt).first() is not None:
            return False
    session.add(
        AnomalyEvidence(
            anomaly_id=anomaly.id, fact_id=fact_id, fact_kind=fact_kind, ts=ts, payload=payload
        )
    )
    return True


def _fact_evidence(session: Session, anomaly: Anomaly, fact: CaseFact) -> bool:
    return add_evidence(
        session,
        anomaly,
        fact_id=fact.id,
        fact_kind=fact.kind.value,
        ts=fact.ts,
        payload=_payload(fact),
    )


def open_anomaly(
    session: Session,
    hall: HallConfig,
    now: datetime,
    *,
    kind: AnomalyKind,
    dedup_key: str,
    opened: datetime,
    source: str,
    actor: str = lc.SYSTEM,
    evidence: tuple[str | None, str, datetime, dict[str, Any]] | None = None,
    **columns: Any,
) -> Anomaly | None:
    """Open an anomaly at level warning, with its opening transition and evidence, and
    apply the red card rule. None if one with this ``dedup_key`` exists (idempotent)."""
    exists = select(Anomaly.id).where(Anomaly.hall == hall.hall.id, Anomaly.dedup_key == dedup_key)
    if session.scalars(exists).first() is not None:
        logger.debug("anomaly %s of hall %s already open", dedup_key, hall.hall.id)
        return None
    policy = hall.cases
    anomaly = Anomaly(
        id=new_id(),
        hall=hall.hall.id,
        dedup_key=dedup_key,
        kind=kind.value,
        state=lc.CaseState.OPEN.value,
        level=AnomalyLevel.WARNING.value,
        source=source,
        opened=opened,
        appeal_deadline=lc.deadline(hall, opened, policy.appeal_working_days),
        rectify_deadline=lc.deadline(hall, opened, policy.rectify_working_days),
        created_at=now,
        updated_at=now,
        **columns,
    )
    try:
        with session.begin_nested():
            session.add(anomaly)
    except IntegrityError:
        logger.info("anomaly %s of hall %s opened elsewhere", dedup_key, hall.hall.id)
        return None
    lc.apply(
        session,
        anomaly,
        now,
        actor=actor,
        action=lc.Action.OPENED,
        to_state=lc.CaseState.OPEN,
        to_level=AnomalyLevel.WARNING,
        opened=True,
        note=anomaly.description,
    )
    if evidence is not None:
        fact_id, fact_kind, ts, payload = evidence
        add_evidence(session, anomaly, fact_id=fact_id, fact_kind=fact_kind, ts=ts, payload=payload)
    lc.red_card_by_count(session, hall, anomaly, now)
    return anomaly


def _service_name(hall: HallConfig, code: str) -> str:
    svc = hall.queue.service(code) if hall.queue is not None else None
    return svc.name if svc is not None and svc.name else f"{code}类业务"


def on_wait(
    session: Session, hall: HallConfig, fact: WaitFact, now: datetime, out: Outcome
) -> None:
    """A ticket leg passed the wait limit: open its ``wait_over_limit`` (no window yet)."""
    b = fact.body
    desc = (
        f"{b.ticket}号在{_service_name(hall, b.service)}等候已达{b.waited_s / 60:.0f}分钟"
        f"（时限{b.limit_s / 60:.0f}分钟）"
    )
    anomaly = open_anomaly(
        session,
        hall,
        now,
        kind=AnomalyKind.WAIT_OVER_LIMIT,
        dedup_key=f"wait:{b.ticket_id}:{b.leg}",
        opened=fact.ts,
        source=fact.kind.value,
        evidence=(fact.id, fact.kind.value, fact.ts, _payload(fact)),
        service=b.service,
        case_no=b.case_no,
        applicant_key=b.applicant_key,
        ticket_id=b.ticket_id,
        leg=b.leg,
        description=desc,
        department=hall.department_of(service=b.service),
    )
    if anomaly is None:
        return
    call = session.scalars(
        select(TicketCall)
        .where(
            TicketCall.hall == hall.hall.id,
            TicketCall.ticket_id == b.ticket_id,
            TicketCall.at >= fact.ts - CLOCK_SKEW,
        )
        .order_by(TicketCall.at)
    ).first()
    if call is not None:  # the call's fact came first (out of order): use it now
        _fill_window(session, hall, anomaly, call.window, call.staff, None, now)
        add_evidence(
            session, anomaly, fact_id=call.fact_id, fact_kind="ticket", ts=call.at,
            payload=call.payload,
        )  # fmt: skip
    out.add(anomaly, alert=True)


def _fill_window(
    session: Session,
    hall: HallConfig,
    anomaly: Anomaly,
    window: str,
    staff: str | None,
    case_no: str | None,
    now: datetime,
) -> bool:
    """Set a wait anomaly's window, staff and department; True if that made it red."""
    anomaly.window, anomaly.staff = window, staff
    anomaly.department = hall.department_of(window=window, service=anomaly.service)
    if anomaly.case_no is None and case_no is not None:
        anomaly.case_no = case_no
    note = f"叫号：{window}号窗口" + (f"，工作人员{staff}" if staff else "")
    lc.apply(session, anomaly, now, actor=lc.SYSTEM, action=lc.Action.WINDOW_FILLED, note=note)
    return lc.red_card_by_count(session, hall, anomaly, now)


def on_ticket(
    session: Session, hall: HallConfig, fact: TicketFact, now: datetime, out: Outcome
) -> None:
    """A call fills in the window and staff of the ticket's wait anomaly (latest leg that
    opened before the call and has none), then re-checks the red card rule."""
    b = fact.body
    if b.event not in CALLS or b.window is None:
        return
    session.add(
        TicketCall(
            fact_id=fact.id, hall=hall.hall.id, ticket_id=b.ticket_id, at=b.at,
            window=b.window, staff=b.staff, payload=_payload(fact),
        )
    )  # fmt: skip
    stmt = (
        select(Anomaly)
        .where(
            Anomaly.hall == hall.hall.id,
            Anomaly.kind == AnomalyKind.WAIT_OVER_LIMIT.value,
            Anomaly.ticket_id == b.ticket_id,
            Anomaly.window.is_(None),
            Anomaly.opened <= b.at + CLOCK_SKEW,
        )
        .order_by(Anomaly.leg.desc())
        .with_for_update()  # row locks on PostgreSQL; SQLite serialises writes anyway
    )
    anomaly = session.scalars(stmt).first()
    if anomaly is None:
        return
    _fact_evidence(session, anomaly, fact)
    red = _fill_window(session, hall, anomaly, b.window, b.staff, b.case_no, now)
    out.add(anomaly, alert=red)


def on_trips(
    session: Session, hall: HallConfig, fact: TripsFact, now: datetime, out: Outcome
) -> None:
    """A case needs more trips than promised: add evidence to its anomaly not yet closed,
    or open one."""
    b = fact.body
    conds = [Anomaly.case_ref == b.case_ref]
    if b.case_no is not None:
        conds.append(Anomaly.case_no == b.case_no)
    if b.applicant_key is not None:
        conds.append(and_(Anomaly.applicant_key == b.applicant_key, Anomaly.service == b.service))
    stmt = (
        select(Anomaly)
        .where(
            Anomaly.hall == hall.hall.id,
            Anomaly.kind == AnomalyKind.TRIPS_OVER_PROMISE.value,
            Anomaly.state != lc.CaseState.CLOSED.value,
            or_(*conds),
        )
        .order_by(Anomaly.opened.desc())
        .with_for_update()
    )
    existing = session.scalars(stmt).first()
    if existing is not None:
        if not _fact_evidence(session, existing, fact):
            return
        if existing.case_no is None and b.case_no is not None:
            existing.case_no = b.case_no
        note = f"第{b.trips}次跑动（承诺{b.promised}次）"
        lc.apply(
            session, existing, now, actor=lc.SYSTEM, action=lc.Action.EVIDENCE_ADDED, note=note
        )
        out.add(existing, alert=False)
        return
    desc = f"{_service_name(hall, b.service)}已跑动{b.trips}次，超过承诺的{b.promised}次"
    anomaly = open_anomaly(
        session,
        hall,
        now,
        kind=AnomalyKind.TRIPS_OVER_PROMISE,
        dedup_key=f"trips:{b.case_ref}:{b.trips}",
        opened=fact.ts,
        source=fact.kind.value,
        evidence=(fact.id, fact.kind.value, fact.ts, _payload(fact)),
        service=b.service,
        case_no=b.case_no,
        case_ref=b.case_ref,
        applicant_key=b.applicant_key,
        ticket_id=b.ticket_id,
        window=b.window,
        staff=b.staff,
        department=hall.department_of(window=b.window, service=b.service),
        description=desc,
    )
    if anomaly is not None:
        out.add(anomaly, alert=True)


def attitude_bad(fact: RatingFact) -> bool:
    """服务态度差: attitude ``bad``, or the attitude dimension 不满意/非常不满意."""
    b = fact.body
    dim = b.dimensions.get(RatingDimension.ATTITUDE)
    return b.attitude is Attitude.BAD or (dim is not None and dim.is_bad)


def rating_anomaly(
    session: Session, hall: str, case_no: str | None, ticket_id: str | None
) -> Anomaly | None:
    """The latest rating anomaly of a case (same case number, else same ticket id)."""
    for column, value in ((Anomaly.case_no, case_no), (Anomaly.ticket_id, ticket_id)):
        if value is None:
            continue
        stmt = (
            select(Anomaly)
            .where(Anomaly.hall == hall, Anomaly.kind.in_(RATING_KINDS), column == value)
            .order_by(Anomaly.opened.desc())
            .with_for_update()
        )
        found = session.scalars(stmt).first()
        if found is not None:
            return found
    return None


def on_rating(
    session: Session, hall: HallConfig, fact: RatingFact, now: datetime, out: Outcome
) -> None:
    """A bad rating or bad attitude opens an anomaly; a second evaluation of a rating
    anomaly's case is its evidence (and decides an appeal)."""
    b = fact.body
    bad_attitude = attitude_bad(fact)
    if b.evaluation == 2:
        target = rating_anomaly(session, hall.hall.id, b.case_no, b.ticket_id)
        if target is not None:
            if not _fact_evidence(session, target, fact):
                return
            label = b.level.label + ("，服务态度差" if bad_attitude else "")
            if target.state == lc.CaseState.CLOSED.value:
                lc.apply(
                    session,
                    target,
                    now,
                    actor=lc.SYSTEM,
                    action=lc.Action.EVIDENCE_ADDED,
                    note=f"二次评价（已办结）：{label}",
                )
            else:
                lc.second_evaluation(
                    session,
                    hall,
                    target,
                    bad=b.level.is_bad or bad_attitude,
                    label=label,
                    now=now,
                    actor=lc.SYSTEM,
                )
            out.add(target, alert=False)
            return
    if b.level.is_bad:
        kind, desc = AnomalyKind.BAD_RATING, f"差评：{b.level.label}"
    elif bad_attitude:
        kind, desc = AnomalyKind.BAD_ATTITUDE, f"服务态度差（总体评价{b.level.label}）"
    else:
        return
    anomaly = open_anomaly(
        session,
        hall,
        now,
        kind=kind,
        dedup_key=f"rating:{b.rating_id}",
        opened=fact.ts,
        source=fact.kind.value,
        evidence=(fact.id, fact.kind.value, fact.ts, _payload(fact)),
        case_no=b.case_no,
        ticket_id=b.ticket_id,
        rating_id=b.rating_id,
        window=b.window,
        staff=b.staff,
        department=hall.department_of(window=b.window),
        description=desc,
    )
    if anomaly is not None:
        out.add(anomaly, alert=True)
