"""Alerts: filtered, paginated list, one by id, and people's actions on them.

Actions (docs/alert-routing.md): ``POST …/{id}/acknowledge`` (supervision officer, hall
manager, admin; stops escalation), ``POST …/{id}/resolve`` (supervision officer, admin;
closes an ``alerts`` row by hand, with a note), ``POST …/{id}/comment`` (as acknowledge)
and ``GET …/{id}/actions`` (every role: the recorded actions and notifications). An alert
of a hall the caller may not see is 404, a forbidden role 403, an action its state
forbids 409. ``{id}`` may also be a 异常办件's id (its alerts carry it): it can be
acknowledged and commented, and is closed through its register. Each action is published
on the live bus as an ``alert`` event with ``action`` and ``acknowledged_by``/``_at``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, status

from aggregator.alerts import AlertSink, alert_message
from aggregator.api.deps import (
    BusDep,
    Caller,
    HallsDep,
    Role,
    ServicesDep,
    StateDep,
    require_roles,
)
from aggregator.api.models import (
    AlertActionOut,
    AlertActionsOut,
    AlertNoteIn,
    AlertNotificationOut,
    AlertOut,
    AlertPage,
    AlertResolveIn,
)
from aggregator.api.params import MAX_OFFSET, ApiTime
from aggregator.bus import LiveBus, LiveEvent
from aggregator.cases.models import Anomaly
from aggregator.cases.notify import alert_of
from aggregator.notify.actions import (
    ActionConflictError,
    UnknownAlertError,
    acknowledgements,
    find_alert,
    history,
    record_action,
)
from aggregator.notify.records import ActionKind
from aggregator.store.state import Alert, StateStore
from hallwatch.config.models import HallConfig
from hallwatch.contract import AlertKind, AlertState, utcnow

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/alerts", tags=["alerts"])

AckDep = Annotated[
    Caller, Depends(require_roles(Role.SUPERVISION_OFFICER, Role.HALL_MANAGER, Role.ADMIN))
]
ResolveDep = Annotated[Caller, Depends(require_roles(Role.SUPERVISION_OFFICER, Role.ADMIN))]


def get_alert_sink(services: ServicesDep) -> AlertSink | None:
    """The aggregator's alert fan-out (hall topic, live bus, router): a manually resolved
    alert goes out there."""
    return services.alert_sink


AlertSinkDep = Annotated[AlertSink | None, Depends(get_alert_sink)]


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@router.get("", response_model=AlertPage, summary="Alerts, newest first")
def list_alerts(
    halls: HallsDep,
    state: StateDep,
    hall: Annotated[str | None, Query(description="Only this hall.")] = None,
    kind: Annotated[AlertKind | None, Query(description="Only this kind.")] = None,
    alert_state: Annotated[
        AlertState | None, Query(alias="state", description="open or resolved.")
    ] = None,
    post: Annotated[str | None, Query(description="Only this post.")] = None,
    since: Annotated[
        ApiTime | None, Query(description="Alerts starting at or after this time (UTC if naive).")
    ] = None,
    until: Annotated[
        ApiTime | None, Query(description="Alerts starting before this time (UTC if naive).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size.")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Alerts to skip.")] = 0,
) -> AlertPage:
    """Alerts matching every given filter, newest (by start) first."""
    if hall is not None and hall not in halls:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown hall {hall!r}")
    rows, total = state.list_alerts(
        hall=hall,
        halls=list(halls),
        kind=kind.value if kind else None,
        state=alert_state.value if alert_state else None,
        post=post,
        since=_utc(since),
        until=_utc(until),
        limit=limit,
        offset=offset,
    )
    acks = acknowledgements(state, [r.id for r in rows])
    items = [AlertOut.of(r, ack=acks.get(r.id)) for r in rows]
    return AlertPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/{alert_id}", response_model=AlertOut, summary="One alert")
def get_alert(alert_id: str, halls: HallsDep, state: StateDep) -> AlertOut:
    """One alert by id (404 if unknown or of a hall the caller may not see)."""
    row = state.get_alert(alert_id)
    if row is None or row.hall not in halls:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown alert {alert_id!r}")
    return AlertOut.of(row, ack=acknowledgements(state, [row.id]).get(row.id))


@router.post(
    "/{alert_id}/acknowledge", response_model=AlertActionOut, summary="Acknowledge an alert"
)
def acknowledge_alert(
    alert_id: str,
    caller: AckDep,
    halls: HallsDep,
    state: StateDep,
    bus: BusDep,
    body: Annotated[AlertNoteIn | None, Body()] = None,
) -> AlertActionOut:
    """Take an open alert in hand (已确认): escalation stops, held texts are dropped.

    409 if it is resolved or was acknowledged already (by whom, when)."""
    note = body.note if body is not None else ""
    return _act(alert_id, ActionKind.ACKNOWLEDGE, note, caller, halls, state, bus)


@router.post("/{alert_id}/resolve", response_model=AlertActionOut, summary="Resolve an alert")
def resolve_alert(
    alert_id: str,
    body: AlertResolveIn,
    caller: ResolveDep,
    halls: HallsDep,
    state: StateDep,
    bus: BusDep,
    sink: AlertSinkDep,
) -> AlertActionOut:
    """Close an open alert by hand (人工关闭), with a note: ``end`` = now. The rule does not
    reopen the same episode (absence, outage, 环境差 or crowding); a new one alerts anew.

    409 if it is resolved already, or is a 异常办件 (closed through its register)."""
    return _act(alert_id, ActionKind.RESOLVE, body.note, caller, halls, state, bus, sink)


@router.post("/{alert_id}/comment", response_model=AlertActionOut, summary="Comment an alert")
def comment_alert(
    alert_id: str,
    body: AlertResolveIn,
    caller: AckDep,
    halls: HallsDep,
    state: StateDep,
    bus: BusDep,
) -> AlertActionOut:
    """Add a note to an alert, open or resolved."""
    return _act(alert_id, ActionKind.COMMENT, body.note, caller, halls, state, bus)


@router.get("/{alert_id}/actions", response_model=AlertActionsOut, summary="An alert's actions")
def alert_actions(alert_id: str, halls: HallsDep, state: StateDep) -> AlertActionsOut:
    """Who did what about an alert, and the notifications routing sent (oldest first)."""
    target = find_alert(state, alert_id)
    if target is None or target.hall not in halls:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown alert {alert_id!r}")
    found = history(state, target)
    ack = next((a for a in found.actions if a.action == ActionKind.ACKNOWLEDGE.value), None)
    return AlertActionsOut(
        alert_id=target.id,
        hall=target.hall,
        open=target.open,
        acknowledged_by=ack.actor if ack is not None else None,
        acknowledged_at=ack.at if ack is not None else None,
        actions=[AlertActionOut.of(a) for a in found.actions],
        notifications=[AlertNotificationOut.of(n) for n in found.notifications],
    )


def _act(
    alert_id: str,
    action: ActionKind,
    note: str,
    caller: Caller,
    halls: Mapping[str, HallConfig],
    state: StateStore,
    bus: LiveBus,
    sink: AlertSink | None = None,
) -> AlertActionOut:
    try:
        record, row = record_action(
            state, alert_id, action, actor=caller.name, role=caller.role.value, note=note,
            now=utcnow(), halls=list(halls),
        )  # fmt: skip
    except UnknownAlertError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except ActionConflictError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    if action is ActionKind.RESOLVE and row is not None and sink is not None:
        try:  # the hall's alerts topic, the router (per-recipient "resolved"), the bus
            sink.publish(alert_message(row))
        except Exception:  # the action is recorded all the same
            logger.exception("publishing manually resolved alert %s failed", alert_id)
    out = AlertActionOut.of(record)
    _announce(bus, state, halls.get(record.hall), out, row)
    return out


def _announce(
    bus: LiveBus,
    state: StateStore,
    hall: HallConfig | None,
    action: AlertActionOut,
    row: Alert | None,
) -> None:
    """Publish ``event: alert`` with the alert, the action and the acknowledgement."""
    data: dict[str, Any] = {"id": action.alert_id}
    if row is not None:
        data = alert_message(row).model_dump(mode="json", by_alias=True)
    else:
        with state.read_session() as session:
            case = session.get(Anomaly, action.alert_id)
            if case is not None:
                data = alert_of(case, hall).model_dump(mode="json", by_alias=True)
    data.pop("hall", None)
    ack = acknowledgements(state, [action.alert_id]).get(action.alert_id)
    data["acknowledged_by"] = ack.by if ack is not None else None
    data["acknowledged_at"] = ack.at.isoformat() if ack is not None else None
    data["action"] = action.model_dump(mode="json")
    bus.publish(LiveEvent("alert", action.hall, data))
