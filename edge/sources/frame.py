"""The value type that flows out of every frame source."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded picture from a camera.

    Attributes:
        camera: Camera id from the hall config.
        image: RGB image, ``uint8``, shape ``(H, W, 3)``.
        pts: Presentation time in seconds since the start of the stream or file. Trackers
            are timed by this, never by the wall clock.
        wall: UTC time the frame was received (for live sources) or the stream start plus
            ``pts`` (for files). Facts are stamped with this.
    """

    camera: str
    image: np.ndarray
    pts: float
    wall: datetime

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    def wall_at(self, pts: float) -> datetime:
        """The wall time of stream time ``pts``, anchored on this frame."""
        return self.wall - timedelta(seconds=self.pts - pts)
