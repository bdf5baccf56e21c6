"""Occupancy of a zone: the gauge's intervals and flags, the zone geometry helpers, tiling,
and people counted by the real detector on generated waiting areas with known numbers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pytest

from edge.detectors import Detections, Detector, create_detector
from edge.environment.occupancy import OccupancyGauge, OccupancyReport, median_half_up
from edge.environment.people import ZonePeople, merge_tiles, tile_boxes
from edge.regions.geometry import boxes_in_polygon, foot_points, points_in_polygon
from edge.regions.post_region import PostRegion
from edge.sources.frame import Frame
from tests.support.crowd_scenes import WAITING_SIZE, waiting_scene

NOW = datetime(2024, 6, 3, 2, 0, tzinfo=UTC)


def dets(*boxes: tuple[float, float, float, float], score: float = 0.9) -> Detections:
    if not boxes:
        return Detections.empty()
    return Detections(
        np.array(boxes, np.float32),
        np.full(len(boxes), score, np.float32),
        np.ones(len(boxes), np.int32),
    )


# --- the gauge ----------------------------------------------------------------------------


def feed(gauge: OccupancyGauge, looks: list[tuple[float, int]]) -> list[OccupancyReport]:
    reports = [gauge.observe(t, n) for t, n in looks]
    return [r for r in reports if r is not None]


@pytest.mark.parametrize(
    ("counts", "count", "peak", "mean"),
    [
        ([3, 3, 9, 3], 3, 9, 4.5),  # one false detection does not move the median
        ([4, 4, 0, 4, 4], 4, 4, 3.2),  # nor one look that missed everyone
        ([2, 3], 3, 3, 2.5),  # a half rounds up
        ([1, 2, 2, 1], 2, 2, 1.5),
        ([0, 0, 0], 0, 0, 0.0),
        ([1, 1, 2], 1, 2, 1.33),
        ([7], 7, 7, 7.0),
    ],
)
def test_gauge_reports_median_peak_mean(
    counts: list[int], count: int, peak: int, mean: float
) -> None:
    gauge = OccupancyGauge("wait", interval_s=60, crowding_at=None)
    looks = [(100.0 + 5 * i, n) for i, n in enumerate(counts)] + [(160.0, 0)]
    (report,) = feed(gauge, looks)
    assert (report.count, report.peak, report.mean) == (count, peak, mean)
    assert report.looks == len(counts)
    assert (report.start_pts, report.end_pts) == (100.0, 160.0)
    assert report.zone == "wait" and not report.crowded and not report.crowding_started


def test_median_half_up_rejects_nothing() -> None:
    assert median_half_up([5, 1, 3]) == 3
    with pytest.raises(ValueError):
        median_half_up([])


def test_crowding_flags_and_crowding_started_once_per_spell() -> None:
    gauge = OccupancyGauge("wait", interval_s=10, crowding_at=5)
    # One look per interval, so each interval's count is that look's.
    counts = [4, 5, 6, 9, 4, 5, 5]
    reports = feed(gauge, [(10.0 * i, n) for i, n in enumerate([*counts, 0])])
    assert [r.count for r in reports] == counts
    assert [r.crowded for r in reports] == [False, True, True, True, False, True, True]
    assert [r.crowding_started for r in reports] == [False, True, False, False, False, True, False]
    assert gauge.crowded


def test_crowding_needs_the_median_not_one_peak() -> None:
    gauge = OccupancyGauge("wait", interval_s=60, crowding_at=5)
    (report,) = feed(gauge, [(0, 2), (20, 8), (40, 2), (60, 0)])
    assert report.peak == 8 and report.count == 2 and not report.crowded


def test_intervals_follow_back_to_back_and_gaps_give_no_report() -> None:
    gauge = OccupancyGauge("wait", interval_s=60, crowding_at=None)
    reports = feed(gauge, [(5, 1), (66, 2), (70, 2), (250, 3), (300, 3), (310, 0)])
    # 5..65 → [1]; 65..125 → [2, 2]; 125..245 had no looks; 245..305 → [3, 3].
    assert [(r.start_pts, r.end_pts, r.count, r.looks) for r in reports] == [
        (5.0, 65.0, 1, 1),
        (65.0, 125.0, 2, 2),
        (245.0, 305.0, 3, 2),
    ]


def test_reset_drops_the_interval_but_keeps_the_crowding_spell() -> None:
    gauge = OccupancyGauge("wait", interval_s=10, crowding_at=3)
    assert [r.crowding_started for r in feed(gauge, [(0, 4), (10, 4)])] == [True]
    gauge.reset()  # reconnect: pts restart at 0; the 4 seen at 10 s is dropped
    reports = feed(gauge, [(0, 5), (5, 5), (10, 1)])
    assert [(r.start_pts, r.count, r.looks) for r in reports] == [(0.0, 5, 2)]
    assert reports[0].crowded and not reports[0].crowding_started  # same spell, no 2nd alert
    gauge.reset(forget_crowding=True)
    (again,) = feed(gauge, [(0, 5), (10, 0)])
    assert again.crowding_started


def test_pts_going_back_restarts_the_interval() -> None:
    gauge = OccupancyGauge("wait", interval_s=10, crowding_at=None)
    assert feed(gauge, [(100, 2), (105, 2), (3, 1), (13, 0)]) == [
        OccupancyReport("wait", 3.0, 13.0, 1, 1, 1.0, 1, False, False)
    ]


def test_gauge_rejects_bad_settings_and_counts() -> None:
    with pytest.raises(ValueError):
        OccupancyGauge("wait", interval_s=0, crowding_at=None)
    with pytest.raises(ValueError):
        OccupancyGauge("wait", interval_s=60, crowding_at=0)
    with pytest.raises(ValueError):
        OccupancyGauge("wait", interval_s=60, crowding_at=None).observe(0, -1)


# --- geometry -----------------------------------------------------------------------------

SQUARE = [(0.0, 0.0), (100.0, 0.0), (100.0, 100.0), (0.0, 100.0)]
TRIANGLE = [(0.0, 0.0), (100.0, 0.0), (0.0, 100.0)]


def test_points_in_polygon() -> None:
    pts = np.array([[50, 50], [150, 50], [-1, 50], [20, 20], [80, 80]], np.float32)
    assert points_in_polygon(pts, SQUARE).tolist() == [True, False, False, True, True]
    assert points_in_polygon(pts, TRIANGLE).tolist() == [False, False, False, True, False]
    assert points_in_polygon(np.zeros((0, 2)), SQUARE).shape == (0,)


@pytest.mark.parametrize(
    ("box", "min_overlap", "expected"),
    [
        ((10, 10, 50, 50), 1.0, True),  # wholly inside
        ((50, 50, 150, 150), 0.25, True),  # a quarter inside
        ((50, 50, 150, 150), 0.3, False),
        ((90, 0, 190, 100), 0.05, True),  # a tenth inside
        ((90, 0, 190, 100), 0.2, False),
        ((200, 200, 250, 250), 0.0, False),  # outside: no pixel in, even at 0
        ((10, 10, 10, 50), 0.0, False),  # no area
    ],
)
def test_boxes_in_polygon(
    box: tuple[float, float, float, float], min_overlap: float, expected: bool
) -> None:
    got = boxes_in_polygon(np.array([box], np.float32), SQUARE, min_overlap)
    assert got.tolist() == [expected]


def test_boxes_in_polygon_follows_the_polygon_not_its_bounding_box() -> None:
    # The triangle's lower-right half is empty: a box there is in the bounding box only.
    boxes = np.array([[60, 60, 100, 100], [0, 0, 40, 40]], np.float32)
    assert boxes_in_polygon(boxes, TRIANGLE, 0.5).tolist() == [False, True]
    with pytest.raises(ValueError):
        boxes_in_polygon(boxes, TRIANGLE, 1.5)


def test_tiles_cover_the_crop_with_overlap() -> None:
    assert tile_boxes(300, 280) == tile_boxes(300, 280, max_side=400)  # small: one tile
    assert len(tile_boxes(300, 280)) == 1
    for width, height, max_side in [(1210, 523, 400), (900, 300, None), (200, 700, None)]:
        tiles = tile_boxes(width, height, max_side)
        assert len(tiles) > 1
        covered = np.zeros((height, width), bool)
        for t in tiles:
            assert 0 <= t.x1 < t.x2 <= width and 0 <= t.y1 < t.y2 <= height
            assert max(t.width, t.height) <= 1.3 * min(t.width, t.height) + 1
            covered[t.y1 : t.y2, t.x1 : t.x2] = True
        assert covered.all()


def test_merge_tiles_keeps_one_box_per_person() -> None:
    # Tile A sees person 1 whole and person 2 cut by its right edge; tile B sees person 2
    # whole, and person 3. Everything is already in crop pixels.
    a = dets((10, 10, 60, 120), (170, 20, 200, 120))
    b = dets((160, 18, 230, 122), (300, 10, 350, 120))
    merged = merge_tiles([a, b], [np.array([False, True]), np.array([False, False])])
    assert sorted(merged.xyxy[:, 0].tolist()) == [10.0, 160.0, 300.0]
    # The same person found whole in both tiles is kept once (the better score).
    c = Detections(
        np.array([[100, 10, 150, 120]], np.float32),
        np.array([0.6], np.float32),
        np.ones(1, np.int32),
    )
    d = Detections(
        np.array([[102, 12, 151, 119]], np.float32),
        np.array([0.8], np.float32),
        np.ones(1, np.int32),
    )
    merged = merge_tiles([c, d], [np.zeros(1, bool), np.zeros(1, bool)])
    assert len(merged) == 1 and float(merged.confidence[0]) == pytest.approx(0.8)
    # Two pieces of one person, both cut (by the edges of two tiles in a column): the
    # better-scored small piece is mostly inside the other, which goes too.
    pieces = Detections(
        np.array([[949, 320, 974, 356], [955, 290, 975, 352]], np.float32),
        np.array([0.64, 0.61], np.float32),
        np.ones(2, np.int32),
    )
    assert len(merge_tiles([pieces[:1], pieces[1:]], [np.ones(1, bool), np.ones(1, bool)])) == 1
    assert len(merge_tiles([pieces[:1], pieces[1:]], [np.zeros(1, bool), np.zeros(1, bool)])) == 2
    # Two people side by side, neither cut: both stay.
    e = dets((100, 10, 150, 120), (140, 10, 190, 120))
    assert len(merge_tiles([e], [np.zeros(2, bool)])) == 2


# --- ZonePeople with a scripted detector --------------------------------------------------


class Scripted:
    """A detector that 'finds' the same boxes (image pixels) in whatever image it gets."""

    name = "scripted"

    def __init__(self, boxes: Sequence[tuple[float, float, float, float]]) -> None:
        self.boxes = np.array(boxes, np.float32).reshape(-1, 4)
        self.calls = 0
        self.shapes: list[tuple[int, int]] = []

    def detect(self, image: np.ndarray) -> Detections:
        self.calls += 1
        self.shapes.append(image.shape[:2])
        n = len(self.boxes)
        return Detections(self.boxes.copy(), np.full(n, 0.9, np.float32), np.ones(n, np.int32))


def frame(pts: float, size: tuple[int, int] = (640, 480)) -> Frame:
    return Frame("cam", np.zeros((size[1], size[0], 3), np.uint8), pts, NOW)


def test_zone_people_keeps_boxes_by_foot_point_and_caches_per_frame() -> None:
    # Zone: x 100..300, y 100..300 (frame = configured size). The crop starts at (90, 50)
    # (5 % margin, 20 % head room), so crop boxes are shifted by that into the frame.
    region = PostRegion("wait", [(100, 100), (300, 100), (300, 300), (100, 300)], (640, 480))
    people = ZonePeople("wait", region, Scripted([]), tile=False)
    box = people.crop_box(640, 480)
    assert (box.x1, box.y1, box.x2, box.y2) == (90, 50, 310, 310)
    in_crop = [
        (50, 60, 90, 200),  # frame foot point (160, 250): in the zone
        (0, 0, 30, 40),  # (105, 90): above the zone, in the crop's head room
        (150, 100, 215, 200),  # (272.5, 250): in
    ]
    det = Scripted(in_crop)
    people = ZonePeople("wait", region, det, tile=False)
    found = people.find(frame(1.0))
    assert sorted(foot_points(found.xyxy)[:, 0].tolist()) == [160.0, 272.5]
    assert len(people.find_all(frame(1.0))) == 3
    assert det.calls == 1  # find_all shared the look
    assert people.find(frame(1.0)) is found and det.calls == 1
    people.find(frame(1.5))
    assert det.calls == 2


def test_zone_people_scales_the_zone_to_the_frame_and_tiles_wide_zones() -> None:
    region = PostRegion("wait", [(0, 200), (1280, 200), (1280, 400), (0, 400)], (1280, 720))
    det = Scripted([])
    ZonePeople("wait", region, det).find(frame(0.0, (1280, 720)))
    assert det.calls >= 4 and all(max(s) <= 400 for s in det.shapes)
    det = Scripted([])
    ZonePeople("wait", region, det, tile=False).find(frame(0.0, (640, 360)))
    assert det.calls == 1 and det.shapes == [(130, 640)]  # (200 + 2 × 10 + 40) / 2 rows


def test_zone_people_drops_low_scores() -> None:
    region = PostRegion("wait", [(0, 0), (200, 0), (200, 200), (0, 200)], (640, 480))

    class Weak:
        name = "weak"

        def detect(self, image: np.ndarray) -> Detections:
            return Detections(
                np.array([[10, 10, 50, 100], [60, 10, 100, 100]], np.float32),
                np.array([0.45, 0.7], np.float32),
                np.ones(2, np.int32),
            )

    assert len(ZonePeople("wait", region, Weak(), min_score=0.5).find(frame(0.0))) == 1
    assert len(ZonePeople("wait", region, Weak(), min_score=0.4).find(frame(0.0))) == 2


# --- counting on generated waiting areas with the real detector ---------------------------

#: 20 scenes: 0..8 people at least twice each, a third of them with people standing outside
#: the zone who must not be counted.
SCENES = [(i % 9 if i < 18 else (0, 8)[i - 18], 700 + i, (i // 3) % 3) for i in range(20)]
#: On 200 such scenes (``benchmarks/occupancy_accuracy.py``) the default zone counting has a
#: mean absolute error of 0.47 people with this (fp32) model, 0.43 with int8: it misses
#: small, half-hidden back-row people (row 0 recall 73 %), never counts anyone twice or
#: anyone outside the zone. 0.75 leaves room for another onnxruntime build while still
#: failing if tiling, the polygon test or the merge breaks (untiled: 2.7).
MAE_BOUND = 0.75


@pytest.fixture(scope="module")
def detector() -> Detector:
    return create_detector("ssdlite_person", threads=1, score_threshold=0.5)


def test_counts_on_scenes_with_known_numbers_of_people(detector: Detector) -> None:
    counted, truth = [], []
    for i, (count, seed, outsiders) in enumerate(SCENES):
        scene = waiting_scene(count, seed, outsiders=outsiders)
        people = ZonePeople("waiting", PostRegion("waiting", scene.polygon, WAITING_SIZE), detector)
        counted.append(len(people.find(Frame("hall-cam", scene.image, float(i), NOW))))
        truth.append(scene.count)
    errors = np.array(counted) - np.array(truth)
    mae = float(np.abs(errors).mean())
    detail = f"MAE {mae:.2f} over {len(SCENES)} scenes; true {truth}; counted {counted}"
    assert mae <= MAE_BOUND, detail
    assert all(c == 0 for c, t in zip(counted, truth, strict=True) if t == 0), detail
    # Missing a small, hidden person happens; counting one twice (a broken tile merge) or
    # counting the people outside the zone must not.
    assert errors.max() <= 0, detail
    print(detail)
