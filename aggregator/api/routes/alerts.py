"""Alerts: filtered, paginated list and one by id."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from aggregator.api.deps import HallsDep, StateDep
from aggregator.api.models import AlertOut, AlertPage
from hallwatch.contract import AlertKind, AlertState

router = APIRouter(prefix="/alerts", tags=["alerts"])


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
        datetime | None, Query(description="Alerts starting at or after this time (UTC if naive).")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="Alerts starting before this time (UTC if naive).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size.")] = 50,
    offset: Annotated[int, Query(ge=0, description="Alerts to skip.")] = 0,
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
    return AlertPage(items=[AlertOut.of(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/{alert_id}", response_model=AlertOut, summary="One alert")
def get_alert(alert_id: str, halls: HallsDep, state: StateDep) -> AlertOut:
    """One alert by id (404 if unknown or of a hall the caller may not see)."""
    row = state.get_alert(alert_id)
    if row is None or row.hall not in halls:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown alert {alert_id!r}")
    return AlertOut.of(row)
