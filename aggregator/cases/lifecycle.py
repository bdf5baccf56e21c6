"""The lifecycle of an anomaly: states, allowed actions, deadlines, transition rows.

``docs/cases.md`` §4–5::

    open ──appeal──▶ appealed ──decision──▶ upheld ──rectify──▶ rectified ──close──▶ closed
      │                          └─────────▶ overturned ──close──▶ closed
      └──rectify──▶ rectified

Deadlines are "the end of the N-th working day after the day it opened" on the hall's
:class:`~hallwatch.workdays.WorkCalendar`: hall-local midnight after that day, stored UTC.
Every change goes through :func:`apply`, which writes an :class:`AnomalyTransition`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aggregator.cases.models import Anomaly, AnomalyTransition
from hallwatch.config.models import HallConfig
from hallwatch.contract import AnomalyLevel

logger = logging.getLogger(__name__)

SYSTEM = "system"
"""The actor of rule-made changes."""


class CaseState(StrEnum):
    """States of an anomaly."""

    OPEN = "open"
    APPEALED = "appealed"
    UPHELD = "upheld"
    OVERTURNED = "overturned"
    RECTIFIED = "rectified"
    CLOSED = "closed"


class Decision(StrEnum):
    """Outcome of an appeal."""

    UPHELD = "upheld"
    OVERTURNED = "overturned"


class Action(StrEnum):
    """What a transition row records."""

    OPENED = "opened"
    APPEAL = "appeal"
    SECOND_EVALUATION = "second_evaluation"
    DECISION = "decision"
    RECTIFY = "rectify"
    CLOSE = "close"
    ESCALATED = "escalated"
    WINDOW_FILLED = "window_filled"
    EVIDENCE_ADDED = "evidence_added"


class ManualSource(StrEnum):
    """Where a manually entered anomaly came from."""

    COMPLAINT_PHONE = "complaint_phone"
    COMPLAINT_WEB = "complaint_web"
    COMPLAINT_SMS = "complaint_sms"
    COMPLAINT_LETTER = "complaint_letter"
    COMPLAINT_VISIT = "complaint_visit"
    INSPECTION = "inspection"
    INSTRUCTION = "instruction"
    OTHER = "other"


ALLOWED_FROM: dict[Action, frozenset[CaseState]] = {
    Action.APPEAL: frozenset({CaseState.OPEN}),
    Action.DECISION: frozenset({CaseState.APPEALED}),
    Action.RECTIFY: frozenset({CaseState.OPEN, CaseState.UPHELD}),
    Action.CLOSE: frozenset({CaseState.RECTIFIED, CaseState.OVERTURNED}),
    Action.SECOND_EVALUATION: frozenset(set(CaseState) - {CaseState.CLOSED}),
}
"""States an officer's action is allowed from."""

ESCALATES_FROM = frozenset({CaseState.OPEN.value, CaseState.UPHELD.value})
"""States in which a passed rectification deadline makes a red card."""


class CaseError(Exception):
    """A request the register refuses; ``str()`` is a message for the caller."""


class AnomalyNotFoundError(CaseError):
    """No such anomaly in this hall."""


class TransitionError(CaseError):
    """The action is not allowed in the anomaly's state (HTTP 409)."""


class DeadlineError(CaseError):
    """The action came after its deadline, e.g. an appeal (HTTP 422)."""


def check_allowed(anomaly: Anomaly, action: Action) -> None:
    """Raise :class:`TransitionError` unless ``action`` is allowed in the current state."""
    allowed = ALLOWED_FROM[action]
    if CaseState(anomaly.state) not in allowed:
        names = ", ".join(sorted(s.value for s in allowed))
        raise TransitionError(
            f"cannot {action.value} anomaly {anomaly.id}: it is {anomaly.state} "
            f"(allowed from: {names})"
        )


def deadline(hall: HallConfig, start: datetime, working_days: int) -> datetime:
    """The end of the ``working_days``-th working day after ``start``'s local day.

    Args:
        hall: The hall (timezone and working-day calendar).
        start: When the clock starts (aware).
        working_days: N.

    Returns:
        Hall-local midnight after that working day, in UTC.
    """
    tz = hall.tzinfo
    day = start.astimezone(tz).date()
    last = hall.service_hours.calendar().add_working_days(day, working_days)
    end_local = datetime.combine(last + timedelta(days=1), time(0), tzinfo=tz)
    return end_local.astimezone(UTC)


def apply(
    session: Session,
    anomaly: Anomaly,
    now: datetime,
    *,
    actor: str,
    action: Action,
    note: str = "",
    to_state: CaseState | None = None,
    to_level: AnomalyLevel | None = None,
    opened: bool = False,
) -> AnomalyTransition:
    """Change an anomaly's state and/or level and record the transition row.

    Args:
        session: The open transaction.
        anomaly: The anomaly (already in the session).
        now: Time of the change.
        actor: Who made it (``system`` for rules).
        action: What happened.
        note: Free text (reason, officer's note).
        to_state: New state (None: unchanged).
        to_level: New level (None: unchanged).
        opened: The anomaly was just created (``from_*`` are recorded as None).

    Returns:
        The transition row (added to the session).
    """
    from_state = None if opened else anomaly.state
    from_level = None if opened else anomaly.level
    if to_state is not None:
        anomaly.state = to_state.value
    if to_level is not None:
        if to_level is AnomalyLevel.RED and anomaly.level != AnomalyLevel.RED.value:
            anomaly.red_at = now
        anomaly.level = to_level.value
    anomaly.updated_at = now
    row = AnomalyTransition(
        anomaly_id=anomaly.id,
        ts=now,
        actor=actor,
        action=action.value,
        from_state=from_state,
        to_state=anomaly.state,
        from_level=from_level,
        to_level=anomaly.level,
        note=note[:4000],
    )
    session.add(row)
    logger.info(
        "anomaly %s: %s by %s (%s/%s → %s/%s)",
        anomaly.id,
        action.value,
        actor,
        from_state,
        from_level,
        anomaly.state,
        anomaly.level,
    )
    return row


def window_count(session: Session, hall: HallConfig, anomaly: Anomaly) -> int:
    """Anomalies at ``anomaly``'s window (itself included, overturned ones excepted)
    opened within ``cases.red_card.period_days`` before it opened, or after."""
    if anomaly.window is None:
        return 0
    since = anomaly.opened - timedelta(days=hall.cases.red_card.period_days)
    stmt = (
        select(func.count())
        .select_from(Anomaly)
        .where(
            Anomaly.hall == anomaly.hall,
            Anomaly.window == anomaly.window,
            Anomaly.opened > since,
            (Anomaly.decision.is_(None)) | (Anomaly.decision != Decision.OVERTURNED.value),
            Anomaly.state != CaseState.OVERTURNED.value,
        )
    )
    return int(session.scalar(stmt) or 0)


def red_card_by_count(session: Session, hall: HallConfig, anomaly: Anomaly, now: datetime) -> bool:
    """Turn ``anomaly`` red if its window has too many anomalies (§5).

    Call after it opened with a window or got one (flushed). Returns True if it turned red.
    """
    if anomaly.level == AnomalyLevel.RED.value or anomaly.window is None:
        return False
    if CaseState(anomaly.state) in (CaseState.OVERTURNED, CaseState.CLOSED):
        return False
    session.flush()
    count = window_count(session, hall, anomaly)
    rule = hall.cases.red_card
    if count < rule.anomalies:
        return False
    apply(
        session,
        anomaly,
        now,
        actor=SYSTEM,
        action=Action.ESCALATED,
        to_level=AnomalyLevel.RED,
        note=f"红牌：{anomaly.window}号窗口{rule.period_days}天内异常办件{count}件"
        f"（≥{rule.anomalies}）",
    )
    return True


# -- officers' and evaluators' actions (inside a transaction) ------------------------------


def appeal(
    session: Session, anomaly: Anomaly, now: datetime, *, actor: str, note: str = ""
) -> None:
    """申诉: ``open`` → ``appealed`` until the appeal deadline; suspends rectification.

    Raises:
        TransitionError: Not open.
        DeadlineError: Past the appeal deadline.
    """
    check_allowed(anomaly, Action.APPEAL)
    if now >= anomaly.appeal_deadline:
        raise DeadlineError(
            f"the appeal deadline of anomaly {anomaly.id} passed at "
            f"{anomaly.appeal_deadline.isoformat()}"
        )
    anomaly.rectify_deadline = None
    apply(
        session,
        anomaly,
        now,
        actor=actor,
        action=Action.APPEAL,
        to_state=CaseState.APPEALED,
        note=note or "申诉（整改期限暂停）",
    )


def decide(
    session: Session,
    hall: HallConfig,
    anomaly: Anomaly,
    decision: Decision,
    now: datetime,
    *,
    actor: str,
    note: str = "",
) -> None:
    """Decide an appeal: upheld (rectification deadline set again from today) or
    overturned (no rectification needed).

    Raises:
        TransitionError: Not appealed.
    """
    check_allowed(anomaly, Action.DECISION)
    anomaly.decision = decision.value
    if decision is Decision.UPHELD:
        anomaly.rectify_deadline = deadline(hall, now, hall.cases.rectify_working_days)
        to_state, default = CaseState.UPHELD, "申诉不成立，维持异常"
    else:
        anomaly.rectify_deadline = None
        to_state, default = CaseState.OVERTURNED, "申诉成立，撤销异常"
    apply(
        session,
        anomaly,
        now,
        actor=actor,
        action=Action.DECISION,
        to_state=to_state,
        note=note or default,
    )


def second_evaluation(
    session: Session,
    hall: HallConfig,
    anomaly: Anomaly,
    *,
    bad: bool,
    label: str,
    now: datetime,
    actor: str,
    note: str = "",
) -> None:
    """二次评价: recorded; if an appeal is in progress it decides it (差评 upholds,
    anything else overturns).

    Raises:
        TransitionError: The anomaly is closed.
    """
    check_allowed(anomaly, Action.SECOND_EVALUATION)
    text = f"二次评价：{label}" + (f"；{note}" if note else "")
    apply(session, anomaly, now, actor=actor, action=Action.SECOND_EVALUATION, note=text)
    if anomaly.state == CaseState.APPEALED.value:
        decision = Decision.UPHELD if bad else Decision.OVERTURNED
        decide(session, hall, anomaly, decision, now, actor=actor, note=f"{text}，{decision.value}")


def rectify(
    session: Session, anomaly: Anomaly, now: datetime, *, actor: str, note: str = ""
) -> None:
    """整改: ``open`` or ``upheld`` → ``rectified``.

    Raises:
        TransitionError: Not open or upheld.
    """
    check_allowed(anomaly, Action.RECTIFY)
    apply(
        session,
        anomaly,
        now,
        actor=actor,
        action=Action.RECTIFY,
        to_state=CaseState.RECTIFIED,
        note=note or "已整改",
    )


def close(session: Session, anomaly: Anomaly, now: datetime, *, actor: str, note: str = "") -> None:
    """办结: ``rectified`` or ``overturned`` → ``closed``.

    Raises:
        TransitionError: Neither rectified nor overturned.
    """
    check_allowed(anomaly, Action.CLOSE)
    anomaly.closed_at = now
    apply(
        session,
        anomaly,
        now,
        actor=actor,
        action=Action.CLOSE,
        to_state=CaseState.CLOSED,
        note=note or "办结",
    )
