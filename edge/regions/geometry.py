"""Points and boxes against polygons: the geometry shared by posts, zones and snapshots."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["boxes_in_polygon", "foot_points", "points_in_polygon", "polygon_box"]


def polygon_box(polygon: Sequence[Sequence[float]]) -> tuple[float, float, float, float]:
    """The bounding box ``(x1, y1, x2, y2)`` of a polygon's vertices.

    Example:
        >>> polygon_box([(10, 20), (30, 5), (25, 40)])
        (10, 5, 30, 40)
    """
    xs = [p[0] for p in polygon]
    ys = [p[1] for p in polygon]
    return (min(xs), min(ys), max(xs), max(ys))


def foot_points(xyxy: np.ndarray) -> np.ndarray:
    """The bottom centre of each box, ``float32 (N, 2)``.

    Example:
        >>> foot_points(np.array([[10, 20, 30, 80]], np.float32)).tolist()
        [[20.0, 80.0]]
    """
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    return np.stack([(xyxy[:, 0] + xyxy[:, 2]) / 2.0, xyxy[:, 3]], axis=1)


def points_in_polygon(
    points: np.ndarray, polygon: np.ndarray | Sequence[Sequence[float]]
) -> np.ndarray:
    """Which points lie inside a polygon (even-odd rule; points on an edge may go either way).

    Args:
        points: ``(N, 2)`` x, y.
        polygon: ``(M, 2)`` vertices, M ≥ 3, same coordinates as ``points``.

    Returns:
        ``bool (N,)``.

    Example:
        >>> square = [(0, 0), (10, 0), (10, 10), (0, 10)]
        >>> points_in_polygon(np.array([[5, 5], [15, 5]]), square).tolist()
        [True, False]
    """
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    poly = np.asarray(polygon, np.float64).reshape(-1, 2)
    x, y = pts[:, 0:1], pts[:, 1:2]  # (N, 1)
    x1, y1 = poly[:, 0][None, :], poly[:, 1][None, :]  # (1, M)
    x2, y2 = np.roll(x1, -1, axis=1), np.roll(y1, -1, axis=1)
    straddles = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    crossings = straddles & (x < x_cross)
    return np.asarray(crossings.sum(axis=1) % 2 == 1, bool)


def boxes_in_polygon(
    xyxy: np.ndarray, polygon: np.ndarray | Sequence[Sequence[float]], min_overlap: float
) -> np.ndarray:
    """Which boxes have at least ``min_overlap`` of their area inside a polygon.

    Snapshots use it to tell a clerk at a post from the public; ``min_overlap``
    near 0 means "touches the polygon at all".

    Args:
        xyxy: ``(N, 4)`` boxes, x1, y1, x2, y2, in the polygon's pixels.
        polygon: ``(M, 2)`` vertices.
        min_overlap: Fraction of a box's area, in ``[0, 1]``; a box needs more than 0 pixels
            inside whatever the fraction.

    Returns:
        ``bool (N,)``; boxes of no area are never in.

    Example:
        >>> square = [(0, 0), (100, 0), (100, 100), (0, 100)]
        >>> boxes = np.array([[50, 50, 150, 150], [90, 0, 190, 100]], np.float32)
        >>> boxes_in_polygon(boxes, square, 0.2).tolist()
        [True, False]
    """
    if not 0.0 <= min_overlap <= 1.0:
        raise ValueError(f"min_overlap must be in [0, 1], got {min_overlap}")
    boxes = np.round(np.asarray(xyxy, np.float64).reshape(-1, 4)).astype(np.int64)
    result = np.zeros(len(boxes), bool)
    poly = np.asarray(polygon, np.float64).reshape(-1, 2)
    if len(boxes) == 0 or len(poly) < 3:
        return result
    # Rasterise the polygon over the boxes' extent only, then sum each box with an integral
    # image.
    ox, oy = int(boxes[:, 0].min()), int(boxes[:, 1].min())
    w = int(boxes[:, 2].max()) - ox
    h = int(boxes[:, 3].max()) - oy
    if w <= 0 or h <= 0:
        return result
    mask = np.zeros((h, w), np.uint8)
    shifted = np.round(poly - np.array([ox, oy], np.float64)).astype(np.int32)
    cv2.fillPoly(mask, [shifted], 1)
    integral = cv2.integral(mask)  # (h + 1, w + 1)
    x1 = np.clip(boxes[:, 0] - ox, 0, w)
    y1 = np.clip(boxes[:, 1] - oy, 0, h)
    x2 = np.clip(boxes[:, 2] - ox, 0, w)
    y2 = np.clip(boxes[:, 3] - oy, 0, h)
    inside = integral[y2, x2] - integral[y1, x2] - integral[y2, x1] + integral[y1, x1]
    area = (x2 - x1) * (y2 - y1)
    ok = area > 0
    result[ok] = (inside[ok] > 0) & (inside[ok] >= min_overlap * area[ok])
    return result
