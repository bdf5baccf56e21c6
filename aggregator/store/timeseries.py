"""The time-series store: every fact as points, InfluxDB-style.

:func:`facts_to_points` maps each fact kind onto measurements, tags and fields (the names
Grafana dashboards and exports rely on: ``docs/storage.md``). The point types and the
store interface are in :mod:`aggregator.store.points`; the embedded backend is
:class:`~aggregator.store.sqlite_series.SqliteTimeSeriesStore`; the line-protocol backend
(InfluxDB or VictoriaMetrics through ``influxdb-client``) is
:mod:`aggregator.store.line_protocol`. They are re-exported here for their many callers.
"""

from __future__ import annotations

import logging

from aggregator.store.points import (  # re-exported
    ColumnarSeriesStore,
    FieldValue,
    Point,
    PointColumns,
    TimeSeriesStore,
    columns_from_points,
    columns_via_query,
    series_columns,
    typed_array,
)
from aggregator.store.sqlite_series import SqliteTimeSeriesStore, parse_field_objects
from hallwatch.contract import (
    DeviceFact,
    Fact,
    FlowFact,
    HygieneFact,
    HygieneState,
    OccupancyFact,
    PostState,
    PresenceFact,
    QueueFact,
    RatingFact,
    RatingLevel,
    StatsFact,
    TicketFact,
    TripsFact,
    WaitFact,
)

logger = logging.getLogger(__name__)

__all__ = [
    "ColumnarSeriesStore", "FieldValue", "Point", "PointColumns", "SqliteTimeSeriesStore",
    "TimeSeriesStore", "columns_from_points", "columns_via_query", "facts_to_points",
    "parse_field_objects", "series_columns", "typed_array",
]  # fmt: skip

MEASUREMENT_PRESENCE = "post_presence"
MEASUREMENT_DEVICE = "device_status"
MEASUREMENT_EDGE = "edge_pipeline"
MEASUREMENT_TICKET = "ticket_event"
MEASUREMENT_QUEUE = "queue"
MEASUREMENT_WAIT = "wait_over_limit"
MEASUREMENT_TRIPS = "trips_over_promise"
MEASUREMENT_RATING = "rating"
MEASUREMENT_HYGIENE = "zone_hygiene"
MEASUREMENT_OCCUPANCY = "zone_occupancy"
MEASUREMENT_FLOW = "entrance_flow"

RATING_SCORES: dict[RatingLevel, int] = {
    RatingLevel.VERY_SATISFIED: 5,
    RatingLevel.SATISFIED: 4,
    RatingLevel.BASICALLY_SATISFIED: 3,
    RatingLevel.DISSATISFIED: 2,
    RatingLevel.VERY_DISSATISFIED: 1,
}
"""Score of a rating level in the ``rating`` measurement (5 = 非常满意)."""


def facts_to_points(fact: Fact) -> list[Point]:
    """Map one fact onto time-series points (at the fact's observation time ``ts``).

    - presence → ``post_presence`` (tags hall, camera, post[, window]; fields ``on_post``
      0/1, ``summary``[, ``score``]);
    - device → ``device_status`` (tags hall, device, kind; fields ``online`` 0/1, ``reason``);
    - stats → ``edge_pipeline`` (tags hall, source; every numeric body field);
    - ticket → ``ticket_event`` (tags hall, service, event[, window, channel, outcome];
      fields ``count`` 1[, ``wait_s``]), at the event time;
    - queue → ``queue``, one point per service (tags hall, service; fields ``waiting``,
      ``longest_wait_s``);
    - wait → ``wait_over_limit`` (tags hall, service[, channel]; fields ``waited_s``,
      ``limit_s``, ``leg``);
    - trips → ``trips_over_promise`` (tags hall, service[, window]; fields ``trips``,
      ``promised``);
    - rating → ``rating`` (tags hall, level, channel[, window, attitude]; fields ``score``
      5 … 1, ``bad`` 0/1, ``evaluation``);
    - hygiene → ``zone_hygiene`` (tags hall, camera, zone[, window]; fields ``bad`` 0/1,
      ``score``);
    - occupancy → ``zone_occupancy`` (tags hall, camera, zone; fields ``count``, ``peak``,
      ``mean``, ``crowded`` 0/1), at the interval's end;
    - flow → ``entrance_flow`` (tags hall, camera, zone; fields ``in_count``,
      ``out_count``, ``interval_s``), at the interval's start.

    Ticket numbers, ticket and case ids, applicant keys and staff ids are never tags.
    """
    if isinstance(fact, PresenceFact):  # most facts: one class test, not a union's
        return [_presence_point(fact)]
    if isinstance(fact, DeviceFact | StatsFact):
        return _video_points(fact)
    if isinstance(fact, HygieneFact | OccupancyFact | FlowFact):
        return [_environment_point(fact)]
    if isinstance(fact, QueueFact):
        return [
            Point(
                MEASUREMENT_QUEUE,
                {"hall": fact.hall, "service": q.service},
                {"waiting": q.waiting, "longest_wait_s": float(q.longest_wait_s)},
                fact.ts,
                f"{fact.id}:{q.service}",
            )
            for q in fact.body.services
        ]
    tags: dict[str, str] = {"hall": fact.hall}
    fields: dict[str, FieldValue]
    if isinstance(fact, TicketFact):
        t = fact.body
        tags |= {"service": t.service, "event": t.event.value}
        _optional(tags, window=t.window, channel=t.channel, outcome=t.outcome)
        fields = {"count": 1}
        if t.wait_s is not None:
            fields["wait_s"] = float(t.wait_s)
        return [Point(MEASUREMENT_TICKET, tags, fields, t.at, fact.id)]
    if isinstance(fact, WaitFact):
        w = fact.body
        tags["service"] = w.service
        _optional(tags, channel=w.channel)
        fields = {"waited_s": float(w.waited_s), "limit_s": float(w.limit_s), "leg": w.leg}
        return [Point(MEASUREMENT_WAIT, tags, fields, fact.ts, fact.id)]
    if isinstance(fact, TripsFact):
        tr = fact.body
        tags["service"] = tr.service
        _optional(tags, window=tr.window)
        fields = {"trips": tr.trips, "promised": tr.promised}
        return [Point(MEASUREMENT_TRIPS, tags, fields, fact.ts, fact.id)]
    return [_rating_point(fact)]


def _environment_point(fact: HygieneFact | OccupancyFact | FlowFact) -> Point:
    b = fact.body
    tags = {"hall": fact.hall, "camera": b.camera, "zone": b.zone}
    fields: dict[str, FieldValue]
    if isinstance(fact, HygieneFact):
        h = fact.body
        _optional(tags, window=h.window)
        fields = {"bad": int(h.state is HygieneState.BAD), "score": float(h.score)}
        return Point(MEASUREMENT_HYGIENE, tags, fields, fact.ts, fact.id)
    if isinstance(fact, OccupancyFact):
        o = fact.body
        fields = {
            "count": o.count,
            "peak": o.peak,
            "mean": float(o.mean),
            "crowded": int(o.crowded),
        }
        return Point(MEASUREMENT_OCCUPANCY, tags, fields, fact.ts, fact.id)
    f = fact.body
    fields = {"in_count": f.in_count, "out_count": f.out_count, "interval_s": f.interval_s}
    return Point(MEASUREMENT_FLOW, tags, fields, f.start, fact.id)


def _optional(tags: dict[str, str], **values: object) -> None:
    for key, value in values.items():
        if value is not None:
            tags[key] = str(value)


def _rating_point(fact: RatingFact) -> Point:
    r = fact.body
    tags = {"hall": fact.hall, "level": r.level.value, "channel": r.channel.value}
    _optional(tags, window=r.window, attitude=r.attitude)
    fields: dict[str, FieldValue] = {
        "score": RATING_SCORES[r.level],
        "bad": int(r.level.is_bad),
        "evaluation": r.evaluation,
    }
    return Point(MEASUREMENT_RATING, tags, fields, fact.ts, fact.id)


def _presence_point(fact: PresenceFact) -> Point:
    b = fact.body
    tags = {"hall": fact.hall, "camera": b.camera, "post": b.post}
    if b.window is not None:
        tags["window"] = b.window
    fields: dict[str, FieldValue] = {"on_post": int(b.state is _ON_POST), "summary": b.summary}
    if b.score is not None:
        fields["score"] = float(b.score)
    return Point(MEASUREMENT_PRESENCE, tags, fields, fact.ts, fact.id)


_ON_POST = PostState.ON_POST


def _video_points(fact: DeviceFact | StatsFact) -> list[Point]:
    if isinstance(fact, DeviceFact):
        d = fact.body
        return [
            Point(
                MEASUREMENT_DEVICE,
                {"hall": fact.hall, "device": d.device, "kind": d.device_kind.value},
                {"online": int(d.state.value == "online"), "reason": d.reason},
                fact.ts,
                fact.id,
            )
        ]
    s = fact.body
    numeric: dict[str, FieldValue] = {
        k: v
        for k, v in s.model_dump().items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    return [
        Point(
            MEASUREMENT_EDGE, {"hall": fact.hall, "source": fact.source}, numeric, fact.ts, fact.id
        )
    ]
