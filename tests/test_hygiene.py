"""Hygiene (环境好/差) of a window's public area on generated scenes.

The scenes (:mod:`tests.support.hygiene_scenes`) are a terrazzo floor in front of window 1
with real things composited into it: a coffee cup and a crumpled leaflet cut out of
scikit-image's photos, and an applicant cut out of matplotlib's Grace Hopper photo, found
by the real person detector. One frame per second, explicit pts, small settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

from edge.detectors import Detections, Detector, create_detector
from edge.detectors.hygiene_classifier import HYGIENE_DIRTY_CLASS, OnnxHygieneClassifier
from edge.environment import HygieneEvent, HygieneSettings, HygieneWatcher
from edge.regions.post_region import PostRegion
from edge.sources.frame import Frame
from hallwatch.contract import HygieneMethod, HygieneState
from tests.support.hygiene_scenes import (
    ITEMS,
    SIZE,
    ZONE_POLYGON,
    Cue,
    HygieneScript,
    frame_at,
    frames,
    render,
    tiny_dirtiness_model,
)

SETTINGS = HygieneSettings(
    bad_after_s=10.0, good_after_s=5.0, learn_s=5.0, person_hold_s=3.0, classifier_interval_s=2.0
)
GOOD, BAD = HygieneState.GOOD, HygieneState.BAD


@pytest.fixture(scope="module")
def detector() -> Detector:
    return create_detector("ssdlite_person", threads=1, score_threshold=0.5)


class FixedGrader:
    """A stand-in for a hall's trained classifier: always the same dirty probability."""

    name = "fixed_grader"

    def __init__(self, probability: float) -> None:
        self.probability = probability
        self.calls = 0

    def detect(self, image: np.ndarray) -> Detections:
        self.calls += 1
        h, w = image.shape[:2]
        return Detections(
            np.array([[0, 0, w, h]], np.float32),
            np.array([self.probability], np.float32),
            np.array([HYGIENE_DIRTY_CLASS], np.int32),
        )


def make_watcher(
    *,
    settings: HygieneSettings = SETTINGS,
    reference: np.ndarray | None = None,
    reference_path: Path | None = None,
    classifier: Detector | None = None,
    mode: Literal["replace", "confirm"] = "confirm",
) -> HygieneWatcher:
    return HygieneWatcher(
        "w1-public",
        PostRegion("w1-public", ZONE_POLYGON, SIZE),
        settings,
        reference=reference,
        reference_path=reference_path,
        classifier=classifier,
        classifier_mode=mode,
    )


def people_of(detector: Detector | None) -> Callable[[Frame], Callable[[], Detections]]:
    """``people()`` for a frame: the real detector on the whole frame, or nobody (blind)."""
    if detector is None:
        return lambda f: Detections.empty
    return lambda f: lambda: detector.detect(f.image)


def run(
    watcher: HygieneWatcher, script: HygieneScript, detector: Detector | None, start_s: float = 0
) -> list[HygieneEvent]:
    people = people_of(detector)
    found = (watcher.look(f, people(f)) for f in frames(script, start_s=start_s))
    return [e for e in found if e is not None]


@dataclass(frozen=True)
class Change:
    """An expected change: to ``state``, its ``since_pts`` within ``[since_lo, since_hi]``."""

    state: HygieneState
    since_lo: float
    since_hi: float | None = None


@dataclass(frozen=True)
class Row:
    id: str
    cues: tuple[Cue, ...]
    expect: tuple[Change, ...]
    people: Literal["detector", "blind"] = "detector"
    operator_reference: bool = False
    classifier: tuple[Literal["replace", "confirm"], float] | None = None
    occluded: bool = False
    """The person was seen in the zone (looks without a measurement)."""
    duration_s: float = 45.0


ROWS = [
    Row("clean stays good", (), ()),
    Row("litter 15 s turns bad, removed turns good", (Cue("cup", 10, 25), Cue("paper", 10, 25)),
        (Change(BAD, 10), Change(GOOD, 25))),
    Row("a cup left behind turns bad", (Cue("cup", 10),), (Change(BAD, 10),)),
    Row("a crumpled leaflet turns bad", (Cue("paper", 10),), (Change(BAD, 10),)),
    Row("litter for less than bad_after_s stays good", (Cue("cup", 10, 16),), ()),
    Row("a person standing in the zone 25 s stays good", (Cue("person", 10, 35),), (),
        occluded=True),
    Row("the same person, detector blind: bad (control)", (Cue("person", 10, 35),),
        (Change(BAD, 10), Change(GOOD, 35)), people="blind"),
    Row("a passer-by over the zone's edge is masked out", (Cue("passer_by", 10, 35),), ()),
    Row("the passer-by, detector blind: bad (control)", (Cue("passer_by", 10, 35),),
        (Change(BAD, 10), Change(GOOD, 35)), people="blind"),
    Row("a person leaves a leaflet: bad, dated after they left",
        (Cue("person", 10, 20), Cue("paper", 15)), (Change(BAD, 20, 23),), occluded=True),
    Row("a person at the start delays learning", (Cue("person", 0, 15), Cue("cup", 25)),
        (Change(BAD, 25),)),
    Row("lights dimmed 25 % stays good", (Cue("dim", 10),), ()),
    Row("lights brightened 25 % stays good", (Cue("bright", 10),), ()),
    Row("a warm colour cast stays good", (Cue("cast", 10),), ()),
    Row("a cup under dimmed lights turns bad", (Cue("dim", 10), Cue("cup", 12)),
        (Change(BAD, 12),)),
    Row("litter before any reference is learned as clean", (Cue("cup", 0),), ()),
    Row("operator reference: litter from the start turns bad", (Cue("cup", 0),),
        (Change(BAD, 0),), operator_reference=True),
    Row("operator reference: lights dimmed stays good", (Cue("dim", 0), Cue("cast", 20)), (),
        operator_reference=True),
    Row("replace: the classifier calls a clean zone dirty", (), (Change(BAD, 0),),
        classifier=("replace", 0.9)),
    Row("replace: the classifier calls litter clean", (Cue("cup", 10),), (),
        classifier=("replace", 0.1)),
    Row("replace: a person in the zone is not graded", (Cue("person", 0),), (),
        classifier=("replace", 0.9), occluded=True),
    Row("confirm: both say dirty", (Cue("cup", 10),), (Change(BAD, 10),),
        classifier=("confirm", 0.9)),
    Row("confirm: the classifier says clean", (Cue("cup", 10),), (),
        classifier=("confirm", 0.1)),
    Row("confirm: a clean zone is never graded", (), (), classifier=("confirm", 0.9)),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_hygiene_table(row: Row, detector: Detector) -> None:
    grader = FixedGrader(row.classifier[1]) if row.classifier else None
    watcher = make_watcher(
        reference=render(set()) if row.operator_reference else None,
        classifier=grader,
        mode=row.classifier[0] if row.classifier else "confirm",
    )
    script = HygieneScript(row.duration_s, row.cues)
    events = run(watcher, script, detector if row.people == "detector" else None)

    assert [e.state for e in events] == [c.state for c in row.expect]
    for event, change in zip(events, row.expect, strict=True):
        hi = change.since_lo if change.since_hi is None else change.since_hi
        assert change.since_lo <= event.since_pts <= hi
        after = SETTINGS.bad_after_s if event.state is BAD else SETTINGS.good_after_s
        assert after <= event.pts - event.since_pts < after + script.step_s
        assert event.zone == "w1-public"
        if row.classifier and row.classifier[0] == "replace":
            assert event.method is HygieneMethod.CLASSIFIER
            assert event.score == pytest.approx(row.classifier[1])
        elif event.state is BAD:
            assert event.score > SETTINGS.threshold
            assert event.method == (
                HygieneMethod.BOTH if row.classifier else HygieneMethod.REFERENCE
            )
    assert watcher.state is (row.expect[-1].state if row.expect else GOOD)
    if grader is not None and row.classifier == ("confirm", 0.9) and not row.cues:
        assert grader.calls == 0
    if grader is not None and events:
        assert grader.calls > 0
    assert (watcher.stats.occluded > 0) is row.occluded


def test_a_clean_zone_asks_for_people_only_to_learn(detector: Detector) -> None:
    calls: list[float] = []

    def people_counted(f: Frame) -> Callable[[], Detections]:
        def people() -> Detections:
            calls.append(f.pts)
            return detector.detect(f.image)

        return people

    watcher = make_watcher()
    for f in frames(HygieneScript(40.0, (Cue("dim", 20),))):
        assert watcher.look(f, people_counted(f)) is None
    assert calls == [5.0]  # once, when the person-free, unchanged zone became the reference
    assert watcher.reference_source == "learned"
    assert watcher.stats.clean == 34 and watcher.stats.people_calls == 1


def test_learned_reference_is_saved_and_loaded_after_a_restart(
    tmp_path: Path, detector: Detector
) -> None:
    path = tmp_path / "hygiene" / "w1-public.png"
    first = make_watcher(reference_path=path)
    assert not first.has_reference
    assert run(first, HygieneScript(8.0), detector) == []
    assert first.reference_source == "learned" and path.is_file()

    # restarted while a cup lies there: the saved reference is used, nothing relearned
    littered = HygieneScript(45.0, (Cue("cup", 20),))
    second = make_watcher(reference_path=path)
    assert second.has_reference
    events = run(second, littered, detector, start_s=20)
    assert [(e.state, e.since_pts) for e in events] == [(BAD, 20.0)]
    assert second.reference_source == "saved" and second.stats.learning == 0

    # without the saved reference the cup would have been learned as clean
    assert run(make_watcher(), littered, detector, start_s=20) == []


def test_operator_reference_wins_over_a_saved_one(tmp_path: Path, detector: Detector) -> None:
    path = tmp_path / "w1-public.png"
    learner = make_watcher(reference_path=path)
    run(learner, HygieneScript(8.0, (Cue("paper", 0),)), detector)  # learns the leaflet
    assert path.is_file()
    watcher = make_watcher(reference=render(set()), reference_path=path)
    assert run(watcher, HygieneScript(30.0), detector) == []  # clean floor: no leaflet missing
    assert watcher.reference_source == "operator"
    stale = make_watcher(reference_path=path)
    assert [e.state for e in run(stale, HygieneScript(30.0), detector)] == [BAD]


def test_dirty_box_is_where_the_litter_lies(detector: Detector) -> None:
    watcher = make_watcher(reference=render(set()))
    script = HygieneScript(3.0, (Cue("cup", 0),))
    last = None
    for f in frames(script):
        watcher.look(f, people_of(detector)(f))
        last = f
    assert last is not None
    box = watcher.dirty_box(last)
    assert box is not None
    (cx, cy), width = ITEMS["cup"]
    assert box.x1 <= cx <= box.x2 and box.y1 <= cy <= box.y2
    assert width * 0.8 <= box.width <= width * 1.3
    assert width * 0.6 <= box.height <= width * 1.2
    clean = frame_at(render(set(), noise_seed=1), 4.0)
    watcher.look(clean, Detections.empty)
    assert watcher.dirty_box(clean) is None


def test_reset_keeps_the_reference_and_restarts_the_clocks(detector: Detector) -> None:
    watcher = make_watcher()
    script = HygieneScript(40.0, (Cue("cup", 10),))
    events = []
    for f in frames(script):
        if f.pts == 15.0:
            watcher.reset()  # camera reconnected
        event = watcher.look(f, people_of(detector)(f))
        if event is not None:
            events.append((event.state, event.since_pts))
    assert events == [(BAD, 15.0)]
    assert watcher.stats.learning == 6  # learned once, at 5 s; kept through the reset


@pytest.mark.parametrize(("adapt_rate", "expected"), [(0.05, []), (0.0, [BAD])])
def test_slow_drift_is_absorbed_by_adapting(
    adapt_rate: float, expected: list[HygieneState]
) -> None:
    """Sunlight creeping over half the zone (+60 % in two minutes): not litter, if adapting."""
    settings = HygieneSettings(bad_after_s=10.0, learn_s=5.0, adapt_rate=adapt_rate)
    watcher = make_watcher(settings=settings, reference=render(set()))
    sunlit = np.clip((np.arange(SIZE[0], dtype=np.float32) - 300) / 40, 0, 1)[None, :, None]
    states = []
    for k in range(150):
        sun = 1 + np.float32(0.6 * min(k / 120, 1)) * sunlit
        image = np.clip(render(set(), noise_seed=k) * sun, 0, 255).astype(np.uint8)
        event = watcher.look(frame_at(image, float(k)), Detections.empty)
        if event is not None:
            states.append(event.state)
    assert states == expected


@pytest.mark.parametrize(
    "bad",
    [{"threshold": 0.0}, {"threshold": 1.5}, {"pixel_delta": 0}, {"bad_after_s": -1.0},
     {"max_side": 8}, {"person_overlap": 0.0}],
    ids=str,
)  # fmt: skip
def test_settings_are_checked(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        HygieneSettings(**bad)  # type: ignore[arg-type]


# --- the ONNX classifier plugin, with a tiny model written by hand --------------------------


@pytest.mark.parametrize("two_class", [False, True], ids=["probability", "2-class logits"])
def test_onnx_classifier_grades_the_whole_crop(tmp_path: Path, two_class: bool) -> None:
    model = tiny_dirtiness_model(tmp_path / "tiny.onnx", two_class=two_class)
    clf = OnnxHygieneClassifier(model, output="logits" if two_class else "probability")
    dark = clf.detect(np.full((60, 80, 3), 51, np.uint8))  # mean 0.2: p = sigmoid(3.6)
    assert dark.xyxy.tolist() == [[0.0, 0.0, 80.0, 60.0]]
    assert dark.class_id.tolist() == [HYGIENE_DIRTY_CLASS]
    assert float(dark.confidence[0]) == pytest.approx(1 / (1 + np.exp(-3.6)), abs=1e-3)
    assert len(clf.detect(np.full((60, 80, 3), 250, np.uint8))) == 0  # p ≈ 0.003 < 0.01


def test_onnx_classifier_is_a_registered_plugin(tmp_path: Path) -> None:
    model = tiny_dirtiness_model(tmp_path / "fixed.onnx", input_hw=(32, 48))
    clf = create_detector("hygiene_onnx", model_path=model)
    assert isinstance(clf, OnnxHygieneClassifier) and isinstance(clf, Detector)
    assert clf.input_size == (48, 32)  # the model's own fixed size wins
    assert clf.probability(np.full((300, 200, 3), 128, np.uint8)) == pytest.approx(
        1 / (1 + np.exp(-(6 - 12 * 128 / 255))), abs=1e-3
    )
    with pytest.raises(FileNotFoundError):
        OnnxHygieneClassifier(tmp_path / "missing.onnx")
