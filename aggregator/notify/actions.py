"""People's actions on alerts: acknowledge (确认), resolve by hand (人工关闭), comment.

Every action is an :class:`~aggregator.notify.records.AlertAction` row (who, role, when,
note), written in the same transaction as its effect:

- **acknowledge**: someone has the alert in hand. Once per alert (a second is a
  conflict); an open alert only. Escalation stops, and texts held in quiet hours are
  dropped (:mod:`aggregator.notify.routing`).
- **resolve** (an ``alerts`` row only, with a note): the alert is closed now (``end`` and
  ``resolved_at`` = now). The rules never reopen the same episode: each rule opens an alert
  only for an absence, outage or 环境差/crowding episode whose start no alert has yet, so a
  later alert needs a new episode (the clerk back and away again, the device online and
  offline again). A 异常办件 is closed through its register (rectify, close), not here.
- **comment**: a note, on any alert, open or resolved.

An alert here is an ``alerts`` row or a 异常办件 (its alerts carry the anomaly's id).

Example:
    >>> from aggregator.store.state import StateStore
    >>> store = StateStore("sqlite://"); _ = store.migrate()
    >>> find_alert(store, "nope") is None
    True
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aggregator.cases.models import Anomaly
from aggregator.notify.records import ActionKind, AlertAction, AlertNotification
from aggregator.store.state import Alert, StateStore
from hallwatch.contract import AlertState

logger = logging.getLogger(__name__)

OPEN = AlertState.OPEN.value


class AlertActionError(Exception):
    """An action that cannot be done."""


class UnknownAlertError(AlertActionError):
    """No such alert (or not in the caller's halls)."""


class ActionConflictError(AlertActionError):
    """The alert's state forbids it (already acknowledged, already resolved, a 异常办件)."""


@dataclass(frozen=True, slots=True)
class AlertTarget:
    """What an action is done to.

    Attributes:
        id: The alert id.
        hall: Its hall.
        is_case: A 异常办件 (the id is the anomaly's), not an ``alerts`` row.
        open: Whether it is still open.
    """

    id: str
    hall: str
    is_case: bool
    open: bool


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """Who acknowledged an alert, and when."""

    by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class AlertHistory:
    """An alert's recorded actions and notifications, oldest first."""

    target: AlertTarget
    actions: list[AlertAction]
    notifications: list[AlertNotification]


def find_alert(state: StateStore, alert_id: str) -> AlertTarget | None:
    """An ``alerts`` row or a 异常办件 by id (None: neither)."""
    with state.read_session() as session:
        row = session.get(Alert, alert_id)
        if row is not None:
            return AlertTarget(row.id, row.hall, is_case=False, open=row.state == OPEN)
        case = session.get(Anomaly, alert_id)
        if case is not None:
            return AlertTarget(case.id, case.hall, is_case=True, open=case.closed_at is None)
    return None


def record_action(
    state: StateStore,
    alert_id: str,
    action: ActionKind,
    *,
    actor: str,
    role: str,
    note: str,
    now: datetime,
    halls: Collection[str] | None = None,
) -> tuple[AlertAction, Alert | None]:
    """Do and record one action.

    Args:
        state: The state database.
        alert_id: The alert (an ``alerts`` row or a 异常办件).
        action: acknowledge, resolve or comment.
        actor: Who (the caller's name).
        role: Their role.
        note: Their note (required to resolve and to comment).
        now: The time.
        halls: The halls the caller may act on (None: all); another hall's alert is
            unknown.

    Returns:
        The recorded action, and the ``alerts`` row as it is now (None for a 异常办件).

    Raises:
        UnknownAlertError: No such alert in ``halls``.
        ActionConflictError: Acknowledging twice or a resolved alert, resolving a resolved
            alert or a 异常办件.
        ValueError: A note is missing or too long.
    """
    note = note.strip()
    if action is not ActionKind.ACKNOWLEDGE and not note:
        raise ValueError(f"{action.value} needs a note")
    if len(note) > 500:
        raise ValueError("a note is at most 500 characters")
    with state.session() as session:
        row = session.get(Alert, alert_id)
        case = session.get(Anomaly, alert_id) if row is None else None
        hall = row.hall if row is not None else case.hall if case is not None else None
        if hall is None or (halls is not None and hall not in halls):
            raise UnknownAlertError(f"unknown alert {alert_id!r}")
        is_open = row.state == OPEN if row is not None else case is not None and not case.closed_at
        if action is ActionKind.ACKNOWLEDGE:
            if not is_open:
                raise ActionConflictError(f"alert {alert_id} is resolved already")
            previous = _acknowledgement(session, alert_id)
            if previous is not None:
                raise ActionConflictError(
                    f"alert {alert_id} was acknowledged by {previous.by} at "
                    f"{previous.at.isoformat()}"
                )
        elif action is ActionKind.RESOLVE:
            if row is None:
                raise ActionConflictError(
                    f"{alert_id} is a 异常办件: close it through its register "
                    f"(/api/v1/halls/{hall}/anomalies/{alert_id})"
                )
            if not is_open:
                raise ActionConflictError(f"alert {alert_id} is resolved already")
            row.state = AlertState.RESOLVED.value
            row.end = max(now, row.start)
            row.resolved_at = now
        record = AlertAction(
            alert_id=alert_id,
            hall=hall,
            action=action.value,
            actor=actor[:64],
            role=role[:32],
            at=now,
            note=note,
        )
        try:
            with session.begin_nested():
                session.add(record)
        except IntegrityError as exc:  # a concurrent acknowledge won
            raise ActionConflictError(f"alert {alert_id} was acknowledged meanwhile") from exc
    logger.info("alert %s: %s by %s (%s)", alert_id, action.value, actor, role)
    return record, row


def acknowledgements(state: StateStore, alert_ids: Collection[str]) -> dict[str, Acknowledgement]:
    """Who acknowledged which of these alerts (alerts not acknowledged are absent)."""
    if not alert_ids:
        return {}
    with state.read_session() as session:
        rows = session.execute(
            select(AlertAction.alert_id, AlertAction.actor, AlertAction.at).where(
                AlertAction.alert_id.in_(list(alert_ids)),
                AlertAction.action == ActionKind.ACKNOWLEDGE.value,
            )
        ).all()
    return {alert_id: Acknowledgement(actor, at) for alert_id, actor, at in rows}


def history(state: StateStore, target: AlertTarget) -> AlertHistory:
    """An alert's actions and notifications, oldest first."""
    with state.read_session() as session:
        actions = session.scalars(
            select(AlertAction)
            .where(AlertAction.alert_id == target.id)
            .order_by(AlertAction.at, AlertAction.id)
        ).all()
        notes = session.scalars(
            select(AlertNotification)
            .where(AlertNotification.alert_id == target.id)
            .order_by(AlertNotification.at, AlertNotification.id)
        ).all()
    return AlertHistory(target, list(actions), list(notes))


def _acknowledgement(session: Session, alert_id: str) -> Acknowledgement | None:
    found = session.execute(
        select(AlertAction.actor, AlertAction.at).where(
            AlertAction.alert_id == alert_id, AlertAction.action == ActionKind.ACKNOWLEDGE.value
        )
    ).first()
    return Acknowledgement(found[0], found[1]) if found is not None else None
