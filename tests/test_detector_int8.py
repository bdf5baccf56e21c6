"""The int8 person detector (``ssdlite_mobilenet_v2_person.int8.onnx``) against the float one.

The int8 model is made from the committed float model by ``models/quantize_person_detector.py``
(onnxruntime static QDQ quantization, see ``models/PROVENANCE.md``). It must find the same
people as the float model: in the package photos, in nobody's empty scenes, and at the demo
hall's posts, where the demo script says who is seated.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.detectors import DEFAULT_MODEL_PATH, OnnxPersonDetector, create_detector
from edge.detectors.onnx_ssd import INT8_MODEL_PATH
from edge.regions.post_region import PostRegion
from hallwatch.demo.scene import away_fraction, default_script, render_frame
from tests.test_detector import (
    EMPTY_SCENES,
    MPL_SAMPLE_DATA,
    PHOTOS,
    Box,
    empty_office,
    iou,
    load_rgb,
)


@pytest.fixture(scope="module")
def int8() -> OnnxPersonDetector:
    return OnnxPersonDetector(model_path=INT8_MODEL_PATH, threads=2)


@pytest.fixture(scope="module")
def int8_sensitive() -> OnnxPersonDetector:
    return OnnxPersonDetector(model_path=INT8_MODEL_PATH, threads=2, score_threshold=0.2)


@pytest.fixture(scope="module")
def fp32() -> OnnxPersonDetector:
    return OnnxPersonDetector(model_path=DEFAULT_MODEL_PATH, threads=2)


def test_committed_int8_model_matches_its_recorded_sha256() -> None:
    recorded = INT8_MODEL_PATH.with_name(f"{INT8_MODEL_PATH.name}.sha256").read_text().split()
    assert recorded[1] == INT8_MODEL_PATH.name == "ssdlite_mobilenet_v2_person.int8.onnx"
    assert hashlib.sha256(INT8_MODEL_PATH.read_bytes()).hexdigest() == recorded[0]


def test_int8_model_is_next_to_the_default_and_smaller() -> None:
    assert INT8_MODEL_PATH.parent == DEFAULT_MODEL_PATH.parent
    assert INT8_MODEL_PATH.stat().st_size < DEFAULT_MODEL_PATH.stat().st_size / 2


def test_factory_takes_the_int8_model() -> None:
    det = create_detector("ssdlite_person", model_path=INT8_MODEL_PATH, threads=1)
    assert isinstance(det, OnnxPersonDetector)
    assert det.model_path == INT8_MODEL_PATH


@pytest.mark.parametrize(("path", "expected", "face"), PHOTOS)
def test_int8_finds_the_one_person_in_a_photo(
    int8: OnnxPersonDetector,
    fp32: OnnxPersonDetector,
    path: Path,
    expected: Box,
    face: tuple[int, int],
) -> None:
    image = load_rgb(path)
    dets = int8.detect(image)
    ref = fp32.detect(image)

    assert len(dets) == 1 and len(ref) == 1, (dets, ref)
    (x1, y1, x2, y2) = dets.xyxy[0]
    assert iou(dets.xyxy[0], expected) > 0.75, (dets.xyxy[0], expected)
    assert x1 <= face[0] <= x2 and y1 <= face[1] <= y2
    assert dets.confidence[0] >= 0.85
    # close to the float model's detection (measured on an AVX2 CPU: IoU >= 0.98, scores
    # within 0.004)
    assert iou(dets.xyxy[0], ref.xyxy[0]) > 0.95
    assert abs(float(dets.confidence[0]) - float(ref.confidence[0])) < 0.05


def test_int8_person_in_a_post_crop(int8: OnnxPersonDetector) -> None:
    """The head-and-shoulders person pasted behind the desk (as in test_detector.py)."""
    scene = empty_office()
    grace = load_rgb(MPL_SAMPLE_DATA / "grace_hopper.jpg")[10:470]
    scene[430:520, 590:690] = cv2.resize(grace, (100, 90), interpolation=cv2.INTER_AREA)
    crop = np.ascontiguousarray(scene[280:540, 510:770])

    dets = int8.detect(crop)

    assert len(dets) >= 1
    assert iou(dets.shifted(510, 280).xyxy[0], (590, 430, 690, 520)) > 0.5


@pytest.mark.parametrize("make", EMPTY_SCENES)
def test_int8_finds_nobody_in_an_empty_scene(
    int8: OnnxPersonDetector,
    int8_sensitive: OnnxPersonDetector,
    make: Callable[[], np.ndarray],
) -> None:
    image = make()
    assert len(int8.detect(image)) == 0
    # the same margin as the float model: no score reaches 0.2 (measured maximum about 0.04)
    assert len(int8_sensitive.detect(image)) == 0


# Times that cover every post seated and every absence of the demo script (w2 away 12-50 s,
# w3 25-31 s, w4 70-105 s), none of them mid-walk.
DEMO_TIMES = [5.0, 20.0, 28.0, 45.0, 60.0, 75.0, 90.0, 110.0]


def test_int8_agrees_with_fp32_on_the_demo_posts(
    int8: OnnxPersonDetector, fp32: OnnxPersonDetector
) -> None:
    script = default_script()
    regions = [
        PostRegion(p.id, [(float(x), float(y)) for x, y in p.polygon], script.size)
        for p in script.posts
    ]
    seen: dict[bool, int] = {True: 0, False: 0}
    for t in DEMO_TIMES:
        frame = render_frame(script, t)
        for region in regions:
            away = away_fraction(script, region.post, t)
            assert away in (0.0, 1.0), f"{region.post} mid-walk at {t}"
            staffed = away == 0.0
            crop = np.ascontiguousarray(region.crop(frame))
            got, ref = int8.detect(crop), fp32.detect(crop)
            where = f"{region.post} at {t} s"
            assert (len(ref) > 0) == staffed, where
            assert (len(got) > 0) == staffed, where
            if staffed:
                assert iou(got.xyxy[0], ref.xyxy[0]) > 0.8, where
                assert abs(float(got.confidence[0]) - float(ref.confidence[0])) < 0.05, where
            seen[staffed] += 1
    assert seen[True] >= 20 and seen[False] >= 5, seen
