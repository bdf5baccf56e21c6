"""Finding the faces in a snapshot and blurring them beyond recovery.

Two finders are combined, so that a face one of them misses is still covered by the other:

- the **person detector**'s boxes: the head region of every person box, a square at the top
  of the box as wide as :data:`HEAD_FRACTION` of the box's width (people turn, bend and
  lean: the head is not always in the middle of the box), see :func:`head_regions`;
- scikit-image's **LBP frontal-face cascade** (:class:`FaceCascade`), for faces of people
  the detector missed (a head over a partition, a person mostly hidden).

Over-blurring something that is not a face is acceptable; leaving a face visible is not.

Each region is enlarged by a margin and **pixelated** to a few blocks across (block means:
the face's detail is gone, not hidden) and then smoothed so that the blocks do not draw the
eye (:func:`blur_regions`). Nothing of the original beyond a handful of block means survives.

Clerks: with ``show_clerks`` a person whose box centre lies inside a post polygon (the
clerk's seat) keeps their face, and so does a cascade face inside such a person's box unless
it also lies in a member of the public's box (:func:`plan_blur`). The public is always
blurred.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Literal

import cv2
import numpy as np
from skimage import data as skdata
from skimage.feature import Cascade

from edge.detectors.detections import Detections

logger = logging.getLogger(__name__)

#: Side of a person's head region as a fraction of the person box's width. Measured with the
#: real detector on the packaged photos composited into a hall (27 faces, scales 0.7-1.4,
#: mirrored or not; tests/support/evidence_scenes.py): covering a face box with the square
#: alone takes up to 0.71 of the width for upright people and 0.87 for the man bent over his
#: camera; with the blur margin around the square, up to 0.62. 0.8 leaves about 30 % slack.
HEAD_FRACTION = 0.8
#: How far above the box top the head region starts, as a fraction of the box width (the
#: detector's box sometimes cuts the top of the hair).
HEAD_ABOVE = 0.05
#: Each face region is enlarged by this fraction of its size on every side before blurring.
BLUR_MARGIN = 0.2
#: Blocks across the shorter side of an enlarged face region: a face ends up as about
#: ``(BLOCKS / (1 + 2 * BLUR_MARGIN))**2`` ≈ 13 block means, far from identifiable.
BLOCKS = 5

Source = Literal["cascade", "person"]


@dataclass(frozen=True, slots=True)
class FaceRegion:
    """A box to blur (or keep), in pixels of the image it was found in (``x2``/``y2`` excl.).

    Attributes:
        x1: Left.
        y1: Top.
        x2: Right (exclusive).
        y2: Bottom (exclusive).
        source: ``person`` (a person box's head region) or ``cascade`` (a face found).
    """

    x1: int
    y1: int
    x2: int
    y2: int
    source: Source

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2)

    def union(self, other: FaceRegion) -> FaceRegion:
        """The smallest region holding both (keeps this one's source)."""
        return FaceRegion(
            min(self.x1, other.x1),
            min(self.y1, other.y1),
            max(self.x2, other.x2),
            max(self.y2, other.y2),
            self.source,
        )

    def contains(self, point: tuple[float, float]) -> bool:
        x, y = point
        return self.x1 <= x < self.x2 and self.y1 <= y < self.y2


@dataclass(frozen=True, slots=True)
class BlurPlan:
    """What to blur in one image and which clerk faces stay visible.

    Attributes:
        blur: Regions to blur: a person's head region absorbs the cascade faces centred in it.
        kept: Clerks' regions left visible (``show_clerks``).
    """

    blur: tuple[FaceRegion, ...]
    kept: tuple[FaceRegion, ...]


def head_regions(people: Detections, *, fraction: float = HEAD_FRACTION) -> list[FaceRegion]:
    """The head region of every person box: a square at the top of the box.

    Args:
        people: Person boxes in pixels of the image.
        fraction: Side of the square as a fraction of the box width.

    Returns:
        One region per person, in the same order; the square is centred across the box,
        starts :data:`HEAD_ABOVE` of the width above its top and stops at its bottom.

    Example:
        >>> d = Detections(np.array([[100, 50, 200, 350]], np.float32),
        ...                np.array([0.9], np.float32), np.array([1], np.int32))
        >>> head_regions(d)[0]
        FaceRegion(x1=110, y1=45, x2=190, y2=125, source='person')
    """
    regions = []
    for x1, y1, x2, y2 in people.xyxy.astype(np.float64):
        w = max(x2 - x1, 1.0)
        side = fraction * w
        cx = (x1 + x2) / 2
        top = y1 - HEAD_ABOVE * w
        bottom = min(top + side, y2)
        regions.append(
            FaceRegion(
                int(np.floor(cx - side / 2)),
                int(np.floor(top)),
                int(np.ceil(cx + side / 2)),
                int(np.ceil(bottom)),
                "person",
            )
        )
    return regions


@cache
def _cascade() -> Cascade:
    return Cascade(skdata.lbp_frontal_face_cascade_filename())


@dataclass(frozen=True, slots=True)
class FaceCascade:
    """scikit-image's LBP frontal-face cascade with bounded scales.

    The cascade's cost grows with the image's pixels and the number of scales searched; it
    runs only when a snapshot is taken, on the snapshot-sized image (≤ ``max_width``).

    Attributes:
        min_size: Smallest face searched, pixels (the cascade's window is 24).
        max_fraction: Largest face searched, as a fraction of the image's shorter side.
        scale_factor: Growth of the search window from one scale to the next.
        step_ratio: Search step relative to the window scale (1: every position).
        min_neighbours: Overlapping hits needed to accept a face (lower: more found, more
            false alarms: acceptable, they are only blurred).

    Example:
        >>> from skimage import data
        >>> faces = FaceCascade().find(data.astronaut())
        >>> any(f.contains((220, 120)) for f in faces)
        True
    """

    min_size: int = 20
    max_fraction: float = 0.5
    scale_factor: float = 1.25
    step_ratio: float = 1.5
    min_neighbours: int = 1

    def find(self, image: np.ndarray) -> list[FaceRegion]:
        """Frontal faces in an RGB ``uint8`` image, in its pixels."""
        h, w = image.shape[:2]
        largest = int(min(h, w) * self.max_fraction)
        if largest < self.min_size:
            return []
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        hits = _cascade().detect_multi_scale(
            grey,
            scale_factor=self.scale_factor,
            step_ratio=self.step_ratio,
            min_size=(self.min_size, self.min_size),
            max_size=(largest, largest),
            min_neighbor_number=self.min_neighbours,
        )
        return [
            FaceRegion(
                int(d["c"]),
                int(d["r"]),
                int(d["c"] + d["width"]),
                int(d["r"] + d["height"]),
                "cascade",
            )
            for d in hits
        ]


def at_posts(people: Detections, polygons: Sequence[np.ndarray]) -> np.ndarray:
    """Which people have their box centre inside one of the post polygons (clerks).

    Args:
        people: Person boxes.
        polygons: Post polygons, ``float32 (N, 2)`` each, in the same pixels as ``people``.

    Returns:
        ``bool`` array, one per person.

    Example:
        >>> d = Detections(np.array([[0, 0, 10, 10], [50, 50, 60, 60]], np.float32),
        ...                np.array([0.9, 0.9], np.float32), np.array([1, 1], np.int32))
        >>> at_posts(d, [np.array([[0, 0], [20, 0], [20, 20], [0, 20]], np.float32)]).tolist()
        [True, False]
    """
    inside = np.zeros(len(people), bool)
    centres = (people.xyxy[:, :2] + people.xyxy[:, 2:]) / 2
    for polygon in polygons:
        contour = np.asarray(polygon, np.float32).reshape(-1, 1, 2)
        for i, (cx, cy) in enumerate(centres):
            if not inside[i] and cv2.pointPolygonTest(contour, (float(cx), float(cy)), False) >= 0:
                inside[i] = True
    return inside


def plan_blur(
    people: Detections,
    faces: Sequence[FaceRegion],
    *,
    clerk_polygons: Sequence[np.ndarray],
    show_clerks: bool,
) -> BlurPlan:
    """Decide which regions to blur.

    Args:
        people: Person boxes in the image's pixels.
        faces: Cascade faces in the same pixels.
        clerk_polygons: Post polygons in the same pixels (used with ``show_clerks`` only).
        show_clerks: Leave people inside the post polygons, and cascade faces inside their
            boxes (but in no member of the public's box), unblurred.

    Returns:
        The plan. A cascade face centred in a blurred head region is merged into it (one
        face, one region); other cascade faces are regions of their own.
    """
    heads = head_regions(people)
    clerk = at_posts(people, clerk_polygons) if show_clerks else np.zeros(len(people), bool)
    boxes = [
        FaceRegion(int(x1), int(y1), int(np.ceil(x2)), int(np.ceil(y2)), "person")
        for x1, y1, x2, y2 in people.xyxy
    ]
    public_boxes = [b for b, c in zip(boxes, clerk, strict=True) if not c]
    clerk_boxes = [b for b, c in zip(boxes, clerk, strict=True) if c]
    blur = [h for h, c in zip(heads, clerk, strict=True) if not c]
    kept = [h for h, c in zip(heads, clerk, strict=True) if c]
    for face in faces:
        centre = face.centre
        in_clerk = any(b.contains(centre) for b in clerk_boxes)
        in_public = any(b.contains(centre) for b in public_boxes)
        if in_clerk and not in_public:
            kept.append(face)
            continue
        for i, head in enumerate(blur):
            if head.source == "person" and head.contains(centre):
                blur[i] = head.union(face)
                break
        else:
            blur.append(face)
    return BlurPlan(blur=tuple(blur), kept=tuple(kept))


def blur_regions(
    image: np.ndarray,
    regions: Sequence[FaceRegion],
    *,
    margin: float = BLUR_MARGIN,
    blocks: int = BLOCKS,
) -> np.ndarray:
    """Pixelate and smooth each region (enlarged by ``margin``) of a copy of ``image``.

    Args:
        image: RGB ``uint8`` ``(H, W, 3)``.
        regions: Boxes in its pixels (clipped to it).
        margin: Fraction of a region's width/height added on each side.
        blocks: Blocks across the enlarged region's shorter side.

    Returns:
        The blurred copy; ``image`` is not changed.

    Example:
        >>> img = np.random.default_rng(0).integers(0, 256, (100, 100, 3), dtype=np.uint8)
        >>> out = blur_regions(img, [FaceRegion(30, 30, 70, 70, "cascade")])
        >>> bool(out[50, 45:55].std() < img[50, 45:55].std() / 4)
        True
        >>> bool((out[:20] == img[:20]).all())
        True
    """
    out = image.copy()
    h, w = image.shape[:2]
    for r in regions:
        mx, my = (r.x2 - r.x1) * margin, (r.y2 - r.y1) * margin
        x1, y1 = max(int(r.x1 - mx), 0), max(int(r.y1 - my), 0)
        x2, y2 = min(int(np.ceil(r.x2 + mx)), w), min(int(np.ceil(r.y2 + my)), h)
        rw, rh = x2 - x1, y2 - y1
        if rw < 2 or rh < 2:
            continue
        block = max(min(rw, rh) / blocks, 2.0)
        small_size = (max(round(rw / block), 1), max(round(rh / block), 1))
        patch = np.ascontiguousarray(out[y1:y2, x1:x2])
        small = cv2.resize(patch, small_size, interpolation=cv2.INTER_AREA)
        big = cv2.resize(small, (rw, rh), interpolation=cv2.INTER_NEAREST)
        out[y1:y2, x1:x2] = cv2.GaussianBlur(big, (0, 0), block / 3)
    return out
