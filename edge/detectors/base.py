"""What every person detector looks like to the rest of the edge worker."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from edge.detectors.detections import Detections


@runtime_checkable
class Detector(Protocol):
    """A detector of people in one RGB image.

    Implementations are called from one thread at a time (the analysis thread runs one crop
    after another), so they need not be thread-safe.

    Attributes:
        name: Short name of the detector, for logs and stats (e.g. ``"ssdlite_person"``).

    Example:
        >>> import numpy as np
        >>> class Nobody:
        ...     name = "nobody"
        ...     def detect(self, image: np.ndarray) -> Detections:
        ...         return Detections.empty()
        >>> isinstance(Nobody(), Detector)
        True
    """

    name: str

    def detect(self, image: np.ndarray) -> Detections:
        """Find people in ``image``.

        Args:
            image: RGB ``uint8`` array of shape ``(H, W, 3)``, any size.

        Returns:
            The detections, with ``xyxy`` in pixels of ``image``.
        """
        ...
