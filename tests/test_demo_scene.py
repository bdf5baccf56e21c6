"""The generated demo hall: determinism, the video file, the expected alerts, and that the real
person detector sees the composited clerks (and nothing at an empty post)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from hallwatch.demo.scene import (
    WALK_S,
    Absence,
    DemoScript,
    away_fraction,
    default_script,
    expected_off_post,
    render_frame,
    write_demo_video,
)

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "ssdlite_mobilenet_v2_person.onnx"
SCORE_MIN = 0.5


@pytest.fixture(scope="module")
def script() -> DemoScript:
    return default_script()


def test_default_script_shape(script: DemoScript) -> None:
    assert script.size == (1280, 720)
    assert [p.id for p in script.posts] == ["w1", "w2", "w3", "w4"]
    assert [p.window for p in script.posts] == ["1", "2", "3", "4"]
    for post in script.posts:
        xs = [x for x, _ in post.polygon]
        ys = [y for _, y in post.polygon]
        assert 0 <= min(xs) < max(xs) < 1280 and 0 <= min(ys) < max(ys) < 720
    # Everyone is seated at both ends, so the looping video is continuous.
    for post in script.posts:
        assert away_fraction(script, post.id, 0.0) == 0.0
        assert away_fraction(script, post.id, script.duration_s - 1e-6) == 0.0


def test_render_frame_is_deterministic(script: DemoScript) -> None:
    a = render_frame(script, 37.4)
    b = render_frame(script, 37.4)
    assert a.shape == (720, 1280, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, render_frame(script, 37.6))  # noise and sway: alive


def test_loop_is_continuous(script: DemoScript) -> None:
    start = render_frame(script, 0.0).astype(np.int16)
    end = render_frame(script, script.duration_s - 1.0 / script.fps).astype(np.int16)
    # One frame apart across the loop point: only small sway and noise differ.
    assert float((np.abs(start - end) > 25).mean()) < 0.01


def test_empty_post_is_static(script: DemoScript) -> None:
    """The motion gate (pixels changed by > 25 grey levels) sees nothing at an empty post."""
    post = script.posts[1]  # w2 is away 12 s → 50 s
    xs = [x for x, _ in post.polygon]
    ys = [y for _, y in post.polygon]

    def grey(t: float) -> np.ndarray:
        crop = render_frame(script, t)[min(ys) : max(ys), min(xs) : max(xs)]
        return crop.astype(np.int16).mean(axis=2)

    assert float((np.abs(grey(20.0) - grey(40.2)) > 25).mean()) == 0.0


def test_expected_off_post_table(script: DemoScript) -> None:
    first = expected_off_post(script, 60.0, grace_s=3.0, off_post_after_s=15.0)
    assert [(a["post"], a["start_s"], a["end_s"]) for a in first] == [
        ("w2", 12.0 + WALK_S, 50.0 + WALK_S)
    ]
    assert first[0]["opens_s"] == 12.0 + WALK_S + 15.0
    assert first[0]["tolerance_s"] == pytest.approx(WALK_S + 1.0)
    full = expected_off_post(script, 120.0, grace_s=3.0, off_post_after_s=15.0)
    assert [(a["post"], a["end_s"]) for a in full] == [("w2", 51.5), ("w4", 106.5)]
    # w3's 6 s absence never alerts; in a second loop the alerts repeat.
    two_loops = expected_off_post(script, 240.0, grace_s=3.0, off_post_after_s=15.0)
    assert [(a["post"], a["start_s"]) for a in two_loops] == [
        ("w2", 13.5),
        ("w4", 71.5),
        ("w2", 133.5),
        ("w4", 191.5),
    ]
    # An alert still open at the end of the run has no end.
    assert expected_off_post(script, 40.0, 3.0, 15.0)[0]["end_s"] is None
    # A longer threshold drops w4 (35 s away); w2 (38 s) still alerts.
    assert [a["post"] for a in expected_off_post(script, 120.0, 3.0, 34.5)] == ["w2"]


def test_short_video_roundtrip(tmp_path: Path, script: DemoScript) -> None:
    av = pytest.importorskip("av")
    short = dataclasses.replace(script, duration_s=3.0, absences=[Absence("w2", 0.5, 2.0)])
    path = tmp_path / "hall.mp4"
    assert write_demo_video(path, short, gop_s=1.0) == path
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.width, stream.height) == (1280, 720)
        assert stream.average_rate == 5
        frames = list(container.decode(stream))
    assert len(frames) == 15
    assert [i for i, f in enumerate(frames) if f.key_frame] == [0, 5, 10]
    pts = [float(f.pts * f.time_base) for f in frames]
    assert pts[0] == 0.0 and pts[-1] == pytest.approx(2.8)
    # Cached: an unchanged script does not re-render; a changed one does.
    mtime = path.stat().st_mtime_ns
    write_demo_video(path, short, gop_s=1.0)
    assert path.stat().st_mtime_ns == mtime
    write_demo_video(path, dataclasses.replace(short, duration_s=2.0), gop_s=1.0)
    with av.open(str(path)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 10


# --- the real detector --------------------------------------------------------------------


@pytest.fixture(scope="module")
def detect() -> Callable[[np.ndarray], float]:
    """Best person score (≥ 0.5) the real detector gives an RGB image; 0 if none."""
    if not MODEL.exists():
        pytest.skip(f"person model {MODEL} not built yet (models/build_person_detector.sh)")
    from edge.detectors.onnx_ssd import OnnxPersonDetector

    detector = OnnxPersonDetector(MODEL, score_threshold=SCORE_MIN)

    def best(rgb: np.ndarray) -> float:
        found = detector.detect(np.ascontiguousarray(rgb))
        return float(found.confidence.max()) if len(found) else 0.0

    return best


def _crop(script: DemoScript, frame: np.ndarray, index: int) -> np.ndarray:
    polygon = script.posts[index].polygon
    xs = [x for x, _ in polygon]
    ys = [y for _, y in polygon]
    return frame[min(ys) : max(ys) + 1, min(xs) : max(xs) + 1]


# (t, post index, staffed?) — each post seated and (but w1) empty; w1 never leaves.
CASES = [
    (5.0, 0, True),
    (60.0, 0, True),
    (100.0, 0, True),
    (5.0, 1, True),
    (20.0, 1, False),
    (45.0, 1, False),
    (60.0, 1, True),
    (20.0, 2, True),
    (28.0, 2, False),
    (40.0, 2, True),
    (60.0, 3, True),
    (80.0, 3, False),
    (100.0, 3, False),
    (115.0, 3, True),
]


def test_detector_sees_clerks_and_empty_chairs(
    script: DemoScript, detect: Callable[[np.ndarray], float]
) -> None:
    frames = {t: render_frame(script, t) for t in sorted({t for t, _, _ in CASES})}
    failures = []
    for t, index, staffed in CASES:
        post = script.posts[index].id
        assert (away_fraction(script, post, t) == 0.0) is staffed
        assert (away_fraction(script, post, t) == 1.0) is (not staffed)
        score = detect(_crop(script, frames[t], index))
        if (score >= SCORE_MIN) is not staffed:
            failures.append((t, post, staffed, round(score, 3)))
    assert not failures, f"(t, post, staffed, best person score): {failures}"
