"""The default person detector, run for real on the committed ONNX model.

The people are real photos that ship inside installed packages (scikit-image's
``astronaut.png`` and ``camera.png``, matplotlib's ``grace_hopper.jpg``); the empty scenes
are drawn here. Every expected box below was read off the photos by eye.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest
import skimage

from edge.detectors import (
    DEFAULT_MODEL_PATH,
    DETECTORS,
    Detections,
    Detector,
    OnnxPersonDetector,
    create_detector,
    register_detector,
)
from edge.detectors.onnx_ssd import MODEL_FILENAME, MODELS_DIR_ENV, default_model_path

SKIMAGE_DATA = Path(skimage.__file__).parent / "data"
MPL_SAMPLE_DATA = Path(matplotlib.get_data_path()) / "sample_data"

Box = tuple[float, float, float, float]


def load_rgb(path: Path) -> np.ndarray:
    """An image file as RGB ``uint8`` (grayscale files are stacked to three channels)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, f"cannot read {path}"
    if img.ndim == 2:
        return np.ascontiguousarray(np.stack([img] * 3, axis=-1))
    return np.ascontiguousarray(cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB))


def iou(a: Box | np.ndarray, b: Box | np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


# --- empty scenes -------------------------------------------------------------------------


def _noise(img: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img.astype(np.float32) + rng.normal(0, sigma, img.shape), 0, 255).astype(
        np.uint8
    )


def wall_and_desk(w: int = 640, h: int = 360) -> np.ndarray:
    """A shaded wall, a wooden desk and a switched-off monitor, with sensor noise."""
    yy = np.mgrid[0:h, 0:w][0].astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    img[:] = (200, 196, 186)
    img -= (yy / h * 30)[..., None]
    desk_y = int(h * 0.62)
    img[desk_y:] = (150, 110, 75)
    img[desk_y : desk_y + 6] = (120, 85, 55)
    cv2.rectangle(
        img, (int(w * 0.62), int(h * 0.35)), (int(w * 0.8), int(h * 0.58)), (35, 35, 40), -1
    )
    cv2.rectangle(img, (int(w * 0.70), int(h * 0.58)), (int(w * 0.72), desk_y), (60, 60, 60), -1)
    return _noise(img, 3, seed=1)


def empty_office(w: int = 1280, h: int = 720) -> np.ndarray:
    """A service window with nobody at it: wall, window, shelf, desk, monitor, empty chair."""
    img = np.empty((h, w, 3), np.uint8)
    img[:] = (214, 210, 200)
    # window with mullions
    cv2.rectangle(img, (80, 90), (420, 380), (225, 236, 245), -1)
    for x in (193, 306):
        cv2.line(img, (x, 90), (x, 380), (150, 150, 150), 6)
    cv2.line(img, (80, 235), (420, 235), (150, 150, 150), 6)
    cv2.rectangle(img, (80, 90), (420, 380), (120, 120, 120), 8)
    # shelf with binders
    cv2.rectangle(img, (880, 150), (1180, 160), (110, 80, 50), -1)
    colours = [(40, 60, 150), (150, 40, 40), (40, 120, 60), (200, 170, 40), (90, 90, 90)]
    for i in range(12):
        x = 890 + i * 24
        cv2.rectangle(img, (x, 70 + (i % 3) * 6), (x + 20, 150), colours[i % 5], -1)
    # empty office chair (back, seat, post, base)
    cv2.rectangle(img, (560, 300), (720, 470), (45, 45, 50), -1, lineType=cv2.LINE_AA)
    cv2.rectangle(img, (545, 470), (735, 500), (40, 40, 45), -1)
    cv2.rectangle(img, (633, 500), (647, 560), (70, 70, 70), -1)
    # desk, monitor, keyboard
    cv2.rectangle(img, (0, 520), (w, h), (160, 120, 80), -1)
    cv2.rectangle(img, (0, 520), (w, 532), (125, 90, 60), -1)
    cv2.rectangle(img, (760, 330), (1000, 480), (30, 30, 35), -1)
    cv2.rectangle(img, (870, 480), (890, 520), (60, 60, 60), -1)
    cv2.rectangle(img, (780, 540), (960, 570), (50, 50, 50), -1)
    # a potted plant: pot and a few leaves
    cv2.rectangle(img, (1150, 440), (1210, 520), (70, 90, 150), -1)
    for dx, dy in ((-30, -60), (0, -90), (30, -60), (-15, -40), (20, -35)):
        cv2.ellipse(img, (1180 + dx, 440 + dy), (18, 40), dx, 0, 360, (50, 120, 50), -1)
    return _noise(img, 2, seed=2)


def gradient_noise(w: int = 640, h: int = 360) -> np.ndarray:
    """Colour gradients with strong noise."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([xx / w * 255, yy / h * 255, (1 - xx / w) * 180 + 40], axis=-1)
    return _noise(img, 12, seed=3)


def office_post_crop() -> np.ndarray:
    """The crop a post covers in :func:`empty_office` (the chair and desk), about 260x260."""
    return np.ascontiguousarray(empty_office()[280:540, 510:770])


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def detector() -> OnnxPersonDetector:
    return OnnxPersonDetector(threads=2)


@pytest.fixture(scope="module")
def sensitive() -> OnnxPersonDetector:
    """The same model with a low threshold, to check the margin on empty scenes."""
    return OnnxPersonDetector(threads=2, score_threshold=0.2)


# --- people -------------------------------------------------------------------------------

# photo, expected person box (x1, y1, x2, y2), a point on the face
PHOTOS = [
    pytest.param(SKIMAGE_DATA / "astronaut.png", (0, 15, 375, 512), (211, 140), id="astronaut"),
    pytest.param(SKIMAGE_DATA / "camera.png", (0, 60, 330, 512), (195, 125), id="camera"),
    pytest.param(
        MPL_SAMPLE_DATA / "grace_hopper.jpg", (0, 10, 512, 600), (260, 225), id="grace_hopper"
    ),
]


@pytest.mark.parametrize(("path", "expected", "face"), PHOTOS)
def test_finds_the_one_person_in_a_photo(
    detector: OnnxPersonDetector, path: Path, expected: Box, face: tuple[int, int]
) -> None:
    image = load_rgb(path)
    dets = detector.detect(image)

    assert len(dets) == 1, dets
    (x1, y1, x2, y2) = dets.xyxy[0]
    assert iou(dets.xyxy[0], expected) > 0.75, (dets.xyxy[0], expected)
    assert x1 <= face[0] <= x2 and y1 <= face[1] <= y2
    assert dets.confidence[0] >= 0.85
    assert dets.class_id.tolist() == [1]
    assert dets.xyxy.dtype == np.float32 and dets.confidence.dtype == np.float32
    assert dets.class_id.dtype == np.int32
    h, w = image.shape[:2]
    assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h


def test_grayscale_photo_is_really_grayscale() -> None:
    """camera.png is single-channel on disk; the test stacks it (the detector wants RGB)."""
    raw = cv2.imread(str(SKIMAGE_DATA / "camera.png"), cv2.IMREAD_UNCHANGED)
    assert raw is not None and raw.ndim == 2
    assert load_rgb(SKIMAGE_DATA / "camera.png").shape == (*raw.shape, 3)


@pytest.mark.parametrize(("path", "expected", "face"), PHOTOS)
def test_boxes_are_in_the_input_images_pixels(
    detector: OnnxPersonDetector, path: Path, expected: Box, face: tuple[int, int]
) -> None:
    """Padding the photo into a bigger canvas moves the box by the padding offset."""
    photo = load_rgb(path)
    h, w = photo.shape[:2]
    dx, dy = 300, 140
    canvas = np.full((h + 2 * dy, w + 2 * dx, 3), 190, np.uint8)
    canvas[dy : dy + h, dx : dx + w] = photo

    alone = detector.detect(photo)
    padded = detector.detect(canvas)

    assert len(alone) == 1 and len(padded) == 1
    moved_back = padded.shifted(-dx, -dy).xyxy[0]
    # The model sees the canvas at 300x300, a coarser view of the person: the box moves by up
    # to about 30 px (measured); a wrong mapping (no scaling, swapped axes) is off by hundreds.
    tolerance = 0.1 * max(h, w)
    np.testing.assert_allclose(moved_back, alone.xyxy[0], atol=tolerance)
    assert iou(moved_back, expected) > 0.7


def test_boxes_scale_with_a_stretched_image(detector: OnnxPersonDetector) -> None:
    """A non-square resize of the photo gives the same box in the new pixels."""
    photo = load_rgb(SKIMAGE_DATA / "astronaut.png")
    stretched = cv2.resize(photo, (1024, 384), interpolation=cv2.INTER_LINEAR)
    sx, sy = 1024 / 512, 384 / 512

    a = detector.detect(photo)
    b = detector.detect(stretched)

    assert len(a) == 1 and len(b) == 1
    back = b.xyxy[0] / np.array([sx, sy, sx, sy], np.float32)
    np.testing.assert_allclose(back, a.xyxy[0], atol=0.05 * 512)


def test_person_in_a_post_crop(detector: OnnxPersonDetector) -> None:
    """A head-and-shoulders person 90 px tall, pasted behind the desk, found in a post crop."""
    scene = empty_office()
    grace = load_rgb(MPL_SAMPLE_DATA / "grace_hopper.jpg")[10:470]
    person = cv2.resize(grace, (100, 90), interpolation=cv2.INTER_AREA)
    scene[430:520, 590:690] = person
    crop = np.ascontiguousarray(scene[280:540, 510:770])

    dets = detector.detect(crop)

    assert len(dets) >= 1
    assert iou(dets.shifted(510, 280).xyxy[0], (590, 430, 690, 520)) > 0.5


# --- nobody -------------------------------------------------------------------------------

EMPTY_SCENES: list[object] = [
    pytest.param(wall_and_desk, id="wall_and_desk"),
    pytest.param(empty_office, id="empty_office_1280x720"),
    pytest.param(office_post_crop, id="empty_office_post_crop"),
    pytest.param(gradient_noise, id="gradient_noise"),
    pytest.param(lambda: np.full((200, 200, 3), 128, np.uint8), id="uniform_grey"),
]


@pytest.mark.parametrize("make", EMPTY_SCENES)
def test_finds_nobody_in_an_empty_scene(
    detector: OnnxPersonDetector,
    sensitive: OnnxPersonDetector,
    make: Callable[[], np.ndarray],
) -> None:
    image = make()
    assert len(detector.detect(image)) == 0
    # and not even close: no score reaches 0.2 (measured maximum about 0.05)
    assert len(sensitive.detect(image)) == 0


# --- model file, inputs, factory ----------------------------------------------------------


def test_committed_model_matches_its_recorded_sha256() -> None:
    recorded = (DEFAULT_MODEL_PATH.parent / f"{MODEL_FILENAME}.sha256").read_text().split()
    assert recorded[1] == MODEL_FILENAME
    assert hashlib.sha256(DEFAULT_MODEL_PATH.read_bytes()).hexdigest() == recorded[0]


def test_missing_model_raises_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.onnx"
    with pytest.raises(FileNotFoundError, match="not found") as info:
        OnnxPersonDetector(model_path=missing)
    assert str(missing) in str(info.value)


def test_models_dir_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path))
    assert default_model_path() == tmp_path / MODEL_FILENAME
    with pytest.raises(FileNotFoundError) as info:
        create_detector()
    assert str(tmp_path / MODEL_FILENAME) in str(info.value)

    (tmp_path / MODEL_FILENAME).symlink_to(DEFAULT_MODEL_PATH)
    det = create_detector(threads=1)
    assert isinstance(det, OnnxPersonDetector)
    assert det.model_path == tmp_path / MODEL_FILENAME

    monkeypatch.setenv(MODELS_DIR_ENV, "")
    assert default_model_path() == DEFAULT_MODEL_PATH


def test_score_threshold_filters(detector: OnnxPersonDetector) -> None:
    photo = load_rgb(SKIMAGE_DATA / "astronaut.png")  # scores about 0.90
    assert len(OnnxPersonDetector(threads=1, score_threshold=0.97).detect(photo)) == 0
    low = OnnxPersonDetector(threads=1, score_threshold=0.05).detect(photo)
    assert len(low) > len(detector.detect(photo))
    assert np.all(np.diff(low.confidence) <= 0), "best first"


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(np.zeros((64, 64), np.uint8), id="grayscale_2d"),
        pytest.param(np.zeros((64, 64, 4), np.uint8), id="rgba"),
        pytest.param(np.zeros((64, 64, 3), np.float32), id="float"),
    ],
)
def test_rejects_images_that_are_not_rgb_uint8(
    detector: OnnxPersonDetector, bad: np.ndarray
) -> None:
    with pytest.raises(ValueError, match="expected"):
        detector.detect(bad)


def test_empty_image_gives_no_detections(detector: OnnxPersonDetector) -> None:
    assert len(detector.detect(np.zeros((0, 10, 3), np.uint8))) == 0


def test_non_contiguous_input(detector: OnnxPersonDetector) -> None:
    photo = load_rgb(MPL_SAMPLE_DATA / "grace_hopper.jpg")
    view = photo[:, ::-1]  # a mirrored view, not C-contiguous
    dets = detector.detect(view)
    assert len(dets) == 1
    assert iou(dets.xyxy[0], (0, 10, 512, 600)) > 0.75


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        OnnxPersonDetector(threads=0)
    with pytest.raises(ValueError):
        OnnxPersonDetector(score_threshold=1.5)


def test_factory_and_registry() -> None:
    det = create_detector("ssdlite_person", threads=1, score_threshold=0.6)
    assert isinstance(det, OnnxPersonDetector) and isinstance(det, Detector)
    assert det.name == "ssdlite_person"

    with pytest.raises(ValueError, match="unknown detector kind 'yolo'"):
        create_detector("yolo")

    class Nobody:
        name = "nobody"

        def __init__(self, **kwargs: object) -> None:
            self.kwargs = kwargs

        def detect(self, image: np.ndarray) -> Detections:
            return Detections.empty()

    register_detector("nobody", Nobody)
    try:
        plugin = create_detector("nobody", threads=3)
        assert isinstance(plugin, Nobody) and isinstance(plugin, Detector)
        assert plugin.kwargs == {"threads": 3}
        with pytest.raises(ValueError, match="already registered"):
            register_detector("nobody", OnnxPersonDetector)
    finally:
        DETECTORS.pop("nobody", None)


def test_default_model_path_is_the_committed_model() -> None:
    assert DEFAULT_MODEL_PATH.is_file()
    assert DEFAULT_MODEL_PATH.parent.name == "models"
    assert DEFAULT_MODEL_PATH.stat().st_size < 20_000_000
