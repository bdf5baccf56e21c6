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

Clerks (:func:`plan_blur`): with ``show_clerks`` a clerk's **head region** is left alone,
and of the cascade faces only the clerk's own, the top one essentially inside that region
(:func:`clerks_own_faces`); every other cascade face is blurred, so a member of the public
the detector missed does not stay visible for standing in front of or behind a clerk. A
clerk is a person whose box centre lies inside a post polygon (what the post watcher counts)
*and* whose box lies mostly inside it (:data:`CLERK_MIN_INSIDE`, :func:`at_posts`): someone
standing at the counter whose box merely overlaps the seat is public. The public is always
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
from edge.regions.geometry import boxes_in_polygon, points_in_polygon

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
#: A person is a clerk when at least this share of their box's area lies inside a post
#: polygon (and the box centre too). The seated clerks of the test scenes measure 1.0 (their
#: boxes end at the counter top); a box that reaches down in front of the counter (someone
#: standing at it; the clerk and a child at the counter in one box) 0.5-0.63: such a box may
#: go either way, and either way the child's face is blurred (:func:`clerks_own_faces`).
CLERK_MIN_INSIDE = 0.6
#: A cascade face is the clerk's own, and kept, when at least this share of its area lies
#: inside a clerk's head region (the clerks' faces of the test scenes: 1.0).
KEPT_FACE_INSIDE = 0.8
#: Cascade hits overlapping a clerk's face this much (IoU) are that face found again.
SAME_FACE_IOU = 0.3
#: Two head regions of the public overlapping this much (IoU) are one head seen twice (the
#: caller's person boxes and the detector's on the snapshot): blurred as one, their union.
SAME_HEAD_IOU = 0.5

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

    @property
    def area(self) -> int:
        return max(self.x2 - self.x1, 0) * max(self.y2 - self.y1, 0)

    def overlap(self, other: FaceRegion) -> int:
        """Pixels shared with ``other``."""
        w = min(self.x2, other.x2) - max(self.x1, other.x1)
        h = min(self.y2, other.y2) - max(self.y1, other.y1)
        return max(w, 0) * max(h, 0)

    def share_inside(self, other: FaceRegion) -> float:
        """The share of this region's area that lies inside ``other`` (0 for no area).

        Example:
            >>> FaceRegion(0, 0, 10, 10, "cascade").share_inside(FaceRegion(5, 0, 20, 20, "person"))
            0.5
        """
        return self.overlap(other) / self.area if self.area else 0.0

    def iou(self, other: FaceRegion) -> float:
        """Intersection over union with ``other``."""
        shared = self.overlap(other)
        union = self.area + other.area - shared
        return shared / union if union else 0.0


@dataclass(frozen=True, slots=True)
class BlurPlan:
    """What to blur in one image and which clerk faces stay visible.

    Attributes:
        blur: Regions to blur: a person's head region absorbs the cascade faces centred in it.
        kept: Clerks' head regions and their cascade faces, left visible (``show_clerks``).
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


def at_posts(
    people: Detections, polygons: Sequence[np.ndarray], *, min_inside: float = CLERK_MIN_INSIDE
) -> np.ndarray:
    """Which people are clerks at a post: box centre inside a post polygon, box mostly inside.

    The centre test is the post watcher's (a clerk shown is someone it counts at the post);
    the area test keeps out a member of the public whose box only overlaps the seat (standing
    at the counter, in front of or behind the clerk).

    Args:
        people: Person boxes.
        polygons: Post polygons, ``float32 (N, 2)`` each, in the same pixels as ``people``.
        min_inside: Least share of a box's area inside the polygon.

    Returns:
        ``bool`` array, one per person.

    Example:
        >>> d = Detections(
        ...     np.array([[0, 0, 10, 10], [50, 50, 60, 60], [4, 4, 30, 30]], np.float32),
        ...     np.full(3, 0.9, np.float32), np.ones(3, np.int32))
        >>> square = np.array([[0, 0], [20, 0], [20, 20], [0, 20]], np.float32)
        >>> at_posts(d, [square]).tolist()  # the third: centre inside, 38 % of the box
        [True, False, False]
    """
    # Imported here: importing the edge.environment package imports its zone watcher, which
    # imports edge.evidence (a cycle at import time when edge.evidence is imported first).

    inside = np.zeros(len(people), bool)
    if len(people) == 0:
        return inside
    centres = (people.xyxy[:, :2] + people.xyxy[:, 2:]) / 2
    for polygon in polygons:
        inside |= points_in_polygon(centres, polygon) & boxes_in_polygon(
            people.xyxy, polygon, min_inside
        )
    return inside


def merge_same_heads(regions: Sequence[FaceRegion], iou: float = SAME_HEAD_IOU) -> list[FaceRegion]:
    """Merge regions that overlap by ``iou`` or more into their union (one head seen twice).

    Example:
        >>> merged = merge_same_heads([FaceRegion(0, 0, 10, 10, "person"),
        ...                            FaceRegion(1, 1, 11, 11, "person"),
        ...                            FaceRegion(30, 0, 40, 10, "person")])
        >>> [(m.x1, m.y1, m.x2, m.y2) for m in merged]
        [(0, 0, 11, 11), (30, 0, 40, 10)]
    """
    merged: list[FaceRegion] = []
    for region in regions:
        for i, other in enumerate(merged):
            if other.iou(region) >= iou:
                merged[i] = other.union(region)
                break
        else:
            merged.append(region)
    return merged


def clerks_own_faces(faces: Sequence[FaceRegion], clerk_heads: Sequence[FaceRegion]) -> list[bool]:
    """Which cascade faces are a shown clerk's own face.

    In each clerk's head region, the face essentially inside it (:data:`KEPT_FACE_INSIDE`)
    that is highest up is the clerk's (a person has one face, at the top of their box), with
    the hits of that same face (:data:`SAME_FACE_IOU`); any other face in the region is
    somebody else's: a child at the counter in front of the clerk's chest (the head region of
    a box cut by the counter reaches far down it), someone leaning in behind.

    Args:
        faces: Cascade faces, none of them in a member of the public's head region.
        clerk_heads: The clerks' head regions, same pixels.

    Returns:
        ``True`` for each face to keep visible.

    Example:
        >>> head = FaceRegion(0, 0, 100, 100, "person")
        >>> faces = [FaceRegion(30, 60, 60, 90, "cascade"), FaceRegion(30, 10, 60, 40, "cascade"),
        ...          FaceRegion(32, 12, 62, 42, "cascade"), FaceRegion(80, 10, 120, 50, "cascade")]
        >>> clerks_own_faces(faces, [head])  # lower face, the clerk's twice, half outside
        [False, True, True, False]
    """
    own = [False] * len(faces)
    for head in clerk_heads:
        inside = [i for i, f in enumerate(faces) if f.share_inside(head) >= KEPT_FACE_INSIDE]
        if not inside:
            continue
        top = faces[min(inside, key=lambda i: faces[i].centre[1])]
        for i in inside:
            if faces[i].iou(top) >= SAME_FACE_IOU or top.contains(faces[i].centre):
                own[i] = True
    return own


def plan_blur(
    people: Detections,
    faces: Sequence[FaceRegion],
    *,
    clerk_polygons: Sequence[np.ndarray],
    show_clerks: bool,
) -> BlurPlan:
    """Decide which regions to blur.

    Args:
        people: Person boxes in the image's pixels (duplicates of one person are fine: their
            head regions are merged, :func:`merge_same_heads`).
        faces: Cascade faces in the same pixels.
        clerk_polygons: Post polygons in the same pixels (used with ``show_clerks`` only).
        show_clerks: Leave the head regions of the clerks (:func:`at_posts`) unblurred, and
            each clerk's own cascade face (:func:`clerks_own_faces`) unless it is centred in
            a member of the public's head region; every other cascade face is blurred.

    Returns:
        The plan. A cascade face centred in a blurred head region is merged into it (one
        face, one region); every other cascade face that is not a clerk's is a region of its
        own.
    """
    heads = head_regions(people)
    clerk = at_posts(people, clerk_polygons) if show_clerks else np.zeros(len(people), bool)
    clerk_heads = [h for h, c in zip(heads, clerk, strict=True) if c]
    public_heads = merge_same_heads([h for h, c in zip(heads, clerk, strict=True) if not c])
    blur = list(public_heads)
    loose = []
    for face in faces:
        owner = next((i for i, h in enumerate(public_heads) if h.contains(face.centre)), None)
        if owner is None:
            loose.append(face)
        else:
            blur[owner] = blur[owner].union(face)
    own = clerks_own_faces(loose, clerk_heads)
    kept = clerk_heads + [f for f, o in zip(loose, own, strict=True) if o]
    blur += [f for f, o in zip(loose, own, strict=True) if not o]
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
