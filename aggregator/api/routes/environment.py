"""The hall's environment: zones live, occupancy and flow over time, alert snapshots.

- ``GET /halls/{hall}/zones``: every configured zone with its hygiene grade and latest
  people count (every role).
- ``GET /halls/{hall}/occupancy``: peak and mean per counted zone over a range (every role).
- ``GET /halls/{hall}/flow``: people in and out per hour or per day in the hall's
  timezone, with totals (every role). An edge interval counts in the bucket of its start.
- ``GET /halls/{hall}/alerts/{alert_id}/evidence``: the JPEG snapshot of an alert from
  video. Only ``supervision_officer``, ``hall_manager`` and ``admin``: the snapshot is an
  image of people (the public's faces are blurred, their bodies and the clerks are not),
  and the people who act on an alert are the ones who need to see it; an ``auditor``
  checks the records (alerts, durations, counts), not the images (data minimisation,
  PIPL). It is sent ``Cache-Control: private, no-store`` and every access is logged.

Counts and ranges come from the time-series store of :class:`ApiServices` (``series``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection, Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status

from aggregator.api.deps import (
    Caller,
    HallDep,
    Role,
    SeriesDep,
    ServicesDep,
    StateDep,
    require_roles,
)
from aggregator.api.models import (
    FlowBucketOut,
    FlowOut,
    FlowZoneOut,
    OccupancyOut,
    ZoneHygieneOut,
    ZoneOccupancyOut,
    ZoneOccupancyStats,
    ZoneOut,
)
from aggregator.api.params import ApiTime
from aggregator.store.evidence import get_evidence
from aggregator.store.state import Alert
from aggregator.store.timeseries import MEASUREMENT_FLOW, MEASUREMENT_OCCUPANCY
from hallwatch.config.models import HallConfig
from hallwatch.contract import AlertKind, HygieneMethod, HygieneState, utcnow

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/halls/{hall}", tags=["environment"])

MAX_RANGE = {"hour": timedelta(days=31), "day": timedelta(days=400)}
"""Longest range per bucket size (and for occupancy: the day limit)."""

SnapshotViewerDep = Annotated[
    Caller, Depends(require_roles(Role.SUPERVISION_OFFICER, Role.HALL_MANAGER, Role.ADMIN))
]


def get_retention_days(services: ServicesDep) -> int:
    """Days snapshots are kept."""
    return services.evidence_retention_days


RetentionDep = Annotated[int, Depends(get_retention_days)]


@router.get(
    "/alerts/{alert_id}/evidence",
    response_class=Response,
    summary="An alert's snapshot (JPEG)",
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "The JPEG snapshot."},
        403: {"description": "The caller's role may not see snapshots (e.g. auditor)."},
        404: {"description": "Unknown hall, not an alert of this hall, or no snapshot."},
        410: {"description": "The snapshot was deleted after the retention period."},
    },
)
def get_alert_evidence(
    alert_id: str,
    hall: HallDep,
    caller: SnapshotViewerDep,
    state: StateDep,
    retention_days: RetentionDep,
) -> Response:
    """The JPEG snapshot of an alert from video (off-post, 环境差, crowding), faces of the
    public blurred. Supervision officers, hall managers and admins only."""
    hid = hall.hall.id
    with state.read_session() as session:
        alert = session.get(Alert, alert_id)
        if alert is None or alert.hall != hid:
            # the same answer whether the id is unknown or another hall's: no oracle
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, f"alert {alert_id} is not an alert of hall {hid}"
            )
        if alert.evidence_id is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"alert {alert_id} has no snapshot")
        snapshot = get_evidence(session, alert.evidence_id)
        if snapshot is None:
            raise HTTPException(
                status.HTTP_410_GONE,
                f"the snapshot of alert {alert_id} was deleted after the "
                f"{retention_days}-day retention",
            )
        jpeg = snapshot.jpeg
    logger.info("snapshot of alert %s (hall %s) served to %s (%s)", alert_id, hid, caller.name,
                caller.role.value)  # fmt: skip
    return Response(
        content=jpeg,
        media_type="image/jpeg",
        headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/zones", response_model=list[ZoneOut], summary="A hall's zones, live")
def list_zones(hall: HallDep, state: StateDep) -> list[ZoneOut]:
    """The hall's configured zones, in file order, each with its hygiene grade (环境好/差,
    since when, score), its latest people count, and its open alerts."""
    hid = hall.hall.id
    statuses = {z.zone: z for z in state.zone_statuses(hid)}
    open_alerts = {(a.kind, a.zone): a.id for a in state.open_alerts(hid) if a.zone}
    out = []
    for zone in hall.zones:
        row = statuses.get(zone.id)
        hygiene = occupancy = None
        if row is not None and row.hygiene_state is not None and row.hygiene_since is not None:
            hygiene = ZoneHygieneOut(
                state=HygieneState(row.hygiene_state),
                since=row.hygiene_since,
                score=row.hygiene_score or 0.0,
                method=HygieneMethod(row.hygiene_method or HygieneMethod.REFERENCE.value),
            )
        if row is not None and row.occupancy_at is not None:
            occupancy = ZoneOccupancyOut(
                count=row.occupancy_count or 0,
                peak=row.occupancy_peak or 0,
                crowded=row.occupancy_crowded,
                at=row.occupancy_at,
                crowded_since=row.crowded_since,
            )
        out.append(
            ZoneOut(
                id=zone.id,
                name=zone.name,
                kind=zone.kind,
                camera=zone.camera,
                window=zone.window,
                grades_hygiene=zone.grades_hygiene,
                counts_people=zone.counts_people,
                crowding_at=zone.crowding_at,
                hygiene=hygiene,
                occupancy=occupancy,
                hygiene_alert=open_alerts.get((AlertKind.HYGIENE_BAD.value, zone.id)),
                crowding_alert=open_alerts.get((AlertKind.CROWDING.value, zone.id)),
            )
        )
    return out


SinceQuery = Annotated[
    ApiTime | None,
    Query(description="Range start (UTC if naive); default: midnight (hall-local) of until's day."),
]
UntilQuery = Annotated[
    ApiTime | None, Query(description="Range end, exclusive (UTC if naive); default: now.")
]


@router.get("/occupancy", response_model=OccupancyOut, summary="Occupancy per zone over a range")
def get_occupancy(
    hall: HallDep, series: SeriesDep, since: SinceQuery = None, until: UntilQuery = None
) -> OccupancyOut:
    """Peak and mean people per counted zone over the occupancy intervals reported in
    ``[since, until)`` (an interval is reported at its end)."""
    start, end = _range(hall, since, until, MAX_RANGE["day"])
    hid = hall.hall.id
    by_zone: dict[str, list[dict[str, float]]] = defaultdict(list)
    for point in series.query(MEASUREMENT_OCCUPANCY, hall=hid, start=start, end=end):
        fields = {k: float(v) for k, v in point.fields.items() if not isinstance(v, str)}
        by_zone[point.tags.get("zone", "")].append(fields)
    zones = []
    for zone_id, name in _zone_names(hall, by_zone, counted=True):
        reports = by_zone.get(zone_id, [])
        zones.append(
            ZoneOccupancyStats(
                zone=zone_id,
                name=name,
                reports=len(reports),
                peak=int(max(r.get("peak", 0) for r in reports)) if reports else None,
                mean=sum(r.get("mean", 0) for r in reports) / len(reports) if reports else None,
                crowded_reports=sum(1 for r in reports if r.get("crowded")),
            )
        )
    return OccupancyOut(hall=hid, since=start, until=end, zones=zones)


@router.get("/flow", response_model=FlowOut, summary="People in and out, per hour or day")
def get_flow(
    hall: HallDep,
    series: SeriesDep,
    bucket: Annotated[
        Literal["hour", "day"], Query(description="hour or day (in the hall's timezone).")
    ] = "hour",
    since: SinceQuery = None,
    until: UntilQuery = None,
) -> FlowOut:
    """Crossings of the hall's entrance lines in ``[since, until)``, summed per hour or per
    day in the hall's timezone (an interval counts in the bucket of its start), every
    bucket listed (``reports`` 0: no data), with totals per entrance and overall."""
    start, end = _range(hall, since, until, MAX_RANGE[bucket])
    hid, tz = hall.hall.id, hall.tzinfo
    buckets = {b.astimezone(UTC): [0, 0, 0] for b in _buckets(start, end, tz, bucket)}
    per_zone: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for point in series.query(MEASUREMENT_FLOW, hall=hid, start=start, end=end):
        key = _floor(point.time, tz, bucket).astimezone(UTC)
        sums = buckets.setdefault(key, [0, 0, 0])
        in_count = int(point.fields.get("in_count", 0))
        out_count = int(point.fields.get("out_count", 0))
        sums[0] += in_count
        sums[1] += out_count
        sums[2] += 1
        zone_sums = per_zone[point.tags.get("zone", "")]
        zone_sums[0] += in_count
        zone_sums[1] += out_count
    rows = [
        FlowBucketOut(start=k.astimezone(tz), in_count=v[0], out_count=v[1], reports=v[2])
        for k, v in sorted(buckets.items())
    ]
    zones = [
        FlowZoneOut(zone=z, name=name, in_count=per_zone[z][0], out_count=per_zone[z][1])
        for z, name in _zone_names(hall, per_zone, counted=False)
    ]
    return FlowOut(
        hall=hid,
        bucket=bucket,
        timezone=hall.hall.timezone,
        since=start,
        until=end,
        buckets=rows,
        zones=zones,
        in_count=sum(r.in_count for r in rows),
        out_count=sum(r.out_count for r in rows),
    )


# -- helpers -------------------------------------------------------------------------------


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _range(
    hall: HallConfig, since: datetime | None, until: datetime | None, longest: timedelta
) -> tuple[datetime, datetime]:
    """``[since, until)`` in UTC with defaults; 422 if empty or longer than ``longest``."""
    end = _utc(until) or utcnow()
    start = _utc(since) or _floor(end - timedelta(microseconds=1), hall.tzinfo, "day")
    start = start.astimezone(UTC)
    if start >= end:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "since must be earlier than until"
        )
    if end - start > longest:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"range too long: at most {longest.days} days here",
        )
    return start, end


def _floor(t: datetime, tz: ZoneInfo, bucket: str) -> datetime:
    """The start of the hall-local hour or day holding ``t`` (aware, in ``tz``).

    >>> sh = ZoneInfo("Asia/Shanghai")
    >>> _floor(datetime(2026, 11, 2, 16, 30, tzinfo=UTC), sh, "day").isoformat()
    '2026-11-03T00:00:00+08:00'
    """
    local = t.astimezone(tz)
    if bucket == "hour":
        return local.replace(minute=0, second=0, microsecond=0)
    return datetime.combine(local.date(), time(0), tzinfo=tz)


def _buckets(start: datetime, end: datetime, tz: ZoneInfo, bucket: str) -> Iterator[datetime]:
    """Starts of the hall-local hours or days overlapping ``[start, end)``."""
    current = _floor(start, tz, bucket)
    while current < end:
        yield current
        if bucket == "hour":  # step in UTC, then floor: right across DST changes
            current = _floor(current.astimezone(UTC) + timedelta(hours=1), tz, bucket)
        else:
            current = datetime.combine(current.date() + timedelta(days=1), time(0), tzinfo=tz)


def _zone_names(
    hall: HallConfig, reported: Collection[str], *, counted: bool
) -> list[tuple[str, str]]:
    """Zones to list: configured ones (counted zones, or entrance lines) in file order,
    then reported ones the config does not list (named by their id)."""
    wanted = [
        (z.id, z.name)
        for z in hall.zones
        if (z.counts_people if counted else z.line is not None) or z.id in reported
    ]
    known = {z.id for z in hall.zones}
    return wanted + [(z, z) for z in sorted(reported) if z not in known and z]
