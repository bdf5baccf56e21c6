"""A post as a region of a camera's image: its polygon, the crop the detector sees."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True, slots=True)
class CropBox:
    """An axis-aligned box in frame pixels (``x2``/``y2`` exclusive)."""

    x1: int
    y1: int
    x2: int
    y2: int

    @property
    def width(self) -> int:
        return self.x2 - self.x1

    @property
    def height(self) -> int:
        return self.y2 - self.y1


class PostRegion:
    """The polygon of one post, scaled to the frames actually received.

    The hall config draws polygons on an image of ``config_size``; a stream of another
    size (a sub-stream, a downscaled decode) gets the polygon scaled to fit.

    Args:
        post: Post id.
        polygon: ``[(x, y), ...]`` in the configured image's pixels.
        config_size: ``(width, height)`` of the configured image.
        margin: Fraction of the polygon's bounding box added on each side of the crop, so a
            clerk leaning out of the polygon is still whole in the crop.

    Example:
        >>> import numpy as np
        >>> r = PostRegion("w1", [(100, 100), (300, 100), (300, 400), (100, 400)], (1280, 720))
        >>> r.crop_box(640, 360)
        CropBox(x1=45, y1=42, x2=155, y2=208)
        >>> r.crop(np.zeros((360, 640, 3), np.uint8)).shape
        (166, 110, 3)
    """

    def __init__(
        self,
        post: str,
        polygon: list[tuple[float, float]],
        config_size: tuple[int, int],
        *,
        margin: float = 0.05,
    ) -> None:
        self.post = post
        self._polygon = np.asarray(polygon, np.float32)
        self._config_size = config_size
        self._margin = margin
        self._cache: dict[tuple[int, int], tuple[CropBox, np.ndarray]] = {}

    def _scaled(self, width: int, height: int) -> tuple[CropBox, np.ndarray]:
        key = (width, height)
        if key not in self._cache:
            sx = width / self._config_size[0]
            sy = height / self._config_size[1]
            pts = self._polygon * np.array([sx, sy], np.float32)
            x1, y1 = pts.min(axis=0)
            x2, y2 = pts.max(axis=0)
            mx, my = (x2 - x1) * self._margin, (y2 - y1) * self._margin
            box = CropBox(
                max(0, int(x1 - mx)),
                max(0, int(y1 - my)),
                min(width, int(np.ceil(x2 + mx))),
                min(height, int(np.ceil(y2 + my))),
            )
            self._cache[key] = (box, pts)
        return self._cache[key]

    def crop_box(self, width: int, height: int) -> CropBox:
        """The crop, in pixels of a ``width``×``height`` frame."""
        return self._scaled(width, height)[0]

    def polygon_in_crop(self, width: int, height: int) -> np.ndarray:
        """The polygon in the crop's own pixel coordinates, ``float32 (N, 2)``."""
        box, pts = self._scaled(width, height)
        return pts - np.array([box.x1, box.y1], np.float32)

    def crop(self, image: np.ndarray) -> np.ndarray:
        """The post's crop of a frame (a view, not a copy)."""
        box = self.crop_box(image.shape[1], image.shape[0])
        return image[box.y1 : box.y2, box.x1 : box.x2]

    def polygon_mask(self, width: int, height: int) -> np.ndarray:
        """A boolean mask of the polygon over the crop of a ``width``×``height`` frame."""
        box = self.crop_box(width, height)
        mask = np.zeros((box.height, box.width), np.uint8)
        cv2.fillPoly(mask, [np.round(self.polygon_in_crop(width, height)).astype(np.int32)], 1)
        return mask.astype(bool)
