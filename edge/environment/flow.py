"""People flow through an entrance (出入口客流): crossings of an entrance line per interval.

:class:`LineCounter` gets the people found in the entrance zone at each look, follows them
from look to look with a small tracker of its own, and counts a person *in* when their foot
point crosses the entrance line onto the hall's side, *out* when it crosses back.

Tracker: greedy nearest-neighbour matching of foot points between consecutive looks, each
track's point predicted by its last step; a match may be at most ``max_step`` box heights
from the prediction per look (box height makes the gate follow perspective: people far from
the camera are small and move few pixels); a new track, with no step yet to predict from,
gets twice that (someone walking 1.3 m/s moves about 0.8 box heights a second). A track
survives ``max_missed`` looks without a
match (the detector misses someone for a look), its gate growing with each missed look,
and none survives ``max_age_s`` seconds unseen (looks far apart after an outage).

Crossing: the line is a segment, not an infinite line. A track has a *side* once its foot
point is more than ``hysteresis`` box heights away from the line; while it is nearer (on
the line) its side does not change, so a person dithering on the line is not counted again
and again. When the side changes, the step from the last point seen clearly on the old side
to the point now clearly on the new side must pass through the segment: walking round its
end does not count. Each side change counts once, so a person is counted in at most once
until they are counted out (they have to go back across for that).

Time is the frames' ``pts`` (seconds), never the wall clock.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from edge.detectors.detections import Detections
from edge.regions.geometry import foot_points

logger = logging.getLogger(__name__)

Point = tuple[float, float]

#: Default gate: how far (in box heights) a person may move between two looks.
DEFAULT_MAX_STEP = 0.75
#: Default dead band on each side of the line, in box heights.
DEFAULT_HYSTERESIS = 0.1
#: Default: a track not matched for this long is dropped, however few looks that was.
DEFAULT_MAX_AGE_S = 5.0


@dataclass(frozen=True, slots=True)
class FlowReport:
    """People through one entrance line over one interval.

    Attributes:
        zone: Zone id of the entrance.
        start_pts: Start of the interval (frame time, seconds).
        end_pts: End of the interval: ``start_pts + interval_s``.
        in_count: People who crossed into the hall.
        out_count: People who crossed out of it.
    """

    zone: str
    start_pts: float
    end_pts: float
    in_count: int
    out_count: int


@dataclass
class _Track:
    """One person followed across looks (mutable, private to the counter)."""

    id: int
    point: np.ndarray  # foot point at the last match, frame pixels
    velocity: np.ndarray  # pixels per look
    height: float  # box height at the last match
    seen_pts: float  # frame time of the last match
    misses: int = 0
    side: int = 0  # +1 inside, -1 outside, 0 not yet clear of the line
    anchor: np.ndarray | None = None  # last point clearly on ``side``


class LineCounter:
    """Counts people crossing an entrance line, one report per interval.

    Args:
        zone: Zone id of the entrance.
        line: The line's two points in the configured image's pixels.
        config_size: ``(width, height)`` of the configured image.
        inside: Side of the line, looking from its first point to its second (on the
            image as displayed), that is inside the hall.
        interval_s: Report interval, seconds (> 0).
        max_step: Largest move between two looks, in box heights.
        max_missed: Looks a track survives without a match.
        hysteresis: Dead band on each side of the line, in box heights.
        max_age_s: A track not matched for this many seconds is dropped (looks may be far
            apart, e.g. after the camera was down).

    Example:
        >>> import numpy as np
        >>> counter = LineCounter("door", ((50, 100), (50, 0)), (100, 100), "right",
        ...                       interval_s=60)
        >>> def person(x: float) -> Detections:  # a 40-px-tall person standing at x
        ...     return Detections(np.array([[x - 10, 40, x + 10, 80]], np.float32),
        ...                       np.array([0.9], np.float32), np.array([1], np.int32))
        >>> for t, x in enumerate([20, 30, 40, 50, 60, 70]):
        ...     _ = counter.observe(float(t), (100, 100), person(x))
        >>> report = counter.observe(60.0, (100, 100), Detections.empty())
        >>> report.in_count, report.out_count
        (1, 0)
    """

    def __init__(
        self,
        zone: str,
        line: tuple[Point, Point],
        config_size: tuple[int, int],
        inside: Literal["left", "right"],
        *,
        interval_s: float,
        max_step: float = DEFAULT_MAX_STEP,
        max_missed: int = 2,
        hysteresis: float = DEFAULT_HYSTERESIS,
        max_age_s: float = DEFAULT_MAX_AGE_S,
    ) -> None:
        if inside not in ("left", "right"):
            raise ValueError(f"inside must be 'left' or 'right', got {inside!r}")
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        if max_step <= 0 or max_age_s <= 0 or max_missed < 0 or hysteresis < 0:
            raise ValueError("max_step and max_age_s must be > 0, max_missed and hysteresis >= 0")
        p1, p2 = np.asarray(line[0], np.float64), np.asarray(line[1], np.float64)
        if float(np.hypot(*(p2 - p1))) == 0.0:
            raise ValueError("the entrance line's two points are the same")
        self.zone = zone
        self.interval_s = float(interval_s)
        self.max_step = float(max_step)
        self.max_missed = int(max_missed)
        self.hysteresis = float(hysteresis)
        self.max_age_s = float(max_age_s)
        self._line_config = (p1, p2)
        self._config_size = config_size
        # Cross product > 0 (image y pointing down) is the right side as displayed.
        self._inside_sign = 1.0 if inside == "right" else -1.0
        self._frame_size: tuple[int, int] | None = None
        self._p1, self._p2 = p1, p2
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._start: float | None = None
        self._looks = 0
        self._in = 0
        self._out = 0

    @property
    def active_tracks(self) -> int:
        """People followed at the moment."""
        return len(self._tracks)

    def observe(
        self, pts: float, frame_size: tuple[int, int], people: Detections
    ) -> FlowReport | None:
        """Add one look at the entrance; return the report of the interval it closed, if any.

        Args:
            pts: Frame time of the look, seconds.
            frame_size: ``(width, height)`` of the frame the detections are in.
            people: The people in the entrance zone, ``xyxy`` in frame pixels.

        Returns:
            The closed interval's report, or ``None``.
        """
        pts = float(pts)
        report = self._advance_interval(pts)
        self._use_frame_size(frame_size)
        self._looks += 1
        self._track(pts, people)
        return report

    def reset(self) -> None:
        """Forget everyone followed and the interval's start (camera reconnect: ``pts``
        restarts). Crossings counted but not reported yet go into the next report."""
        self._tracks = []
        self._start = None
        self._looks = 0

    # --- intervals ------------------------------------------------------------------------

    def _advance_interval(self, pts: float) -> FlowReport | None:
        if self._start is None:
            self._start = pts
            return None
        if pts < self._start:
            logger.warning(
                "entrance %s: pts went back from %.3f to %.3f; restarting its tracks",
                self.zone,
                self._start,
                pts,
            )
            self.reset()
            self._start = pts
            return None
        if pts < self._start + self.interval_s:
            return None
        report = None
        if self._looks:
            report = FlowReport(
                zone=self.zone,
                start_pts=self._start,
                end_pts=self._start + self.interval_s,
                in_count=self._in,
                out_count=self._out,
            )
            self._in = self._out = 0
        self._looks = 0
        self._start += math.floor((pts - self._start) / self.interval_s) * self.interval_s
        return report

    def _use_frame_size(self, frame_size: tuple[int, int]) -> None:
        if frame_size == self._frame_size:
            return
        if self._frame_size is not None:
            logger.info(
                "entrance %s: frame size %s -> %s; restarting its tracks",
                self.zone,
                self._frame_size,
                frame_size,
            )
            self._tracks = []
        self._frame_size = frame_size
        scale = np.array(
            [frame_size[0] / self._config_size[0], frame_size[1] / self._config_size[1]]
        )
        self._p1, self._p2 = self._line_config[0] * scale, self._line_config[1] * scale

    # --- tracking -------------------------------------------------------------------------

    def _track(self, pts: float, people: Detections) -> None:
        self._tracks = [t for t in self._tracks if pts - t.seen_pts <= self.max_age_s]
        points = foot_points(people.xyxy).astype(np.float64)
        heights = np.maximum(people.xyxy[:, 3] - people.xyxy[:, 1], 1.0).astype(np.float64)
        pairs: list[tuple[float, int, int]] = []
        for ti, track in enumerate(self._tracks):
            predicted = track.point + track.velocity * (track.misses + 1)
            gate = self.max_step * (track.misses + 1)
            if not np.any(track.velocity):
                gate *= 2  # a new track has no step to predict with: look twice as far
            for di in range(len(points)):
                dist = float(np.hypot(*(points[di] - predicted)))
                if dist <= gate * max(track.height, float(heights[di])):
                    pairs.append((dist, ti, di))
        pairs.sort()
        used_tracks: set[int] = set()
        used_people: set[int] = set()
        for _, ti, di in pairs:
            if ti in used_tracks or di in used_people:
                continue
            used_tracks.add(ti)
            used_people.add(di)
            self._move(self._tracks[ti], pts, points[di], float(heights[di]))
        kept: list[_Track] = []
        for ti, track in enumerate(self._tracks):
            if ti not in used_tracks:
                track.misses += 1
            if track.misses <= self.max_missed:
                kept.append(track)
        for di in range(len(points)):
            if di not in used_people:
                kept.append(self._new_track(pts, points[di], float(heights[di])))
        self._tracks = kept

    def _new_track(self, pts: float, point: np.ndarray, height: float) -> _Track:
        track = _Track(self._next_id, point, np.zeros(2), height, seen_pts=pts)
        self._next_id += 1
        side = self._side(point, height)
        if side:
            track.side, track.anchor = side, point
        return track

    def _move(self, track: _Track, pts: float, point: np.ndarray, height: float) -> None:
        looks = track.misses + 1
        step = (point - track.point) / looks
        track.velocity = step if not track.velocity.any() else 0.5 * (track.velocity + step)
        track.point, track.height, track.misses, track.seen_pts = point, height, 0, pts
        side = self._side(point, height)
        if side == 0:
            return
        if track.side == 0 or track.anchor is None:
            track.side, track.anchor = side, point
            return
        if side != track.side:
            if self._through_segment(track.anchor, point):
                if side > 0:
                    self._in += 1
                else:
                    self._out += 1
                logger.debug(
                    "entrance %s: track %d crossed %s",
                    self.zone,
                    track.id,
                    "in" if side > 0 else "out",
                )
            track.side = side
        track.anchor = point

    def _signed_distance(self, point: np.ndarray) -> float:
        """Distance from the infinite line, positive on the inside."""
        d = self._p2 - self._p1
        r = point - self._p1
        cross = float(d[0] * r[1] - d[1] * r[0])
        return self._inside_sign * cross / float(np.hypot(*d))

    def _side(self, point: np.ndarray, height: float) -> int:
        dist = self._signed_distance(point)
        if abs(dist) <= self.hysteresis * height:
            return 0
        return 1 if dist > 0 else -1

    def _through_segment(self, a: np.ndarray, b: np.ndarray) -> bool:
        """Whether the step ``a`` → ``b`` (on opposite sides) crosses the line's segment."""
        da, db = self._signed_distance(a), self._signed_distance(b)
        if da == db:
            return False
        x = a + (b - a) * (da / (da - db))
        d = self._p2 - self._p1
        t = float(np.dot(x - self._p1, d) / np.dot(d, d))
        return 0.0 <= t <= 1.0
