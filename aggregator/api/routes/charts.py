"""Charts of a hall for the dashboard: bucketed series from the time-series store.

``GET /api/v1/halls/{hall}/charts/{chart}?since=&until=&bucket=`` (every role that sees
the hall), ``chart`` one of:

- ``waits`` (排队等候): ``longest_wait_min``, ``mean_wait_min``, ``waiting_peak``,
  ``over_limit`` (``service`` narrows it to one queue);
- ``occupancy`` (区域人数): ``peak`` and ``mean`` per counted zone;
- ``off_post`` (离岗分钟): minutes off post in service time, the hall's and each post's;
- ``ratings`` (好差评): ``ratings``, ``bad`` (差评), ``mean_score``.

Buckets are quarter hours, hours or days in the hall's timezone. ``since`` and ``until``
take a time (UTC if naive) or a date (the hall's midnight that starts it); the defaults are
today's midnight (hall-local) and the next one, so ``/charts/waits`` is today's chart with
the day's empty buckets still to come (``null``). Computation: :mod:`aggregator.web.chart_series`.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field

from aggregator.api.deps import HallDep, SeriesDep
from aggregator.api.params import EARLIEST, LATEST
from aggregator.store.timeseries import (
    MEASUREMENT_OCCUPANCY,
    MEASUREMENT_PRESENCE,
    MEASUREMENT_QUEUE,
    MEASUREMENT_RATING,
    MEASUREMENT_TICKET,
    MEASUREMENT_WAIT,
    TimeSeriesStore,
)
from aggregator.web.chart_series import (
    Buckets,
    BucketSize,
    Series,
    Unit,
    occupancy_series,
    off_post_series,
    rating_series,
    wait_series,
)
from hallwatch.config.models import HallConfig
from hallwatch.contract import utcnow

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/halls/{hall}", tags=["charts"])

ChartName = Literal["waits", "occupancy", "off_post", "ratings"]

MAX_BUCKETS: dict[str, int] = {"15min": 800, "hour": 800, "day": 400}
"""Most buckets one answer may hold: 8 days of quarter hours, 33 days of hours, 400 days."""
BUCKET_LENGTH = {
    "15min": timedelta(minutes=15),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
}
DEFAULT_WAIT_LIMIT_MIN = 30.0
"""窗口等待时间 limit when the hall has no queue feed configured."""


class ChartSeriesOut(BaseModel):
    """One series: a value per bucket."""

    key: str = Field(description="What is measured, e.g. longest_wait_min, peak, off_post_min.")
    subject: str | None = Field(description="Zone or post id; null for the whole hall.")
    name: str = Field(description="Display name of the subject (empty for the hall).")
    unit: Unit = Field(description="min, people, count or score.")
    values: list[float | None] = Field(description="One value per bucket; null: no data.")

    @classmethod
    def of(cls, series: Series) -> ChartSeriesOut:
        """From a computed series."""
        return cls(key=series.key, subject=series.subject, name=series.name, unit=series.unit,
                   values=list(series.values))  # fmt: skip


class ChartOut(BaseModel):
    """A chart of a hall over ``[since, until)``."""

    hall: str = Field(description="Hall id.")
    chart: ChartName = Field(description="waits, occupancy, off_post or ratings.")
    bucket: BucketSize = Field(description="15min, hour or day (hall-local).")
    timezone: str = Field(description="Timezone the buckets are cut in (the hall's).")
    since: datetime = Field(description="Range start (UTC).")
    until: datetime = Field(description="Range end, exclusive (UTC).")
    buckets: list[datetime] = Field(description="Bucket starts, hall-local with offset.")
    series: list[ChartSeriesOut] = Field(description="The chart's series.")
    limit_min: float | None = Field(
        default=None, description="waits: the wait limit (minutes) for a reference line."
    )


RangeQuery = Annotated[
    str | None,
    Query(
        max_length=40,
        description="A time, ISO 8601 (UTC if naive), or a date YYYY-MM-DD (that day's "
        "hall-local midnight).",
        examples=["2026-11-02", "2026-11-02T09:30:00+08:00"],
    ),
]


@router.get("/charts/{chart}", response_model=ChartOut, summary="A chart's series (dashboard)")
def get_chart(
    hall: HallDep,
    series: SeriesDep,
    chart: ChartName,
    since: RangeQuery = None,
    until: RangeQuery = None,
    bucket: Annotated[BucketSize, Query(description="15min, hour or day.")] = "hour",
    service: Annotated[
        str | None, Query(max_length=64, description="waits: only this service (queue).")
    ] = None,
) -> ChartOut:
    """Bucketed series of one chart over ``[since, until)`` (default: today, hall-local).

    422 if the range is empty or too long (800 quarter hours or hours, 400 days)."""
    start, end = _range(hall, since, until)
    # checked before the buckets are made: (end - start) / length is within one of their
    # count (a DST day is 23 or 25 hours)
    if (end - start) / BUCKET_LENGTH[bucket] > MAX_BUCKETS[bucket] + 1:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"range too long for {bucket} buckets: at most {MAX_BUCKETS[bucket]}",
        )
    buckets = Buckets.cover(start, end, hall.tzinfo, bucket)
    computed = _compute(chart, hall, series, buckets, service)
    limit = None
    if chart == "waits":
        limit = _wait_limit_min(hall, service)
    return ChartOut(
        hall=hall.hall.id,
        chart=chart,
        bucket=bucket,
        timezone=hall.hall.timezone,
        since=start,
        until=end,
        buckets=list(buckets.starts),
        series=[ChartSeriesOut.of(s) for s in computed],
        limit_min=limit,
    )


def _compute(
    chart: ChartName,
    hall: HallConfig,
    store: TimeSeriesStore,
    buckets: Buckets,
    service: str | None,
) -> list[Series]:
    hid, start, end = hall.hall.id, buckets.start, buckets.end
    if chart == "waits":
        tags = {"service": service} if service else None
        return wait_series(
            buckets,
            store.query(MEASUREMENT_QUEUE, hall=hid, start=start, end=end, tags=tags),
            store.query(MEASUREMENT_TICKET, hall=hid, start=start, end=end, tags=tags),
            store.query(MEASUREMENT_WAIT, hall=hid, start=start, end=end, tags=tags),
        )
    if chart == "occupancy":
        zones = [(z.id, z.name) for z in hall.zones if z.counts_people]
        points = store.query(MEASUREMENT_OCCUPANCY, hall=hid, start=start, end=end)
        return occupancy_series(buckets, points, zones)
    if chart == "ratings":
        return rating_series(buckets, store.query(MEASUREMENT_RATING, hall=hid, start=start,
                                                  end=end))  # fmt: skip
    lookback = timedelta(seconds=3 * hall.thresholds.summary_interval_s + 1)
    points = store.query(MEASUREMENT_PRESENCE, hall=hid, start=start - lookback, end=end)
    return off_post_series(buckets, points, hall, now=utcnow())


def _wait_limit_min(hall: HallConfig, service: str | None) -> float:
    if hall.queue is None:
        return DEFAULT_WAIT_LIMIT_MIN
    if service is not None:
        return hall.queue.wait_limit_s(service) / 60
    return float(hall.queue.wait_limit_min)


def _moment(value: str | date, hall: HallConfig, name: str) -> datetime:
    """A query value as UTC: a date is the hall's midnight starting it.

    Raises:
        HTTPException: 422 if malformed or outside 2000-01-01 … 2100-01-01.
    """
    try:
        if isinstance(value, str):
            value = date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
        if not EARLIEST.year <= value.year < LATEST.year:
            raise ValueError("out of range")
        if isinstance(value, datetime):
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return datetime.combine(value, time(0), tzinfo=hall.tzinfo).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"{name}: expected YYYY-MM-DD or an ISO 8601 time between 2000 and 2100, "
            f"got {str(value)[:40]!r}",
        ) from exc


def _range(hall: HallConfig, since: str | None, until: str | None) -> tuple[datetime, datetime]:
    """``[since, until)`` in UTC; defaults: today (hall-local) from midnight to midnight."""
    today = utcnow().astimezone(hall.tzinfo).date()
    start = _moment(since if since is not None else today, hall, "since")
    if until is not None:
        end = _moment(until, hall, "until")
    else:
        day = start.astimezone(hall.tzinfo).date() + timedelta(days=1)
        end = _moment(day, hall, "until")
    if start >= end:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "since must be earlier than until"
        )
    return start, end
