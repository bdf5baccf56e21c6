"""A post's watch with the real detector on generated hall frames.

A moving clerk stays on post; a "person" that never moves (a life-size cut-out, a coat on
the chair, a poster — anything the detector scores as a person) is learned as the empty
post after ``static_learn_s`` and the absence is dated from the last change.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from edge.detectors import OnnxPersonDetector
from edge.regions.post_region import PostRegion
from edge.sources.frame import Frame
from edge.tracking.post_watcher import PostWatcher, WatchSettings
from hallwatch.contract import PostState
from hallwatch.demo.scene import default_script, render_frame

SCRIPT = default_script()
T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
RNG = np.random.default_rng(3)


@pytest.fixture(scope="module")
def detector() -> OnnxPersonDetector:
    return OnnxPersonDetector()


def watcher_for(post_id: str, detector: OnnxPersonDetector, **settings: float) -> PostWatcher:
    post = next(p for p in SCRIPT.posts if p.id == post_id)
    region = PostRegion(post.id, [(float(x), float(y)) for x, y in post.polygon], SCRIPT.size)
    return PostWatcher(region, detector, WatchSettings(grace_s=3, **settings))  # type: ignore[arg-type]


def frame(image: np.ndarray, pts: float) -> Frame:
    return Frame("cam", image, pts, T0 + timedelta(seconds=pts))


def with_noise(image: np.ndarray) -> np.ndarray:
    noise = RNG.normal(0, 2, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def changes(watcher: PostWatcher, frames: list[Frame]) -> list[tuple[PostState, float]]:
    return [
        (event.state, event.since_pts)
        for f in frames
        for event in watcher.look(f).events
        if not event.summary
    ]


def test_a_clerk_who_moves_stays_on_post(detector: OnnxPersonDetector) -> None:
    watcher = watcher_for("w1", detector, static_learn_s=20)
    frames = [frame(render_frame(SCRIPT, t), t) for t in np.arange(0, 60, 1.0)]
    assert changes(watcher, frames) == [(PostState.ON_POST, 0.0)]


def test_a_person_that_never_moves_is_learned_as_the_empty_post(
    detector: OnnxPersonDetector,
) -> None:
    watcher = watcher_for("w1", detector, static_learn_s=20)
    still = render_frame(SCRIPT, 5.0)  # the clerk frozen: a cut-out on the chair
    frames = [frame(with_noise(still), t) for t in np.arange(0, 40, 1.0)]
    assert changes(watcher, frames) == [(PostState.ON_POST, 0.0), (PostState.OFF_POST, 0.0)]

    # the clerk moves again: on post within a few seconds, not explained by the empty look
    live = [frame(render_frame(SCRIPT, t), 40 + t) for t in np.arange(10, 20, 1.0)]
    [(state, since)] = changes(watcher, live)
    assert state is PostState.ON_POST and 50.0 <= since <= 53.0


def test_gate_skips_inference_when_nothing_changes(detector: OnnxPersonDetector) -> None:
    watcher = watcher_for("w2", detector)
    empty = render_frame(SCRIPT, 30.0)  # w2's clerk is away from 12 s to 50 s
    results = [watcher.look(frame(with_noise(empty), t)) for t in np.arange(0, 30, 1.0)]
    assert sum(r.inferred for r in results) == 1
    assert [e.state for r in results for e in r.events] == [PostState.OFF_POST]


def test_detections_outside_the_polygon_do_not_count(detector: OnnxPersonDetector) -> None:
    """The clerk of window 1, seen through a polygon drawn over window 2's empty desk top."""
    image = render_frame(SCRIPT, 30.0)
    w1 = next(p for p in SCRIPT.posts if p.id == "w1")
    xs = [x for x, _ in w1.polygon]
    ys = [y for _, y in w1.polygon]
    # a thin strip along the bottom edge: the crop contains the clerk, the polygon does not
    strip = [
        (min(xs), max(ys) - 30),
        (max(xs), max(ys) - 30),
        (max(xs), max(ys)),
        (min(xs), max(ys)),
    ]
    region = PostRegion("strip", [(float(x), float(y)) for x, y in strip], SCRIPT.size, margin=2.0)
    watcher = PostWatcher(region, detector, WatchSettings(grace_s=1))
    events = [e for t in range(4) for e in watcher.look(frame(image, float(t))).events]
    assert [e.state for e in events] == [PostState.OFF_POST]
