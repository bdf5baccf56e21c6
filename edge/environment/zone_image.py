"""A zone's image at compare scale, and how much of it differs from a clean reference.

The image side of the hygiene watch (:mod:`edge.environment.hygiene`); the reference's
life (operator-set, saved, learned, adapted) is in :mod:`edge.environment.hygiene_reference`.
A measurement, at most ``max_side`` pixels so that one costs well under 1 ms:

1. :func:`downscale`: the zone's crop is downscaled by a whole factor (area average:
   OpenCV's fast path; :func:`zone_geometry` picks the factor and trims the crop to it)
   and blurred a little against sensor noise.
2. **Light** (:func:`difference`): a gain per colour channel is estimated as the median
   ratio of the current to the reference level over the zone, and divided out. A
   whole-scene brightness change (clouds, lights, auto exposure) or a mild colour cast
   leaves no difference; the median ignores whatever litter or person covers less than half
   of the zone.
3. A pixel differs when, in any channel, its level lies more than ``pixel_delta`` outside
   the range of the reference's 3x3 neighbourhood (:class:`ZoneLook`, so a one-pixel camera
   shake or a polygon edge does not count). A band of ``edge_px`` along the polygon's edge
   is ignored and isolated pixels are removed (3x3 opening).
4. The score is the differing fraction of the zone's area.

:func:`people_in_zone` maps person boxes onto the zone at compare scale: whether one is in
the zone, else the pixels of those touching it (left out of a measurement).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.detectors.detections import Detections
from edge.regions.post_region import CropBox, PostRegion

_KERNEL3 = np.ones((3, 3), np.uint8)
_ONES3 = np.ones((1, 3), np.float32)  # sums the channels (cv2.transform)
_MIN_LEVEL = 8.0
"""Reference levels are floored at this for the light's gain (dark pixels are noisy)."""


@dataclass(frozen=True, slots=True)
class ZoneGeometry:
    """The zone at compare scale for one frame size.

    Attributes:
        box: The zone's crop, frame pixels (trimmed to whole multiples of the factor).
        size: Compare ``(width, height)``.
        scale: Compare pixels per frame pixel ``(x, y)``.
        polygon: ``bool (h, w)``: the polygon.
        inner: ``bool (h, w)``: the polygon less its edge band; what is measured.
        area: Pixels of ``inner``.
        grid_step: The light's gain is estimated on every ``grid_step``-th row and column.
        grid: ``bool``: ``inner[::grid_step, ::grid_step]``.
    """

    box: CropBox
    size: tuple[int, int]
    scale: tuple[float, float]
    polygon: np.ndarray
    inner: np.ndarray
    area: int
    grid_step: int
    grid: np.ndarray

    def frame_box(self, rect: tuple[int, int, int, int], width: int, height: int) -> CropBox:
        """A compare-scale rectangle ``(x, y, w, h)`` in pixels of a frame of this size.

        Rounded outwards; the right and bottom edges are clipped to ``width`` and ``height``.
        """
        x, y, w, h = rect
        sx, sy = self.scale
        return CropBox(
            self.box.x1 + int(x / sx),
            self.box.y1 + int(y / sy),
            min(width, self.box.x1 + int(np.ceil((x + w) / sx))),
            min(height, self.box.y1 + int(np.ceil((y + h) / sy))),
        )


@dataclass(frozen=True, slots=True)
class ZoneLook:
    """A zone image (``float32``, compare scale) with its 3x3 minimum and maximum."""

    image: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    @classmethod
    def of(cls, image: np.ndarray) -> ZoneLook:
        """The look of ``image`` (converted to contiguous ``float32``)."""
        image = np.ascontiguousarray(image, np.float32)
        return cls(image, cv2.erode(image, _KERNEL3), cv2.dilate(image, _KERNEL3))


@dataclass(frozen=True, slots=True)
class Difference:
    """How a look differs from the reference.

    Attributes:
        score: Differing fraction of the zone.
        changed: ``bool (h, w)``: the differing pixels.
        normalised: The current look with the reference's light, ``float32 (h, w, 3)``.
    """

    score: float
    changed: np.ndarray
    normalised: np.ndarray

    def changed_rect(self) -> tuple[int, int, int, int] | None:
        """The bounding rectangle ``(x, y, w, h)`` of the changed pixels; ``None`` if none."""
        if not self.changed.any():
            return None
        x, y, w, h = cv2.boundingRect(self.changed.view(np.uint8))
        return (x, y, w, h)


@dataclass(frozen=True, slots=True)
class PeopleCheck:
    """Where people are relative to the zone.

    Attributes:
        in_zone: A person is in the zone (no measurement).
        overlapping: ``bool (h, w)``: boxes of people touching the zone, or ``None``.
    """

    in_zone: bool
    overlapping: np.ndarray | None


def zone_geometry(
    region: PostRegion, width: int, height: int, *, max_side: int, edge_px: int
) -> ZoneGeometry:
    """The zone of ``region`` at compare scale in frames of ``width`` x ``height``.

    Args:
        region: The zone's polygon.
        width: Frame width, pixels.
        height: Frame height, pixels.
        max_side: Longest compare side; the crop is downscaled by the smallest whole factor
            that fits.
        edge_px: Band along the polygon's edge left out of ``inner``, compare pixels.

    Returns:
        The geometry.

    Example:
        >>> r = PostRegion("w1-public", [(10, 10), (90, 10), (90, 70), (10, 70)], (100, 80))
        >>> g = zone_geometry(r, 100, 80, max_side=40, edge_px=2)
        >>> g.size, g.box  # a factor of 3; the crop 6..94 is trimmed to 87 pixels
        ((29, 22), CropBox(x1=6, y1=7, x2=93, y2=73))
    """
    crop = region.crop_box(width, height)
    factor = max(1, -(-max(crop.width, crop.height) // max_side))
    cw, ch = max(1, crop.width // factor), max(1, crop.height // factor)
    # trimmed to whole multiples of the factor (at most factor - 1 pixels right and below)
    box = CropBox(
        crop.x1, crop.y1, min(width, crop.x1 + cw * factor), min(height, crop.y1 + ch * factor)
    )
    sx, sy = cw / max(box.width, 1), ch / max(box.height, 1)
    points = region.polygon_in_crop(width, height) * np.array([sx, sy], np.float32)
    polygon = np.zeros((ch, cw), np.uint8)
    cv2.fillPoly(polygon, [np.round(points).astype(np.int32)], 1)
    inner: np.ndarray = polygon
    if edge_px > 0:
        k = 2 * edge_px + 1
        inner = cv2.erode(polygon, np.ones((k, k), np.uint8), borderValue=0)
        if not inner.any():
            inner = polygon
    area = int(np.count_nonzero(inner))
    step = max(1, round(np.sqrt(area / 1000)))  # about a thousand samples
    grid = inner[::step, ::step].astype(bool)
    return ZoneGeometry(
        box, (cw, ch), (sx, sy), polygon.astype(bool), inner.astype(bool), area, step, grid
    )


def downscale(image: np.ndarray, geom: ZoneGeometry, blur_px: int) -> np.ndarray:
    """The zone's crop of a frame's ``image`` at compare scale, blurred, ``float32``.

    Args:
        image: The frame, RGB ``uint8``, of the size ``geom`` was made for.
        geom: The zone at compare scale.
        blur_px: Radius of the Gaussian blur, compare pixels (0: none).

    Returns:
        ``float32 (h, w, 3)`` of ``geom.size``.
    """
    b = geom.box
    small = cv2.resize(image[b.y1 : b.y2, b.x1 : b.x2], geom.size, interpolation=cv2.INTER_AREA)
    if blur_px > 0:
        k = 2 * blur_px + 1
        small = cv2.GaussianBlur(small, (k, k), 0)
    return small.astype(np.float32)


def difference(
    cur: np.ndarray,
    ref: ZoneLook,
    geom: ZoneGeometry,
    delta: int,
    exclude: np.ndarray | None = None,
) -> Difference:
    """The pixels of ``cur`` that differ from ``ref`` once the light is normalised.

    Args:
        cur: The current look, from :func:`downscale`.
        ref: The reference.
        geom: The zone at compare scale.
        delta: Level difference (any channel) that makes a pixel differ.
        exclude: ``bool (h, w)``: pixels never counted (people touching the zone).

    Returns:
        The score, the differing pixels and the light-normalised look.
    """
    step = geom.grid_step
    here = cur[::step, ::step][geom.grid]
    there = np.maximum(ref.image[::step, ::step][geom.grid], _MIN_LEVEL)
    ratios = np.ascontiguousarray((here / there).T)
    middle = ratios.shape[1] // 2
    gains = np.clip(np.partition(ratios, middle, axis=1)[:, middle], 0.25, 4.0)
    norm = cv2.transform(cur, np.diag(1.0 / gains).astype(np.float32))
    # how far each channel lies outside the reference's 3x3 range; any channel counts
    outside = cv2.max(cv2.subtract(norm, ref.hi), cv2.subtract(ref.lo, norm))
    _, over = cv2.threshold(outside, delta, 1.0, cv2.THRESH_BINARY)
    differs = (cv2.transform(over, _ONES3) > 0.5) & geom.inner
    changed = cv2.morphologyEx(differs.view(np.uint8), cv2.MORPH_OPEN, _KERNEL3)
    if exclude is not None:
        changed[exclude] = 0
    mask = changed.view(bool)
    return Difference(float(np.count_nonzero(mask)) / max(geom.area, 1), mask, norm)


def people_in_zone(people: Detections, geom: ZoneGeometry, person_overlap: float) -> PeopleCheck:
    """Whether a person is in the zone; else the boxes of those touching it.

    Args:
        people: Person detections in frame pixels.
        geom: The zone at compare scale.
        person_overlap: A person is in the zone when box ∩ polygon covers at least this
            fraction of the smaller of their box and the zone.

    Returns:
        Whether a person is in the zone; if not, the compare-scale mask of the boxes of
        people touching it (``None`` when nobody does).
    """
    overlapping: np.ndarray | None = None
    sx, sy = geom.scale
    width, height = geom.size
    zone_area = float(np.count_nonzero(geom.polygon))
    for x1, y1, x2, y2 in people.xyxy.tolist():
        bx1, by1 = (x1 - geom.box.x1) * sx, (y1 - geom.box.y1) * sy
        bx2, by2 = (x2 - geom.box.x1) * sx, (y2 - geom.box.y1) * sy
        ix1, iy1 = max(0, int(bx1)), max(0, int(by1))
        ix2, iy2 = min(width, int(np.ceil(bx2))), min(height, int(np.ceil(by2)))
        if ix2 <= ix1 or iy2 <= iy1:
            continue
        overlap = float(np.count_nonzero(geom.polygon[iy1:iy2, ix1:ix2]))
        if overlap == 0:
            continue
        box_area = max(bx2 - bx1, 1.0) * max(by2 - by1, 1.0)
        if overlap >= person_overlap * min(box_area, zone_area):
            return PeopleCheck(True, None)
        if overlapping is None:
            overlapping = np.zeros((height, width), bool)
        overlapping[iy1:iy2, ix1:ix2] = True
    return PeopleCheck(False, overlapping)
