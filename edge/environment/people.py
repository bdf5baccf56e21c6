"""People in a zone (区域): the person detector run on the zone's crop, kept by the polygon.

A zone is a polygon in one camera's image (a waiting area, the self-service area, the
entrance, a window's public area). :class:`ZonePeople` crops the zone's bounding box, runs
the person detector on it and keeps the people whose **foot point** lies in the polygon.

Which point decides "in the zone": the bottom centre of the person's box. For someone
standing it is where they stand; for someone seated behind a bench back or a table, whose
feet are hidden, the box ends where the bench hides them, which is on the seat row. Either
way the point is on the floor area the operator draws the zone around, and a person standing
*in front of* the zone (closer to the camera, covering part of it) is not counted, which the
box centre would do. So draw zones around the floor and seats where people are, not around
where their heads appear; :data:`DEFAULT_HEAD_ROOM` extends the crop upwards so the heads of
people standing at the zone's far edge are still in the detector's view.

Tiling: the model squeezes whatever it gets into 300×300, so the people of a wide or large
crop shrink below what it can find. The crop is cut into near-square tiles (a tile may be
:data:`TILE_ASPECT` times longer one way) overlapping by :data:`TILE_OVERLAP`, with a side
of at most ``max_tile`` frame pixels (:data:`DEFAULT_MAX_TILE`, 4/3 of the model's input:
people shrink by at most a quarter); each tile is detected on its own and the results are
merged by non-maximum suppression (two boxes sharing most of the smaller one's area are
also one person when one of them is cut by a tile's inner edge). On 200 generated waiting
areas (``benchmarks/occupancy_accuracy.py``: 1280×720, 0..8 seated people, crop 1210×523)
the mean absolute count error is 2.7 people untiled (1 detector call), 1.35 with tiles of
the crop's short side (3 calls) and 0.45 with 400-px tiles (8 calls, ~115 CPU-ms per look
with the int8 model); the cost of a look grows with the number of tiles.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from edge.detectors.base import Detector
from edge.detectors.detections import Detections
from edge.regions.geometry import foot_points, points_in_polygon
from edge.regions.post_region import CropBox, PostRegion
from edge.sources.frame import Frame

logger = logging.getLogger(__name__)

#: Largest tile side, in frame pixels.
DEFAULT_MAX_TILE = 400
#: Crop extension above the zone's bounding box, as a fraction of the box's height.
DEFAULT_HEAD_ROOM = 0.2
#: A crop whose long side exceeds this many times its short side is tiled.
TILE_ASPECT = 1.3
#: Overlap of neighbouring tiles, as a fraction of a tile's side.
TILE_OVERLAP = 0.3
#: Boxes overlapping more than this (IoU) are one person.
NMS_IOU = 0.45
#: Two boxes, one cut by a tile's inner edge, sharing this much of the smaller one's area
#: are pieces of one person.
CUT_CONTAINED = 0.6
_EDGE_PX = 3.0  # a box within this many pixels of a tile's inner edge is cut by it


def _spans(length: int, side: int) -> list[tuple[int, int]]:
    """Overlapping spans of ``side`` covering ``length`` (one span if it is short enough)."""
    if length <= TILE_ASPECT * side:
        return [(0, length)]
    n = math.ceil((length - side) / (side * (1.0 - TILE_OVERLAP))) + 1
    return [(s, s + side) for s in (round(i * (length - side) / (n - 1)) for i in range(n))]


def tile_boxes(width: int, height: int, max_side: int | None = None) -> list[CropBox]:
    """Near-square overlapping tiles covering a ``width``×``height`` crop.

    A tile's side is the crop's short side, or ``max_side`` if that is smaller; a tile may
    be up to :data:`TILE_ASPECT` times longer one way to save a row or column of tiles.

    Example:
        >>> [(t.x1, t.x2) for t in tile_boxes(900, 300)]
        [(0, 300), (200, 500), (400, 700), (600, 900)]
        >>> len(tile_boxes(360, 300)), len(tile_boxes(1200, 600, max_side=400))
        (1, 8)
    """
    if width <= 0 or height <= 0:
        return [CropBox(0, 0, max(width, 0), max(height, 0))]
    side = min(width, height) if max_side is None else min(width, height, max_side)
    return [
        CropBox(x1, y1, x2, y2) for y1, y2 in _spans(height, side) for x1, x2 in _spans(width, side)
    ]


def _iou_and_containment(box: np.ndarray, others: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IoU of ``box`` with each of ``others``, and their intersection over the smaller area."""
    ix = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    inter = ix * iy
    area = max(float((box[2] - box[0]) * (box[3] - box[1])), 1e-6)
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = np.maximum(area + areas - inter, 1e-6)
    return inter / union, inter / np.maximum(np.minimum(area, areas), 1e-6)


def merge_tiles(parts: Sequence[Detections], cut: Sequence[np.ndarray]) -> Detections:
    """Merge detections of overlapping tiles (already in crop pixels) into one set of people.

    Args:
        parts: Each tile's detections.
        cut: For each tile, ``bool`` per detection: the box touches one of the tile's inner
            edges (so it may be part of a person).

    Returns:
        Non-maximum suppressed detections, best first.
    """
    if not parts:
        return Detections.empty()
    xyxy = np.concatenate([p.xyxy for p in parts]).astype(np.float32)
    conf = np.concatenate([p.confidence for p in parts]).astype(np.float32)
    cls = np.concatenate([p.class_id for p in parts]).astype(np.int32)
    is_cut = np.concatenate(list(cut)).astype(bool)
    order = np.argsort(-conf, kind="stable")
    # Whole boxes first, so a cut box meets the whole one it is part of.
    order = order[np.argsort(is_cut[order], kind="stable")]
    kept: list[int] = []
    for i in order:
        if kept:
            iou, shared = _iou_and_containment(xyxy[i], xyxy[kept])
            if (iou >= NMS_IOU).any():
                continue
            # Two pieces of one person: most of either lies inside the other, and one of
            # them was cut by a tile's edge.
            pieces = shared >= CUT_CONTAINED
            if (pieces & (is_cut[i] | is_cut[kept])).any():
                continue
        kept.append(int(i))
    idx = np.array(sorted(kept, key=lambda k: -conf[k]), np.int64)
    return Detections(xyxy[idx], conf[idx], cls[idx])


class ZonePeople:
    """The people in one zone of a camera, found once per frame and shared.

    Args:
        zone: Zone id, for logs.
        region: The zone's polygon, scaled to the frames received.
        detector: The person detector.
        min_score: Keep detections scoring at least this (on top of the detector's own
            threshold).
        tile: Cut the crop into overlapping near-square tiles (see the module doc); ``False``
            runs the detector once on the whole crop.
        max_tile: Largest tile side in frame pixels; ``None``: the crop's short side.
        head_room: Fraction of the zone's height added above its crop (see the module doc).

    Example:
        >>> from datetime import datetime, timezone
        >>> class Nobody:
        ...     name = "nobody"
        ...     def detect(self, image: np.ndarray) -> Detections:
        ...         return Detections.empty()
        >>> region = PostRegion("wait", [(0, 0), (300, 0), (300, 100), (0, 100)], (320, 240))
        >>> people = ZonePeople("wait", region, Nobody())
        >>> frame = Frame("cam", np.zeros((240, 320, 3), np.uint8), 1.0, datetime.now(timezone.utc))
        >>> len(people.find(frame))
        0
    """

    def __init__(
        self,
        zone: str,
        region: PostRegion,
        detector: Detector,
        *,
        min_score: float = 0.5,
        tile: bool = True,
        max_tile: int | None = DEFAULT_MAX_TILE,
        head_room: float = DEFAULT_HEAD_ROOM,
    ) -> None:
        if head_room < 0:
            raise ValueError(f"head_room must be >= 0, got {head_room}")
        if max_tile is not None and max_tile < 32:
            raise ValueError(f"max_tile must be >= 32 pixels or None, got {max_tile}")
        self.zone = zone
        self.region = region
        self.detector = detector
        self.min_score = float(min_score)
        self.tile = tile
        self.max_tile = max_tile
        self.head_room = float(head_room)
        self._cached_key: tuple[str, float, int, int] | None = None
        self._cached_all: Detections = Detections.empty()
        self._cached: Detections = Detections.empty()
        #: Detector calls made so far (one per tile per new frame), for stats.
        self.detector_calls = 0

    def crop_box(self, width: int, height: int) -> CropBox:
        """The region the detector looks at, in pixels of a ``width``×``height`` frame."""
        box = self.region.crop_box(width, height)
        pts = self.region.polygon_in_crop(width, height)
        poly_h = float(pts[:, 1].max() - pts[:, 1].min())
        top = max(0, box.y1 - round(self.head_room * poly_h))
        return CropBox(box.x1, top, box.x2, box.y2)

    def polygon(self, width: int, height: int) -> np.ndarray:
        """The zone's polygon in pixels of a ``width``×``height`` frame, ``float32 (N, 2)``."""
        box = self.region.crop_box(width, height)
        offset = np.array([box.x1, box.y1], np.float32)
        return np.asarray(self.region.polygon_in_crop(width, height) + offset, np.float32)

    def find(self, frame: Frame) -> Detections:
        """The people whose foot point is in the zone, ``xyxy`` in the frame's pixels.

        A second call for the same frame (same camera, ``pts`` and size) returns the first
        call's result without running the detector again.
        """
        self._look(frame)
        return self._cached

    def find_all(self, frame: Frame) -> Detections:
        """Everyone the detector found in the zone's crop, in the zone or not (frame pixels).

        For a watcher that cares about people *covering* the zone (hygiene: someone standing
        in front of it), with :func:`boxes_in_polygon`. Shares :meth:`find`'s cache.
        """
        self._look(frame)
        return self._cached_all

    def _look(self, frame: Frame) -> None:
        key = (frame.camera, frame.pts, frame.width, frame.height)
        if key == self._cached_key:
            return
        everyone = self._detect(frame.image)
        people = everyone
        if len(everyone):
            poly = self.polygon(frame.width, frame.height)
            people = everyone[points_in_polygon(foot_points(everyone.xyxy), poly)]
        self._cached_key, self._cached_all, self._cached = key, everyone, people
        logger.debug(
            "zone %s at pts %.2f: %d people (%d in the crop)",
            self.zone,
            frame.pts,
            len(people),
            len(everyone),
        )

    def _detect(self, image: np.ndarray) -> Detections:
        """All people the detector finds in the crop, in frame pixels."""
        h, w = image.shape[:2]
        box = self.crop_box(w, h)
        crop = image[box.y1 : box.y2, box.x1 : box.x2]
        if crop.size == 0:
            return Detections.empty()
        tiles = (
            tile_boxes(box.width, box.height, self.max_tile)
            if self.tile
            else [CropBox(0, 0, box.width, box.height)]
        )
        parts: list[Detections] = []
        cuts: list[np.ndarray] = []
        for t in tiles:
            found = self.detector.detect(np.ascontiguousarray(crop[t.y1 : t.y2, t.x1 : t.x2]))
            self.detector_calls += 1
            found = found[found.confidence >= self.min_score]
            parts.append(found.shifted(t.x1, t.y1))
            cuts.append(_cut_by_inner_edge(found.xyxy, t, box.width, box.height))
        merged = parts[0] if len(parts) == 1 else merge_tiles(parts, cuts)
        return merged.shifted(box.x1, box.y1)


def _cut_by_inner_edge(xyxy: np.ndarray, tile: CropBox, width: int, height: int) -> np.ndarray:
    """Boxes (tile pixels) touching an edge of ``tile`` that is not an edge of the crop."""
    cut = np.zeros(len(xyxy), bool)
    if tile.x1 > 0:
        cut |= xyxy[:, 0] <= _EDGE_PX
    if tile.x2 < width:
        cut |= xyxy[:, 2] >= tile.width - _EDGE_PX
    if tile.y1 > 0:
        cut |= xyxy[:, 1] <= _EDGE_PX
    if tile.y2 < height:
        cut |= xyxy[:, 3] >= tile.height - _EDGE_PX
    return cut
