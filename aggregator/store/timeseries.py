"""The time-series store: every fact as points, InfluxDB-style.

A :class:`Point` is a measurement with low-cardinality tags (hall, camera, post, window,
kind), fields and a UTC time. Its ``id`` (the fact id) is a dedup key, never a tag:
writing the same id twice stores one point, so replayed facts are idempotent.

The embedded backend is :class:`SqliteTimeSeriesStore`. A line-protocol backend (InfluxDB
or VictoriaMetrics through ``influxdb-client``) implements the same
:class:`TimeSeriesStore` protocol; there the id maps onto the point's timestamp and tag
set, which the server already deduplicates.

Example:
    >>> from datetime import UTC, datetime
    >>> store = SqliteTimeSeriesStore(":memory:")
    >>> t = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
    >>> p = Point("post_presence", {"hall": "h1", "post": "w1"}, {"on_post": 1}, t, "f1")
    >>> store.write([p, p])
    >>> len(store.query("post_presence", hall="h1", start=t, end=t.replace(hour=3)))
    1
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

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

FieldValue = float | int | str | bool

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


@dataclass(frozen=True, slots=True)
class Point:
    """One time-series point.

    Attributes:
        measurement: Measurement name, e.g. ``post_presence``.
        tags: Low-cardinality indexed labels (hall, camera, post, window, kind).
        fields: Values.
        time: UTC time of the point.
        id: Dedup key (the fact id): the same id written twice is one point.
    """

    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    time: datetime
    id: str = field(default="")


@runtime_checkable
class TimeSeriesStore(Protocol):
    """Where facts go as time series. Implementations must be thread-safe."""

    def write(self, points: Sequence[Point]) -> None:
        """Store points; a point whose id is already stored is ignored."""
        ...

    def query(
        self,
        measurement: str,
        *,
        hall: str,
        start: datetime,
        end: datetime,
        tags: Mapping[str, str] | None = None,
    ) -> list[Point]:
        """Points of one measurement and hall with ``start <= time < end``, oldest first."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def _micros(dt: datetime) -> int:
    if dt.tzinfo is None:
        raise ValueError("time-series times must be timezone-aware")
    delta = dt.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_micros(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    measurement TEXT NOT NULL,
    id TEXT NOT NULL,
    hall TEXT NOT NULL,
    time_us INTEGER NOT NULL,
    tags TEXT NOT NULL,
    fields TEXT NOT NULL,
    PRIMARY KEY (measurement, id)
);
CREATE INDEX IF NOT EXISTS points_by_time ON points (measurement, hall, time_us);
"""


class SqliteTimeSeriesStore:
    """The embedded time-series backend: one SQLite table, WAL mode.

    Args:
        path: SQLite file (its folder is created) or ``":memory:"``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = path
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        with self._lock:
            if str(path) != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)
            self._conn.commit()

    def write(self, points: Sequence[Point]) -> None:
        """Store points, ignoring ids already stored (per measurement).

        Raises:
            ValueError: A point has no id or a naive time.
        """
        rows = []
        for p in points:
            if not p.id:
                raise ValueError(f"point of {p.measurement} has no id")
            rows.append(
                (
                    p.measurement,
                    p.id,
                    p.tags.get("hall", ""),
                    _micros(p.time),
                    json.dumps(p.tags, sort_keys=True, ensure_ascii=False),
                    json.dumps(p.fields, sort_keys=True, ensure_ascii=False),
                )
            )
        if not rows:
            return
        with self._lock:
            self._conn.executemany(
                "INSERT OR IGNORE INTO points (measurement, id, hall, time_us, tags, fields)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            self._conn.commit()

    def query(
        self,
        measurement: str,
        *,
        hall: str,
        start: datetime,
        end: datetime,
        tags: Mapping[str, str] | None = None,
    ) -> list[Point]:
        """Points of one measurement and hall in ``[start, end)``, oldest first.

        Args:
            measurement: Measurement name.
            hall: Hall id (the ``hall`` tag).
            start: Inclusive lower bound (aware).
            end: Exclusive upper bound (aware).
            tags: Further tags every returned point must carry with these values.
        """
        with self._lock:
            cur = self._conn.execute(
                "SELECT id, time_us, tags, fields FROM points WHERE measurement = ? AND"
                " hall = ? AND time_us >= ? AND time_us < ? ORDER BY time_us, id",
                (measurement, hall, _micros(start), _micros(end)),
            )
            rows = cur.fetchall()
        out: list[Point] = []
        for pid, time_us, tags_json, fields_json in rows:
            point_tags: dict[str, str] = json.loads(tags_json)
            if tags and any(point_tags.get(k) != v for k, v in tags.items()):
                continue
            out.append(
                Point(measurement, point_tags, json.loads(fields_json), _from_micros(time_us), pid)
            )
        return out

    def count(self) -> int:
        """Number of points stored (all measurements)."""
        with self._lock:
            (n,) = self._conn.execute("SELECT COUNT(*) FROM points").fetchone()
        return int(n)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()


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
    if isinstance(fact, PresenceFact | DeviceFact | StatsFact):
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


def _video_points(fact: PresenceFact | DeviceFact | StatsFact) -> list[Point]:
    if isinstance(fact, PresenceFact):
        b = fact.body
        tags = {"hall": fact.hall, "camera": b.camera, "post": b.post}
        if b.window is not None:
            tags["window"] = b.window
        fields: dict[str, FieldValue] = {
            "on_post": int(b.state is PostState.ON_POST),
            "summary": b.summary,
        }
        if b.score is not None:
            fields["score"] = float(b.score)
        return [Point(MEASUREMENT_PRESENCE, tags, fields, fact.ts, fact.id)]
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
