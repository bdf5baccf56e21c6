"""Bucketed series for the dashboard's charts, computed from time-series points.

Pure functions over :class:`~aggregator.store.timeseries.Point` lists (the route in
``aggregator/api/routes/charts.py`` queries the store): buckets are hall-local quarter
hours, hours or days, so a day chart of a Shanghai hall starts at 00:00 Beijing time.

- :func:`wait_series` (排队等候): longest current wait and most people waiting per bucket
  (``queue`` gauges), mean wait of first calls (``ticket_event`` ``called``), waits over
  the limit (``wait_over_limit``).
- :func:`occupancy_series` (区域人数): peak and mean people per counted zone.
- :func:`off_post_series` (离岗分钟): minutes of 离岗 in service time, per post and in all.
- :func:`rating_series` (好差评): first evaluations, 差评 among them, mean score (5 … 1).

Example:
    >>> from zoneinfo import ZoneInfo
    >>> sh = ZoneInfo("Asia/Shanghai")
    >>> b = Buckets.cover(datetime(2026, 11, 2, 1, 0, tzinfo=UTC),
    ...                   datetime(2026, 11, 2, 3, 0, tzinfo=UTC), sh, "hour")
    >>> [s.strftime("%H:%M") for s in b.starts]
    ['09:00', '10:00']
    >>> b.index(datetime(2026, 11, 2, 2, 30, tzinfo=UTC))
    1
"""

from __future__ import annotations

import bisect
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from aggregator.store.timeseries import Point
from hallwatch.config.models import HallConfig
from hallwatch.service_time import service_periods

logger = logging.getLogger(__name__)

BucketSize = Literal["15min", "hour", "day"]
Unit = Literal["min", "people", "count", "score"]


@dataclass(frozen=True, slots=True)
class Buckets:
    """Consecutive hall-local buckets covering ``[start, end)``.

    Attributes:
        starts: Bucket starts, aware in the hall's timezone, oldest first.
        start: Start of the covered range (UTC; the first bucket may begin earlier).
        end: End of the covered range (UTC, exclusive).
        size: ``15min``, ``hour`` or ``day``.
    """

    starts: tuple[datetime, ...]
    start: datetime
    end: datetime
    size: BucketSize

    @classmethod
    def cover(cls, start: datetime, end: datetime, tz: ZoneInfo, size: BucketSize) -> Buckets:
        """The buckets overlapping ``[start, end)`` (the first may begin before ``start``)."""
        starts: list[datetime] = []
        current = floor_local(start, tz, size)
        while current < end:
            starts.append(current)
            if size == "day":
                nxt = current.date() + timedelta(days=1)
                current = datetime.combine(nxt, time(0), tzinfo=tz)
            else:  # step in UTC, then floor: right across DST changes
                step = timedelta(minutes=15) if size == "15min" else timedelta(hours=1)
                current = floor_local(current.astimezone(UTC) + step, tz, size)
        return cls(tuple(starts), start.astimezone(UTC), end.astimezone(UTC), size)

    def __len__(self) -> int:
        return len(self.starts)

    def bounds(self, i: int) -> tuple[datetime, datetime]:
        """UTC ``[from, to)`` of bucket ``i`` within the range (clipped to :attr:`start`
        and :attr:`end`)."""
        lo = max(self.starts[i].astimezone(UTC), self.start)
        hi = self.starts[i + 1].astimezone(UTC) if i + 1 < len(self.starts) else self.end
        return lo, hi

    def index(self, t: datetime) -> int | None:
        """The bucket holding ``t``, or None outside the range."""
        if not self.starts or t < self.start or t >= self.end:
            return None
        return bisect.bisect_right(self.starts, t) - 1


def floor_local(t: datetime, tz: ZoneInfo, size: BucketSize) -> datetime:
    """Start of the hall-local quarter hour, hour or day holding ``t`` (aware, in ``tz``).

    >>> sh = ZoneInfo("Asia/Shanghai")
    >>> floor_local(datetime(2026, 11, 2, 16, 37, tzinfo=UTC), sh, "day").isoformat()
    '2026-11-03T00:00:00+08:00'
    >>> floor_local(datetime(2026, 11, 2, 16, 37, tzinfo=UTC), sh, "15min").isoformat()
    '2026-11-03T00:30:00+08:00'
    """
    local = t.astimezone(tz)
    if size == "day":
        return datetime.combine(local.date(), time(0), tzinfo=tz)
    if size == "15min":
        return local.replace(minute=local.minute // 15 * 15, second=0, microsecond=0)
    return local.replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class Series:
    """One line or bar series: a value per bucket (None: no data in that bucket).

    Attributes:
        key: What is measured (``longest_wait_min``, ``peak``, ``off_post_min``, ``bad`` …).
        subject: The zone or post it is about; None for the whole hall.
        name: Display name of the subject ("" for the hall).
        unit: ``min``, ``people``, ``count`` or ``score``.
        values: One value per bucket.
    """

    key: str
    subject: str | None
    name: str
    unit: Unit
    values: tuple[float | None, ...]


class _Acc:
    """Per-bucket accumulator: max, sum and count."""

    def __init__(self, n: int) -> None:
        self.max: list[float | None] = [None] * n
        self.sum = [0.0] * n
        self.count = [0] * n

    def add(self, i: int, value: float) -> None:
        current = self.max[i]
        self.max[i] = value if current is None else max(current, value)
        self.sum[i] += value
        self.count[i] += 1

    def means(self, digits: int = 2) -> tuple[float | None, ...]:
        return tuple(
            round(s / c, digits) if c else None for s, c in zip(self.sum, self.count, strict=True)
        )

    def counts(self) -> tuple[float | None, ...]:
        return tuple(float(c) for c in self.count)

    def maxima(self, scale: float = 1.0, digits: int = 2) -> tuple[float | None, ...]:
        return tuple(None if m is None else round(m * scale, digits) for m in self.max)


def _number(point: Point, name: str) -> float | None:
    value = point.fields.get(name)
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


def _fill(
    buckets: Buckets, points: Iterable[Point], field: str, *, where: Callable[[Point], bool]
) -> _Acc:
    acc = _Acc(len(buckets))
    for point in points:
        i = buckets.index(point.time)
        value = _number(point, field)
        if i is not None and value is not None and where(point):
            acc.add(i, value)
    return acc


def _always(_point: Point) -> bool:
    return True


def wait_series(
    buckets: Buckets,
    queue: Sequence[Point],
    tickets: Sequence[Point],
    over_limit: Sequence[Point],
) -> list[Series]:
    """排队等候: ``longest_wait_min`` (max of the gauges' longest current wait),
    ``waiting_peak`` (most tickets waiting at one gauge, all services summed),
    ``mean_wait_min`` (mean wait of tickets first called), ``over_limit`` (waits that
    passed the limit, counted when they passed it)."""
    longest = _fill(buckets, queue, "longest_wait_s", where=_always)
    per_gauge: dict[datetime, float] = defaultdict(float)
    for point in queue:
        per_gauge[point.time] += _number(point, "waiting") or 0.0
    waiting = _Acc(len(buckets))
    for at, total in per_gauge.items():
        i = buckets.index(at)
        if i is not None:
            waiting.add(i, total)
    called = _fill(buckets, tickets, "wait_s", where=lambda p: p.tags.get("event") == "called")
    over = _Acc(len(buckets))
    for point in over_limit:
        i = buckets.index(point.time)
        if i is not None:
            over.add(i, 1.0)
    mean_wait = tuple(None if v is None else round(v / 60, 1) for v in called.means(digits=6))
    return [
        Series("longest_wait_min", None, "", "min", longest.maxima(1 / 60, 1)),
        Series("mean_wait_min", None, "", "min", mean_wait),
        Series("waiting_peak", None, "", "people", waiting.maxima(digits=0)),
        Series("over_limit", None, "", "count", over.counts()),
    ]


def occupancy_series(
    buckets: Buckets, points: Sequence[Point], zones: Sequence[tuple[str, str]]
) -> list[Series]:
    """区域人数: per zone ``peak`` (most people at one look) and ``mean`` (mean of the
    intervals' means), for the given ``(zone id, name)`` pairs, in that order."""
    by_zone: dict[str, list[Point]] = defaultdict(list)
    for point in points:
        by_zone[point.tags.get("zone", "")].append(point)
    out: list[Series] = []
    for zone_id, name in zones:
        rows = by_zone.get(zone_id, [])
        peak = _fill(buckets, rows, "peak", where=_always)
        mean = _fill(buckets, rows, "mean", where=_always)
        out.append(Series("peak", zone_id, name, "people", peak.maxima(digits=0)))
        out.append(Series("mean", zone_id, name, "people", mean.means(digits=1)))
    return out


def rating_series(buckets: Buckets, points: Sequence[Point]) -> list[Series]:
    """好差评 (first evaluations only; a 二次评价 revises a case, it is not a new rating):
    ``ratings`` (count), ``bad`` (差评 count), ``mean_score`` (5 非常满意 … 1)."""
    first = [p for p in points if _number(p, "evaluation") in (None, 1.0)]
    scores = _fill(buckets, first, "score", where=_always)
    bad = _Acc(len(buckets))
    for point in first:
        i = buckets.index(point.time)
        if i is not None and _number(point, "bad"):
            bad.add(i, 1.0)
    return [
        Series("ratings", None, "", "count", scores.counts()),
        Series("bad", None, "", "count", bad.counts()),
        Series("mean_score", None, "", "score", scores.means(digits=2)),
    ]


@dataclass(frozen=True, slots=True)
class OffPostRun:
    """A stretch of 离岗 of one post, as the presence points show it (UTC)."""

    post: str
    start: datetime
    end: datetime


def off_post_runs(
    points: Sequence[Point], *, max_gap: timedelta, until: datetime
) -> list[OffPostRun]:
    """Stretches where a post's latest presence point said ``off_post``.

    A point's state holds until the post's next point, at most ``max_gap`` (no report for
    longer: the edge or camera was down, the state is unknown) and at most ``until``.
    """
    by_post: dict[str, list[Point]] = defaultdict(list)
    for point in points:
        by_post[point.tags.get("post", "")].append(point)
    runs: list[OffPostRun] = []
    for post, rows in by_post.items():
        rows.sort(key=lambda p: p.time)
        start: datetime | None = None
        held = rows[0].time
        for point in rows:
            if start is not None and point.time > held:  # a gap: the run ended unseen
                runs.append(OffPostRun(post, start, held))
                start = None
            if start is not None and _number(point, "on_post"):
                runs.append(OffPostRun(post, start, point.time))
                start = None
            elif start is None and not _number(point, "on_post"):
                start = point.time
            held = min(point.time + max_gap, until)
        if start is not None and held > start:
            runs.append(OffPostRun(post, start, held))
    return runs


def off_post_series(
    buckets: Buckets,
    points: Sequence[Point],
    hall: HallConfig,
    *,
    now: datetime,
) -> list[Series]:
    """离岗分钟: minutes each post was off post in service time (the hall's hours, lunch
    excluded), per bucket: ``off_post_min`` for the hall, then one per configured post
    (``subject`` the post id), in file order.

    ``points`` should start ``max_gap`` before the first bucket so a 离岗 that began
    earlier is counted from the range start.
    """
    max_gap = timedelta(seconds=3 * hall.thresholds.summary_interval_s + 1)
    until = min(buckets.end, now)
    n = len(buckets)
    per_post: dict[str, list[float]] = defaultdict(lambda: [0.0] * n)
    for run in off_post_runs(points, max_gap=max_gap, until=until):
        for lo, hi in service_periods(hall, run.start, run.end):
            _spread(buckets, lo, hi, per_post[run.post])
    total = [0.0] * n
    for seconds in per_post.values():
        total = [a + b for a, b in zip(total, seconds, strict=True)]
    begun = sum(1 for i in range(n) if buckets.bounds(i)[0] < until)

    def minutes(seconds: list[float]) -> tuple[float | None, ...]:
        # buckets after now have no data yet (None), earlier ones are 0 when nobody left
        return tuple(round(s / 60, 1) if i < begun else None for i, s in enumerate(seconds))

    out = [Series("off_post_min", None, "", "min", minutes(total))]
    for post in hall.posts:
        out.append(Series("off_post_min", post.id, post.name, "min", minutes(per_post[post.id])))
    return out


def _spread(buckets: Buckets, lo: datetime, hi: datetime, into: list[float]) -> None:
    """Add the seconds of ``[lo, hi)`` to the buckets they fall in."""
    first = buckets.index(max(lo, buckets.start))
    if first is None:
        return
    for i in range(first, len(buckets)):
        a, b = buckets.bounds(i)
        if a >= hi:
            break
        overlap = (min(b, hi) - max(a, lo)).total_seconds()
        if overlap > 0:
            into[i] += overlap
