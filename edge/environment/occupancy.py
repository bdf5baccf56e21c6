"""Occupancy of a zone (区域人数) as a gauge per interval, with a crowding flag.

The edge looks at a zone now and then (every few seconds) and counts the people in it
(:class:`edge.environment.people.ZonePeople`). :class:`OccupancyGauge` collects those looks
and, when an interval closes, reports one :class:`OccupancyReport`: the interval's count is
the **median** of its looks, so one look with a missed or a false detection does not move
it; the peak and the mean are reported beside it. A zone is *crowded* when that count reaches
the zone's ``crowding_at``; the report that starts a crowded spell is flagged so the edge
attaches an evidence snapshot to it (and the aggregator raises its crowding alert).

Time is the frames' ``pts`` (seconds), never the wall clock.
"""

from __future__ import annotations

import logging
import math
import statistics
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OccupancyReport:
    """The people in one zone over one interval.

    Attributes:
        zone: Zone id.
        start_pts: Start of the interval (frame time, seconds).
        end_pts: End of the interval: ``start_pts + interval_s``.
        count: Median of the interval's looks, rounded half up.
        peak: Largest count of any look.
        mean: Mean of the looks, rounded to 2 decimals.
        looks: Number of looks in the interval.
        crowded: ``count`` reached the zone's crowding threshold.
        crowding_started: Crowded now, and the previous report was not.
    """

    zone: str
    start_pts: float
    end_pts: float
    count: int
    peak: int
    mean: float
    looks: int
    crowded: bool
    crowding_started: bool


def median_half_up(values: list[int]) -> int:
    """Median of ``values`` with a half (even number of values) rounded up.

    Example:
        >>> median_half_up([1, 2]), median_half_up([3, 0, 3]), median_half_up([2, 2, 3, 4])
        (2, 3, 3)
    """
    if not values:
        raise ValueError("median of no values")
    return math.floor(statistics.median(values) + 0.5)


class OccupancyGauge:
    """Collects a zone's people counts into one report per interval.

    The first interval starts at the first look; later ones follow back to back
    (``start + k * interval_s``). An interval without a look (the camera was down) gives no
    report. A report is returned by the first look *after* its interval ended.

    Args:
        zone: Zone id.
        interval_s: Interval length in seconds (> 0).
        crowding_at: Count at which the zone is crowded, or ``None`` for never.

    Example:
        >>> g = OccupancyGauge("wait", interval_s=60, crowding_at=5)
        >>> [g.observe(t, n) for t, n in [(0, 4), (20, 5), (40, 6)]]
        [None, None, None]
        >>> r = g.observe(60, 6)  # closes 0..60 s
        >>> r.count, r.peak, r.mean, r.looks, r.crowded, r.crowding_started
        (5, 6, 5.0, 3, True, True)
        >>> g.observe(130, 6).crowding_started  # 60..120 s: crowded still, not again
        False
    """

    def __init__(self, zone: str, *, interval_s: float, crowding_at: int | None) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        if crowding_at is not None and crowding_at < 1:
            raise ValueError(f"crowding_at must be >= 1 or None, got {crowding_at}")
        self.zone = zone
        self.interval_s = float(interval_s)
        self.crowding_at = crowding_at
        self._start: float | None = None
        self._counts: list[int] = []
        self._was_crowded = False

    @property
    def crowded(self) -> bool:
        """Whether the last report was crowded."""
        return self._was_crowded

    def observe(self, pts: float, count: int) -> OccupancyReport | None:
        """Add one look; return the report of the interval this look closed, if any.

        Args:
            pts: Frame time of the look, seconds; must not go back (see :meth:`reset`).
            count: People counted in the zone.

        Returns:
            The closed interval's report, or ``None``.
        """
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        pts = float(pts)
        report = None
        if self._start is None:
            self._start = pts
        elif pts < self._start:
            logger.warning(
                "zone %s: pts went back from %.3f to %.3f; dropping the interval in progress",
                self.zone,
                self._start,
                pts,
            )
            self._start, self._counts = pts, []
        elif pts >= self._start + self.interval_s:
            report = self._close()
            skipped = math.floor((pts - self._start) / self.interval_s)
            self._start += skipped * self.interval_s
        self._counts.append(int(count))
        return report

    def _close(self) -> OccupancyReport | None:
        """Report the interval in progress (if it had looks) and start an empty one."""
        assert self._start is not None
        counts, self._counts = self._counts, []
        if not counts:
            return None
        count = median_half_up(counts)
        crowded = self.crowding_at is not None and count >= self.crowding_at
        report = OccupancyReport(
            zone=self.zone,
            start_pts=self._start,
            end_pts=self._start + self.interval_s,
            count=count,
            peak=max(counts),
            mean=round(sum(counts) / len(counts), 2),
            looks=len(counts),
            crowded=crowded,
            crowding_started=crowded and not self._was_crowded,
        )
        self._was_crowded = crowded
        if report.crowding_started:
            logger.info(
                "zone %s crowded: %d people (threshold %s)", self.zone, count, self.crowding_at
            )
        return report

    def reset(self, *, forget_crowding: bool = False) -> None:
        """Drop the interval in progress (after a camera reconnect: ``pts`` restarts).

        Args:
            forget_crowding: Also forget that the zone was crowded, so the next crowded
                report starts a new crowding spell. By default a reconnect in the middle of a
                crowded spell does not raise a second crowding alert.
        """
        self._start = None
        self._counts = []
        if forget_crowding:
            self._was_crowded = False
