"""The motion gate: skip a post crop whose pixels have not changed since its last inference."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

GATE_WIDTH = 96
"""Crops are compared at this width: enough to see a person move, cheap to diff."""


def gate_image(crop: np.ndarray) -> np.ndarray:
    """The small, blurred grey version of a crop that gates and empty looks compare.

    Example:
        >>> import numpy as np
        >>> gate_image(np.zeros((200, 192, 3), np.uint8)).shape
        (100, 96)
    """
    h, w = crop.shape[:2]
    out_h = max(1, round(h * GATE_WIDTH / max(w, 1)))
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (GATE_WIDTH, out_h), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(small, (3, 3), 0)


def changed_fraction(
    a: np.ndarray, b: np.ndarray, pixel_delta: int, mask: np.ndarray | None = None
) -> float:
    """Fraction of pixels whose grey level differs by more than ``pixel_delta``.

    Global brightness changes (a cloud, lights switched) are removed first by matching the
    medians, so only local change counts.

    Example:
        >>> import numpy as np
        >>> a = np.full((10, 10), 100, np.uint8); b = a.copy(); b[:3] = 200
        >>> changed_fraction(a, b, 25)
        0.3
        >>> changed_fraction(a, a + 40, 25)   # uniformly brighter: no change
        0.0
    """
    if a.shape != b.shape:
        return 1.0
    diff = a.astype(np.int16) - b.astype(np.int16)
    diff -= np.int16(np.median(diff))
    changed = np.abs(diff) > pixel_delta
    if mask is not None:
        total = int(mask.sum())
        return float(changed[mask].sum()) / total if total else 0.0
    return float(changed.mean())


@dataclass(frozen=True, slots=True)
class GateDecision:
    """What the gate decided for one look at a crop."""

    infer: bool
    changed: float
    """Fraction of pixels changed since the last inference (1.0 when there was none)."""
    small: np.ndarray
    """The gate image of this look (reuse it, don't recompute)."""


class MotionGate:
    """Per-post gate: infer only when the crop changed since the last inference.

    Args:
        threshold: Fraction of changed pixels at or above which the crop is inferred.
        pixel_delta: Grey-level difference that counts a pixel as changed.

    Example:
        >>> import numpy as np
        >>> gate = MotionGate(threshold=0.01, pixel_delta=25)
        >>> crop = np.zeros((120, 96, 3), np.uint8)
        >>> gate.look(crop).infer            # first look: always infer
        True
        >>> gate.inferred(gate.look(crop)); gate.look(crop).infer
        False
        >>> crop[:60] = 255; gate.look(crop).infer
        True
    """

    def __init__(self, *, threshold: float, pixel_delta: int) -> None:
        self.threshold = threshold
        self.pixel_delta = pixel_delta
        self._reference: np.ndarray | None = None

    def look(self, crop: np.ndarray) -> GateDecision:
        small = gate_image(crop)
        if self._reference is None:
            return GateDecision(True, 1.0, small)
        changed = changed_fraction(self._reference, small, self.pixel_delta)
        return GateDecision(changed >= self.threshold, changed, small)

    def inferred(self, decision: GateDecision) -> None:
        """Record that the crop of ``decision`` went through the detector."""
        self._reference = decision.small

    def reset(self) -> None:
        """Forget the reference (after a camera reconnect)."""
        self._reference = None
