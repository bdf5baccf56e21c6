"""Entrance flow: crossings of the entrance line by tracked people, on scripted detections
(in, out, dithering, round the line's end, two at once, missed looks, intervals) and end to
end on rendered walking frames with the real detector."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import numpy as np
import pytest

from edge.detectors import Detections, create_detector
from edge.environment.flow import FlowReport, LineCounter
from edge.environment.people import ZonePeople
from edge.regions.post_region import PostRegion
from edge.sources.frame import Frame
from tests.support.crowd_scenes import (
    ENTRANCE_LINE,
    ENTRANCE_POLYGON,
    ENTRANCE_SIZE,
    walker_x,
    walking_frames,
    walking_script,
)

SIZE = (400, 400)
#: A vertical line up the middle of the image: x = 200, from y = 300 up to y = 100.
LINE = ((200.0, 300.0), (200.0, 100.0))
H = 80.0  # box height of the scripted people: hysteresis band ±8 px, gate 60 px per look


def people(*feet: tuple[float, float]) -> Detections:
    """People with their foot points at ``feet``."""
    if not feet:
        return Detections.empty()
    xyxy = [(x - 20, y - H, x + 20, y) for x, y in feet]
    n = len(feet)
    return Detections(np.array(xyxy, np.float32), np.full(n, 0.9, np.float32), np.ones(n, np.int32))


def run(
    looks: list[list[tuple[float, float]]],
    *,
    inside: Literal["left", "right"] = "right",
    line: tuple[tuple[float, float], tuple[float, float]] = LINE,
) -> tuple[int, int]:
    """Feed one look per second; return (in, out) of the single interval."""
    counter = LineCounter("door", line, SIZE, inside, interval_s=1000)
    for t, feet in enumerate(looks):
        assert counter.observe(float(t), SIZE, people(*feet)) is None
    report = counter.observe(1000.0, SIZE, Detections.empty())
    assert report is not None
    return report.in_count, report.out_count


def walk(x0: float, x1: float, y: float = 250.0, step: float = 20.0) -> list[tuple[float, float]]:
    n = round(abs(x1 - x0) / step)
    return [(x0 + (x1 - x0) * i / n, y) for i in range(n + 1)]


def looks_of(*tracks: list[tuple[float, float]]) -> list[list[tuple[float, float]]]:
    """Zip several people's paths into looks (a person whose path ended is gone)."""
    n = max(len(t) for t in tracks)
    return [[t[i] for t in tracks if i < len(t)] for i in range(n)]


@pytest.mark.parametrize(
    ("looks", "inside", "expected"),
    [
        (looks_of(walk(80, 320)), "right", (1, 0)),  # in
        (looks_of(walk(320, 80)), "right", (0, 1)),  # out
        (looks_of(walk(80, 320)), "left", (0, 1)),  # the hall is on the other side
        # Two people walking in side by side, and two crossing opposite ways at once.
        (looks_of(walk(80, 320, y=150), walk(80, 320, y=260)), "right", (2, 0)),
        (looks_of(walk(80, 320, y=150), walk(320, 80, y=260)), "right", (1, 1)),
        # In, then back out, then in again: each crossing counts once.
        (looks_of(walk(80, 320) + walk(320, 80)[1:] + walk(80, 320)[1:]), "right", (2, 1)),
        # Walks up to the line, dithers on it (within the ±8 px band), goes back: nothing.
        (
            looks_of([*walk(80, 196), (204, 250), (195, 250), (206, 250), *walk(196, 80)]),
            "right",
            (0, 0),
        ),
        # Stands on the line for a long time, then walks in: one in, when they leave the band.
        (
            looks_of(walk(80, 200) + [(200 + d, 250) for d in (3, -4, 5, -2, 6)] + walk(200, 320)),
            "right",
            (1, 0),
        ),
        # Crossing below the segment's end (y 300) and above its other end (y 100): nothing.
        (looks_of(walk(80, 320, y=340), walk(320, 80, y=60)), "right", (0, 0)),
        # Walks round the lower end of the line, up, and back out through it: out only.
        (
            looks_of(
                walk(80, 320, y=340) + [(320, y) for y in (320, 300, 280, 260)] + walk(320, 80)
            ),
            "right",
            (0, 1),
        ),
    ],
)
def test_crossings(
    looks: list[list[tuple[float, float]]],
    inside: Literal["left", "right"],
    expected: tuple[int, int],
) -> None:
    assert run(looks, inside=inside) == expected


@pytest.mark.parametrize("box_heights_per_look", [0.5, 0.8, 1.0, 1.2])
def test_a_brisk_walker_seen_once_a_second_is_counted(box_heights_per_look: float) -> None:
    # 1.3 m/s is about 0.8 box heights a second: a new track must be matched at its first
    # step although it has no velocity yet to predict the step from.
    assert run(looks_of(walk(60, 340, step=box_heights_per_look * H))) == (1, 0)


def test_a_missed_look_mid_crossing_still_counts_once() -> None:
    path = [[p] for p in walk(80, 320, step=30)]
    on_line = next(i for i, look in enumerate(path) if look[0][0] >= 200)
    path[on_line - 1] = []  # the detector misses them just before the line ...
    path[on_line] = []  # ... and on it
    assert run(path) == (1, 0)


def test_a_person_lost_for_too_long_is_a_new_person() -> None:
    path = [[p] for p in walk(80, 320, step=20)]
    for i in range(5, 12):  # 7 looks missed across the line (x 180..300): no track survives
        path[i] = []
    assert run(path) == (0, 0)


def test_a_diagonal_line_and_its_side() -> None:
    # Up and to the right: looking along it, the lower right is on the right.
    line = ((100.0, 300.0), (300.0, 100.0))
    down_right = looks_of([(150 + 10 * i, 150 + 10 * i) for i in range(11)])
    up_left = looks_of([(250 - 10 * i, 250 - 10 * i) for i in range(11)])
    assert run(down_right, line=line, inside="right") == (1, 0)
    assert run(up_left, line=line, inside="right") == (0, 1)
    assert run(up_left, line=line, inside="left") == (1, 0)


def test_line_is_scaled_to_the_frame() -> None:
    counter = LineCounter("door", LINE, SIZE, "right", interval_s=1000)
    for t, (x, y) in enumerate(walk(80, 320)):  # the same walk on a frame twice as large
        counter.observe(float(t), (800, 800), people((2 * x, 2 * y)))
    report = counter.observe(1000.0, (800, 800), Detections.empty())
    assert report is not None and (report.in_count, report.out_count) == (1, 0)


def test_intervals_reports_and_reset() -> None:
    counter = LineCounter("door", LINE, SIZE, "right", interval_s=10)
    reports: list[FlowReport] = []
    # Someone walks in during 0..10 s (looks every 0.5 s), the next interval is quiet, then
    # nothing is seen for a while (camera down), then someone walks out at 40 s.
    t = 0.0
    for foot in walk(80, 320):
        if (r := counter.observe(t, SIZE, people(foot))) is not None:
            reports.append(r)
        t += 0.5
    for t in (10.0, 15.0):
        if (r := counter.observe(t, SIZE, Detections.empty())) is not None:
            reports.append(r)
    t = 40.0
    for foot in walk(320, 80):
        if (r := counter.observe(t, SIZE, people(foot))) is not None:
            reports.append(r)
        t += 0.5
    assert [(r.start_pts, r.end_pts, r.in_count, r.out_count) for r in reports] == [
        (0.0, 10.0, 1, 0),
        (10.0, 20.0, 0, 0),
        # 20..40 had no looks: no report.
    ]
    # A reconnect: pts restart. The crossing not reported yet goes into the next report.
    counter.reset()
    assert counter.active_tracks == 0
    counter.observe(0.0, SIZE, Detections.empty())
    r = counter.observe(10.0, SIZE, Detections.empty())
    assert r is not None and (r.start_pts, r.in_count, r.out_count) == (0.0, 0, 1)


def test_bad_settings() -> None:
    with pytest.raises(ValueError):
        LineCounter("door", LINE, SIZE, "up", interval_s=10)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        LineCounter("door", ((5, 5), (5, 5)), SIZE, "left", interval_s=10)
    with pytest.raises(ValueError):
        LineCounter("door", LINE, SIZE, "left", interval_s=0)


# --- end to end on rendered frames with the real detector ---------------------------------


def test_walking_script_truth() -> None:
    scene = walking_script(3, 2, step_px=40.0, seed=1)
    line_x = ENTRANCE_LINE[0][0]
    crossed = {"in": 0, "out": 0}
    for w in scene.walkers:
        xs = [x for f in range(scene.frames) if (x := walker_x(w, f, scene.step_px)) is not None]
        went_through = min(xs) < line_x < max(xs)
        assert went_through != w.turn_back
        crossed[w.direction] += went_through
    assert (crossed["in"], crossed["out"]) == (scene.in_count, scene.out_count) == (3, 2)


def test_end_to_end_on_walking_frames() -> None:
    detector = create_detector("ssdlite_person", threads=1, score_threshold=0.5)
    scene = walking_script(3, 2, step_px=40.0, seed=1)
    zone = ZonePeople(
        "entrance", PostRegion("entrance", list(ENTRANCE_POLYGON), ENTRANCE_SIZE), detector
    )
    counter = LineCounter("entrance", ENTRANCE_LINE, ENTRANCE_SIZE, "right", interval_s=3600)
    seen = []
    for i, image in enumerate(walking_frames(scene, seed=1)):
        found = zone.find(Frame("door-cam", image, 0.5 * i, datetime(2024, 6, 3, tzinfo=UTC)))
        seen.append(len(found))
        assert counter.observe(0.5 * i, ENTRANCE_SIZE, found) is None
    report = counter.observe(3600.0, ENTRANCE_SIZE, Detections.empty())
    assert report is not None
    got = (report.in_count, report.out_count)
    assert got == (scene.in_count, scene.out_count), f"counted {got}; people per look {seen}"
