"""The 异常办件 register of a hall, and its current queue.

Reads admit every role; writes need ``supervision_officer`` or ``admin`` (an appeal and
a rectification also ``hall_manager``). An anomaly of another hall is 404, a forbidden
transition 409, an appeal past its deadline 422.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status

from aggregator.api.anomaly_models import (
    AnomalyDetailOut,
    AnomalyOut,
    AnomalyPage,
    DecisionIn,
    ManualEntryIn,
    NoteIn,
    QueueOut,
    SecondEvaluationIn,
)
from aggregator.api.deps import Caller, CallerDep, CasesDep, HallDep, Role, require_roles
from aggregator.api.params import MAX_OFFSET, ApiTime
from aggregator.cases.lifecycle import (
    AnomalyNotFoundError,
    CaseError,
    CaseState,
    DeadlineError,
    TransitionError,
)
from aggregator.cases.models import Anomaly
from aggregator.cases.register import AnomalyFilter, InvalidEntryError, ManualEntry
from hallwatch.contract import AnomalyKind, AnomalyLevel

router = APIRouter(prefix="/halls/{hall}", tags=["anomalies"])

OfficerDep = Annotated[Caller, Depends(require_roles(Role.SUPERVISION_OFFICER, Role.ADMIN))]
ManagerDep = Annotated[Caller, Depends(require_roles(Role.HALL_MANAGER, Role.ADMIN))]
"""Appeal (申诉) and rectification (整改) are the hall's side; deciding is the officers':
separation of duties between the two roles."""

_ERRORS: list[tuple[type[CaseError], int]] = [
    (AnomalyNotFoundError, status.HTTP_404_NOT_FOUND),
    (TransitionError, status.HTTP_409_CONFLICT),
    (DeadlineError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (InvalidEntryError, status.HTTP_422_UNPROCESSABLE_CONTENT),
]


def _run(action: Callable[[], Anomaly]) -> Anomaly:
    """Run a register action, mapping its errors onto HTTP statuses."""
    try:
        return action()
    except CaseError as exc:
        for error_type, code in _ERRORS:
            if isinstance(exc, error_type):
                raise HTTPException(code, str(exc)) from exc
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@router.get("/anomalies", response_model=AnomalyPage, summary="异常办件, newest first")
def list_anomalies(
    hall: HallDep,
    cases: CasesDep,
    _caller: CallerDep,
    kind: Annotated[AnomalyKind | None, Query(description="Only this kind.")] = None,
    state: Annotated[CaseState | None, Query(description="Only this state.")] = None,
    level: Annotated[AnomalyLevel | None, Query(description="warning or red.")] = None,
    window: Annotated[str | None, Query(description="Only this window.")] = None,
    department: Annotated[str | None, Query(description="Only this department.")] = None,
    since: Annotated[
        ApiTime | None, Query(description="Opened at or after this time (UTC if naive).")
    ] = None,
    until: Annotated[
        ApiTime | None, Query(description="Opened before this time (UTC if naive).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size.")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Anomalies to skip.")] = 0,
) -> AnomalyPage:
    """The hall's anomalies matching every given filter, newest (by ``opened``) first."""
    filters = AnomalyFilter(
        kind=kind.value if kind else None,
        state=state.value if state else None,
        level=level.value if level else None,
        window=window,
        department=department,
        since=_utc(since),
        until=_utc(until),
    )
    rows, total = cases.list_anomalies(hall.hall.id, filters, limit=limit, offset=offset)
    return AnomalyPage(
        items=[AnomalyOut.of(r) for r in rows], total=total, limit=limit, offset=offset
    )


@router.post(
    "/anomalies",
    response_model=AnomalyOut,
    status_code=status.HTTP_201_CREATED,
    summary="Enter an anomaly (complaint, inspection, instruction)",
)
def create_anomaly(
    hall: HallDep, cases: CasesDep, caller: OfficerDep, body: ManualEntryIn
) -> AnomalyOut:
    """Register a ``manual`` anomaly; ``opened`` defaults to now."""
    entry = ManualEntry(**body.model_dump())
    return AnomalyOut.of(_run(lambda: cases.open_manual(hall.hall.id, entry, actor=caller.name)))


@router.get(
    "/anomalies/{anomaly_id}", response_model=AnomalyDetailOut, summary="One anomaly, in full"
)
def get_anomaly(
    hall: HallDep, cases: CasesDep, _caller: CallerDep, anomaly_id: str
) -> AnomalyDetailOut:
    """One anomaly with its evidence and every transition (全程留痕)."""
    try:
        detail = cases.get(hall.hall.id, anomaly_id)
    except AnomalyNotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    return AnomalyDetailOut.of_detail(detail)


@router.post("/anomalies/{anomaly_id}/appeal", response_model=AnomalyOut, summary="申诉")
def appeal(
    hall: HallDep, cases: CasesDep, caller: ManagerDep, anomaly_id: str, body: NoteIn
) -> AnomalyOut:
    """Appeal an open anomaly before its appeal deadline (422 after it)."""
    return AnomalyOut.of(
        _run(lambda: cases.appeal(hall.hall.id, anomaly_id, actor=caller.name, note=body.note))
    )


@router.post(
    "/anomalies/{anomaly_id}/second-evaluation", response_model=AnomalyOut, summary="二次评价"
)
def second_evaluation(
    hall: HallDep, cases: CasesDep, caller: OfficerDep, anomaly_id: str, body: SecondEvaluationIn
) -> AnomalyOut:
    """Record a second evaluation; it decides an appeal in progress (差评 upholds)."""
    return AnomalyOut.of(
        _run(
            lambda: cases.second_evaluation(
                hall.hall.id,
                anomaly_id,
                level=body.level,
                attitude=body.attitude,
                actor=caller.name,
                note=body.note,
            )
        )
    )


@router.post("/anomalies/{anomaly_id}/decision", response_model=AnomalyOut, summary="Decide")
def decide(
    hall: HallDep, cases: CasesDep, caller: OfficerDep, anomaly_id: str, body: DecisionIn
) -> AnomalyOut:
    """Decide an appeal: upheld or overturned."""
    return AnomalyOut.of(
        _run(
            lambda: cases.decide(
                hall.hall.id, anomaly_id, body.decision, actor=caller.name, note=body.note
            )
        )
    )


@router.post("/anomalies/{anomaly_id}/rectify", response_model=AnomalyOut, summary="整改")
def rectify(
    hall: HallDep, cases: CasesDep, caller: ManagerDep, anomaly_id: str, body: NoteIn
) -> AnomalyOut:
    """Record the rectification of an open or upheld anomaly."""
    return AnomalyOut.of(
        _run(lambda: cases.rectify(hall.hall.id, anomaly_id, actor=caller.name, note=body.note))
    )


@router.post("/anomalies/{anomaly_id}/close", response_model=AnomalyOut, summary="办结")
def close(
    hall: HallDep, cases: CasesDep, caller: OfficerDep, anomaly_id: str, body: NoteIn
) -> AnomalyOut:
    """Close a rectified or overturned anomaly."""
    return AnomalyOut.of(
        _run(lambda: cases.close(hall.hall.id, anomaly_id, actor=caller.name, note=body.note))
    )


@router.get("/queue", response_model=list[QueueOut], summary="Current queue per service")
def get_queue(hall: HallDep, cases: CasesDep, _caller: CallerDep) -> list[QueueOut]:
    """The latest queue gauge of each service that has reported."""
    out = []
    for row in cases.queue(hall.hall.id):
        svc = hall.queue.service(row.service) if hall.queue is not None else None
        out.append(QueueOut.of(row, svc.name if svc is not None else ""))
    return out
