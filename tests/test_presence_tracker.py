"""Presence tracker: timelines of looks → the facts they must produce."""

from __future__ import annotations

import pytest

from edge.tracking.presence import PresenceTracker
from hallwatch.contract import PostState

ON, OFF = PostState.ON_POST, PostState.OFF_POST

# (name, looks as (pts, person), grace, arrive, expected changes as (state, since, at_pts))
TIMELINES = [
    ("always there", [(t, True) for t in range(0, 100, 2)], 10, 0, [(ON, 0, 0)]),
    ("never there", [(t, False) for t in range(0, 30, 2)], 10, 0, [(OFF, 0, 10)]),
    (
        "short absence within grace: no change",
        [(0, True), (2, True), (4, False), (6, False), (8, False), (10, True), (12, True)],
        10,
        0,
        [(ON, 0, 0)],
    ),
    (
        "absence past grace is dated from the last sighting",
        [(0, True), (2, True), (4, False), (8, False), (12, False), (14, False), (20, True)],
        10,
        0,
        [(ON, 0, 0), (OFF, 2, 12), (ON, 20, 20)],
    ),
    (
        "with arrive_s, a one-look flicker does not end an absence",
        [(0, False), (12, False), (16, True), (18, False), (40, False)],
        10,
        3,
        [(OFF, 0, 12)],
    ),
    (
        "arrival needs arrive_s of continuous sightings",
        [(0, False), (12, False), (14, True), (15, False), (20, True), (22, True), (24, True)],
        10,
        3,
        [(OFF, 0, 12), (ON, 20, 24)],
    ),
]


@pytest.mark.parametrize(
    ("name", "looks", "grace", "arrive", "expected"), TIMELINES, ids=[t[0] for t in TIMELINES]
)
def test_timeline(
    name: str,
    looks: list[tuple[float, bool]],
    grace: float,
    arrive: float,
    expected: list[tuple[PostState, float, float]],
) -> None:
    tracker = PresenceTracker("w1", grace_s=grace, summary_interval_s=1e9, arrive_s=arrive)
    changes = [
        (e.state, e.since_pts, e.pts)
        for pts, person in looks
        for e in tracker.observe(float(pts), person)
        if not e.summary
    ]
    assert changes == [(s, float(a), float(b)) for s, a, b in expected]


def test_summaries_are_periodic_not_per_frame() -> None:
    tracker = PresenceTracker("w1", grace_s=5, summary_interval_s=60)
    events = [e for t in range(0, 181) for e in tracker.observe(float(t), True)]
    assert [(e.summary, e.pts) for e in events] == [
        (False, 0.0),
        (True, 60.0),
        (True, 120.0),
        (True, 180.0),
    ]
    assert all(e.since_pts == 0.0 for e in events)


def test_backdated_absence_uses_last_seen_override() -> None:
    tracker = PresenceTracker("w1", grace_s=10, summary_interval_s=1e9)
    tracker.observe(0.0, True)
    tracker.observe(200.0, True)
    [event] = tracker.observe(201.0, False, last_seen_pts=20.0)
    assert (event.state, event.since_pts) == (OFF, 20.0)


def test_reset_forgets_state() -> None:
    tracker = PresenceTracker("w1", grace_s=10, summary_interval_s=1e9)
    tracker.observe(0.0, True)
    tracker.reset()
    assert tracker.state is None
    [event] = tracker.observe(50.0, True)
    assert (event.state, event.since_pts) == (ON, 50.0)
