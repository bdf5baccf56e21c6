"""The value type every detector returns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Detections:
    """Detected objects in one image, as parallel numpy arrays.

    Attributes:
        xyxy: ``float32`` array of shape ``(N, 4)``: x1, y1, x2, y2 in pixels of the image
            that was passed to the detector.
        confidence: ``float32`` array of shape ``(N,)`` in ``[0, 1]``.
        class_id: ``int32`` array of shape ``(N,)``; ``1`` is a person for the default model.

    Example:
        >>> import numpy as np
        >>> d = Detections.empty()
        >>> len(d)
        0
        >>> d = Detections(np.array([[0, 0, 10, 20]], np.float32), np.array([0.9], np.float32),
        ...                np.array([1], np.int32))
        >>> float(d.area[0])
        200.0
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int32)
        )

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(self, mask: np.ndarray | slice) -> Detections:
        return Detections(self.xyxy[mask], self.confidence[mask], self.class_id[mask])

    @property
    def area(self) -> np.ndarray:
        w = np.clip(self.xyxy[:, 2] - self.xyxy[:, 0], 0, None)
        h = np.clip(self.xyxy[:, 3] - self.xyxy[:, 1], 0, None)
        return (w * h).astype(np.float32)

    def shifted(self, dx: float, dy: float) -> Detections:
        """Return the detections moved by ``(dx, dy)`` pixels (crop → frame coordinates)."""
        offset = np.array([dx, dy, dx, dy], np.float32)
        return Detections(self.xyxy + offset, self.confidence, self.class_id)
