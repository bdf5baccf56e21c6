"""Litter for the demo hall: real objects cut out of packaged photos, left on a counter.

A window's *public area* (窗口公共区域) in the demo hall is the wooden counter front on the
applicants' side, below the desk (:func:`public_area_polygon`). A :class:`Litter` cue
leaves two things there for a while: a cup of coffee on its saucer, cut out of
scikit-image's ``coffee.png`` with an elliptical mask, and a crumpled leaflet made from its
``page.png`` (a scanned text page, creased and shaded). Both are placed clear of the
window-number plate and the evaluation pad, so the hall's own fixtures never change.

Example:
    >>> from hallwatch.demo.hall import hall_layout
    >>> public_area_polygon(hall_layout(4), 0)
    [(42, 490), (307, 490), (307, 687), (42, 687)]
    >>> cup = coffee_cup(100)
    >>> cup.rgb.shape, cup.alpha.shape
    ((93, 100, 3), (93, 100, 1))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

from hallwatch.demo.hall import _COUNTER_BOTTOM, _DESK_Y, HallLayout

#: Top of the counter front (below the desk top's edge).
COUNTER_TOP = _DESK_Y + 18
#: Width of the coffee cup and of the leaflet on the canvas, in pixels.
CUP_WIDTH = 100
LEAFLET_WIDTH = 104


@dataclass(frozen=True)
class Litter:
    """A scripted mess: things left on a window's counter for a while.

    Attributes:
        window_post: Post id of the window (``"w1"``...) whose counter gets the litter.
        placed_s: Video time the litter appears.
        removed_s: Video time it is cleared away (``placed_s < removed_s <= duration``).
    """

    window_post: str
    placed_s: float
    removed_s: float

    def present(self, t: float) -> bool:
        """Whether the litter lies on the counter at video time ``t`` (within one loop)."""
        return self.placed_s <= t < self.removed_s


@dataclass(frozen=True)
class LitterItem:
    """One cut-out object ready to composite.

    Attributes:
        rgb: ``uint8`` RGB image, shape ``(h, w, 3)``.
        alpha: ``float32`` matte in ``[0, 1]``, shape ``(h, w, 1)``.
    """

    rgb: np.ndarray
    alpha: np.ndarray


def public_area_polygon(layout: HallLayout, i: int) -> list[tuple[int, int]]:
    """The public area of window ``i`` (0-based): its counter front, inset by 2 pixels.

    Args:
        layout: The hall's layout.
        i: Window index, left to right.

    Returns:
        Four corners in canvas pixels, clockwise from the top left.
    """
    x0, x1 = layout.booths[i]
    top, bottom = COUNTER_TOP + 2, _COUNTER_BOTTOM - 3
    return [(x0 + 2, top), (x1 - 3, top), (x1 - 3, bottom), (x0 + 2, bottom)]


def _item(rgb: np.ndarray, mask: np.ndarray, width: int) -> LitterItem:
    """Scale a cut-out to ``width`` and feather its mask by about a pixel."""
    height = max(1, round(rgb.shape[0] * width / rgb.shape[1]))
    small = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    matte = cv2.resize(mask.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
    matte = cv2.GaussianBlur(matte, (0, 0), 0.7)
    small.setflags(write=False)
    alpha = np.clip(matte, 0.0, 1.0).astype(np.float32)[..., None]
    alpha.setflags(write=False)
    return LitterItem(rgb=small, alpha=alpha)


@cache
def coffee_cup(width: int = CUP_WIDTH) -> LitterItem:
    """The cup of coffee on its saucer from ``skimage.data.coffee()``, ``width`` pixels wide.

    The saucer, the cup and the spoon's handle are cut out with two ellipses and a polygon
    fitted to the photo (the wooden table around them is dropped).
    """
    from skimage import data

    photo = data.coffee()
    mask = np.zeros(photo.shape[:2], np.uint8)
    cv2.ellipse(mask, (278, 229), (198, 157), 0, 0, 360, 1, -1, cv2.LINE_AA)  # saucer
    cv2.ellipse(mask, (290, 112), (118, 95), 0, 0, 360, 1, -1, cv2.LINE_AA)  # cup
    handle = np.array([(393, 100), (400, 70), (412, 64), (424, 72), (418, 110)], np.int32)
    cv2.fillPoly(mask, [handle], 1)  # the spoon's handle
    ys, xs = np.nonzero(mask)
    crop = (slice(int(ys.min()), int(ys.max()) + 1), slice(int(xs.min()), int(xs.max()) + 1))
    return _item(photo[crop], mask[crop], width)


@cache
def crumpled_leaflet(width: int = LEAFLET_WIDTH) -> LitterItem:
    """A crumpled leaflet made from ``skimage.data.page()``, ``width`` pixels wide.

    The scanned page is brightened to paper white, warped by a few sine waves (the
    crumples), shaded along the creases and turned by 14 degrees.
    """
    from skimage import data

    page = data.page().astype(np.float32)
    page = np.clip((page - page.min()) * 255.0 / max(1.0, float(np.ptp(page))) * 1.1, 0, 255)
    h, w = page.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    dx = 6.0 * np.sin(ys / 13.0) + 4.0 * np.sin((xs + ys) / 29.0)
    dy = 5.0 * np.sin(xs / 17.0) + 3.0 * np.cos((xs - ys) / 23.0)
    warped = cv2.remap(page, xs + dx, ys + dy, cv2.INTER_LINEAR, borderValue=0)
    inside = cv2.remap(
        np.ones_like(page), xs + dx, ys + dy, cv2.INTER_NEAREST, borderValue=0
    ).astype(np.uint8)
    # Creases: brightness follows the slope of the crumple field.
    shade = 1.0 + 0.9 * (np.gradient(dx, axis=0) + np.gradient(dy, axis=1))
    grey = np.clip(warped * np.clip(shade, 0.6, 1.15), 0, 255)
    rgb = np.stack([grey, grey * 0.98, grey * 0.93], axis=-1).astype(np.uint8)
    # Turn it a little; the rotated canvas grows to keep the corners.
    angle = 14.0
    cos, sin = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
    out_w, out_h = round(w * cos + h * sin), round(w * sin + h * cos)
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    turn[0, 2] += (out_w - w) / 2
    turn[1, 2] += (out_h - h) / 2
    turned = cv2.warpAffine(rgb, turn, (out_w, out_h), flags=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(inside, turn, (out_w, out_h), flags=cv2.INTER_NEAREST)
    return _item(turned, mask, width)


def _paste(frame: np.ndarray, item: LitterItem, left: int, top: int) -> None:
    h, w = item.rgb.shape[:2]
    region = frame[top : top + h, left : left + w].astype(np.float32)
    out = region + (item.rgb.astype(np.float32) - region) * item.alpha
    frame[top : top + h, left : left + w] = (out + 0.5).astype(np.uint8)


def litter_placements(layout: HallLayout, i: int) -> list[tuple[LitterItem, tuple[int, int]]]:
    """Where the litter goes on window ``i``'s counter: ``(item, (left, top))`` pairs.

    The cup stands at the lower left, the leaflet lies at the lower right: both below the
    window-number plate (which ends 30 px under canvas row 560) and the evaluation pad.
    """
    x0, x1 = layout.booths[i]
    cup, leaflet = coffee_cup(), crumpled_leaflet()
    cup_top = _COUNTER_BOTTOM - 12 - cup.rgb.shape[0]
    leaflet_top = _COUNTER_BOTTOM - 14 - leaflet.rgb.shape[0]
    return [
        (cup, (x0 + 14, cup_top)),
        (leaflet, (x1 - 14 - leaflet.rgb.shape[1], leaflet_top)),
    ]


def place_litter(frame: np.ndarray, layout: HallLayout, i: int) -> None:
    """Composite window ``i``'s litter onto a canvas-sized ``frame``, in place."""
    for item, (left, top) in litter_placements(layout, i):
        _paste(frame, item, left, top)
