"""A hall's own hygiene classifier (环境好/差) as a detector plugin, run by onnxruntime.

Where a hall trains a classifier of its window public areas, the hygiene watcher
(:mod:`edge.environment.hygiene`) can use it to replace or to confirm its reference method.
The classifier sits behind the same :class:`~edge.detectors.base.Detector` interface as the
person detector, registered as ``"hygiene_onnx"``, so a hall config names it like any other
plugin (``zones[].classifier.kind``).

Model I/O expected:

- **Input**: one float32 tensor ``(1, 3, H, W)``, RGB, values in ``[0, 1]`` (optionally
  normalised by ``mean``/``std`` per channel). ``H``/``W`` are taken from the model when it
  declares them as numbers, else from ``input_size``. The zone's crop is resized to it.
- **Output** (the first output): either one value, the probability that the zone is dirty
  (``output="probability"``, e.g. after a Sigmoid) or its logit (``output="logits"``); or
  two or more values per image, class probabilities (e.g. after a Softmax) or logits, of
  which ``dirty_index`` (default ``1``: ``[clean, dirty]``) is the dirty class.

:meth:`OnnxHygieneClassifier.detect` returns ONE detection covering the whole image, with
``class_id`` :data:`HYGIENE_DIRTY_CLASS` and the dirty probability as ``confidence``, or no
detection when the probability is below ``min_confidence``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import onnxruntime as ort

from edge.detectors import register_detector
from edge.detectors.detections import Detections
from edge.detectors.onnx_ssd import _usable_providers

logger = logging.getLogger(__name__)

#: ``class_id`` of the one detection a hygiene classifier returns: "this zone is dirty".
HYGIENE_DIRTY_CLASS = 1


class OnnxHygieneClassifier:
    """Grades a zone crop dirty or clean with a hall's ONNX model (see the module docstring).

    Args:
        model_path: The ``.onnx`` file.
        input_size: ``(width, height)`` fed to a model whose spatial size is not fixed.
        threads: Intra-op threads.
        providers: onnxruntime execution providers, in order of preference.
        output: ``"probability"`` if the model outputs probabilities, ``"logits"`` if it
            outputs logits (a sigmoid or softmax is applied here).
        dirty_index: Index of the dirty class in a multi-class output.
        mean: Per-channel mean subtracted from the ``[0, 1]`` RGB input.
        std: Per-channel divisor applied after ``mean``.
        min_confidence: Below this probability no detection is returned.

    Raises:
        FileNotFoundError: If ``model_path`` does not exist.
        ValueError: If an argument is out of range or the model's input is not 4-D.

    Example:
        >>> from edge.detectors import create_detector
        >>> clf = create_detector("hygiene_onnx", model_path="hall-hygiene.onnx")  # doctest: +SKIP
        >>> found = clf.detect(zone_crop)  # doctest: +SKIP
        >>> p_dirty = float(found.confidence[0]) if len(found) else 0.0  # doctest: +SKIP
    """

    name = "hygiene_onnx"

    def __init__(
        self,
        model_path: Path | str,
        *,
        input_size: tuple[int, int] = (224, 224),
        threads: int = 1,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        output: Literal["probability", "logits"] = "probability",
        dirty_index: int = 1,
        mean: tuple[float, float, float] = (0.0, 0.0, 0.0),
        std: tuple[float, float, float] = (1.0, 1.0, 1.0),
        min_confidence: float = 0.01,
    ) -> None:
        path = Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(f"hygiene classifier model not found: {path}")
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if output not in ("probability", "logits"):
            raise ValueError(f"output must be 'probability' or 'logits', got {output!r}")
        if min(input_size) < 1 or dirty_index < 0 or min(std) <= 0:
            raise ValueError("input_size and std must be positive and dirty_index >= 0")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            str(path), sess_options=options, providers=_usable_providers(providers)
        )
        model_input = self._session.get_inputs()[0]
        if len(model_input.shape) != 4:
            raise ValueError(f"expected a (1, 3, H, W) input, the model has {model_input.shape}")
        self._input = model_input.name
        fixed_h, fixed_w = model_input.shape[2], model_input.shape[3]
        if isinstance(fixed_h, int) and isinstance(fixed_w, int):
            if (fixed_w, fixed_h) != tuple(input_size):
                logger.info("%s: the model fixes its input at %dx%d", path, fixed_w, fixed_h)
            input_size = (fixed_w, fixed_h)
        self.model_path = path
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self._output = output
        self._dirty_index = dirty_index
        self._mean = np.asarray(mean, np.float32).reshape(3, 1, 1)
        self._std = np.asarray(std, np.float32).reshape(3, 1, 1)
        self._min_confidence = float(min_confidence)
        logger.info("loaded hygiene classifier %s (input %s, %s)", path, self.input_size, output)

    def probability(self, image: np.ndarray) -> float:
        """The probability that ``image`` (RGB ``uint8`` ``(H, W, 3)``) shows a dirty zone."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 image, got {image.dtype} {image.shape}")
        resized = cv2.resize(image, self.input_size, interpolation=cv2.INTER_AREA)
        chw = resized.transpose(2, 0, 1).astype(np.float32) / 255.0
        batch = ((chw - self._mean) / self._std)[np.newaxis]
        (raw,) = self._session.run(None, {self._input: np.ascontiguousarray(batch)})[:1]
        values = np.asarray(raw, np.float64).reshape(-1)
        if values.size == 1:
            p = float(values[0])
            p = 1.0 / (1.0 + np.exp(-p)) if self._output == "logits" else p
        else:
            if self._output == "logits":
                values = np.exp(values - values.max())
                values /= values.sum()
            p = float(values[min(self._dirty_index, values.size - 1)])
        return float(np.clip(p, 0.0, 1.0))

    def detect(self, image: np.ndarray) -> Detections:
        """Grade ``image``: one whole-image detection of class :data:`HYGIENE_DIRTY_CLASS`.

        Args:
            image: The zone's crop, RGB ``uint8`` ``(H, W, 3)``.

        Returns:
            One detection with the dirty probability as ``confidence``, or none below
            ``min_confidence``.
        """
        p = self.probability(image)
        if p < self._min_confidence:
            return Detections.empty()
        h, w = image.shape[:2]
        return Detections(
            np.array([[0.0, 0.0, float(w), float(h)]], np.float32),
            np.array([p], np.float32),
            np.array([HYGIENE_DIRTY_CLASS], np.int32),
        )


register_detector(OnnxHygieneClassifier.name, OnnxHygieneClassifier)
