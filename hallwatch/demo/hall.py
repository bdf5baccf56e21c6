"""The empty demo hall: layout and drawing of the service windows the clerks sit in.

The hall has one service window per post: a back wall with an LED window number above each
window, a desk with a monitor, an office chair, partitions between windows and a wooden
counter front. :func:`draw_hall` draws it in two layers, behind and in front of the
clerks, whom :mod:`hallwatch.demo.scene` composites in between.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: The size the hall is drawn at; other script sizes are resized from it.
CANVAS = (1280, 720)
_TOP = 56  # ceiling band
_DESK_Y = 470  # desk top: clerks are hidden below it
_CHIN_Y = _DESK_Y - 120
_PARTITION_W = 40
_COUNTER_BOTTOM = 690


@dataclass(frozen=True)
class HallLayout:
    """Where things are in the drawn hall (canvas pixels).

    Attributes:
        booths: Columns ``[x0, x1)`` of each service window, between partitions.
        seats: ``(x, y)`` of each seated clerk's anchor (body centre, chin).
    """

    booths: tuple[tuple[int, int], ...]
    seats: tuple[tuple[int, int], ...]

    def seat_polygon(self, i: int) -> list[tuple[int, int]]:
        """Seat area of window ``i``: head to desk of the seated clerk with a margin."""
        x, _ = self.seats[i]
        x0, x1 = self.booths[i]
        top, bottom = _CHIN_Y - 118, _DESK_Y + 12
        return [
            (max(x - 112, x0), top),
            (min(x + 112, x1 - 1), top),
            (min(x + 122, x1 - 1), bottom),
            (max(x - 122, x0), bottom),
        ]


def hall_layout(n_posts: int) -> HallLayout:
    """Lay out ``n_posts`` service windows side by side across the canvas."""
    width = CANVAS[0]
    booth_w = (width - _PARTITION_W * (n_posts + 1)) // n_posts
    booths = []
    for i in range(n_posts):
        x0 = _PARTITION_W + i * (booth_w + _PARTITION_W)
        booths.append((x0, x0 + booth_w))
    seats = tuple(((x0 + x1) // 2 + 6, _CHIN_Y) for x0, x1 in booths)
    return HallLayout(booths=tuple(booths), seats=seats)


def _text(
    img: np.ndarray,
    text: str,
    centre: tuple[int, int],
    scale: float,
    colour: tuple[int, int, int],
    thickness: int,
    font: int = cv2.FONT_HERSHEY_DUPLEX,
) -> None:
    (tw, th), _ = cv2.getTextSize(text, font, scale, thickness)
    org = (centre[0] - tw // 2, centre[1] + th // 2)
    cv2.putText(img, text, org, font, scale, colour, thickness, cv2.LINE_AA)


def draw_hall(
    layout: HallLayout, windows: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw the empty hall.

    Args:
        layout: Where the windows are.
        windows: Window numbers to show, one per booth.

    Returns:
        ``(background, foreground, foreground_mask)``: the layer behind the clerks (walls,
        signs, chairs), the layer in front of them (desk, monitors, partitions, counter) and
        where that front layer is.
    """
    w, h = CANVAS
    bg = np.empty((h, w, 3), np.uint8)
    bg[:] = (232, 226, 212)  # back wall
    # Soft vertical shading of the wall, a skirting line and the ceiling band with lights.
    shade = np.linspace(-10, 8, h, dtype=np.float32)[:, None, None]
    bg = np.clip(bg.astype(np.float32) + shade, 0, 255).astype(np.uint8)
    bg[:_TOP] = (38, 60, 92)
    for x in range(80, w, 160):
        cv2.rectangle(bg, (x, 6), (x + 60, 14), (250, 250, 240), -1)
    _text(bg, "GOVERNMENT AFFAIRS SERVICE CENTER", (w // 2, 36), 0.8, (255, 255, 255), 2)
    fg = np.zeros_like(bg)
    fg_mask = np.zeros((h, w), np.uint8)

    for window, (x0, x1), (sx, _) in zip(windows, layout.booths, layout.seats, strict=True):
        # Back panel of the window, service notice, LED window sign.
        cv2.rectangle(bg, (x0, 168), (x1 - 1, _DESK_Y), (200, 210, 220), -1)
        cv2.rectangle(bg, (x0, 168), (x1 - 1, _DESK_Y), (170, 180, 192), 2)
        cv2.rectangle(bg, (x1 - 62, 190), (x1 - 14, 252), (250, 250, 246), -1)
        for k in range(5):
            y = 200 + 10 * k
            cv2.line(bg, (x1 - 56, y), (x1 - 20 - 6 * (k % 2), y), (150, 150, 160), 1)
        cx = (x0 + x1) // 2
        cv2.rectangle(bg, (cx - 90, 78), (cx + 90, 150), (20, 20, 24), -1)
        cv2.rectangle(bg, (cx - 90, 78), (cx + 90, 150), (90, 90, 96), 2)
        _text(bg, "WINDOW", (cx - 22, 114), 0.75, (255, 70, 50), 2)
        _text(bg, window, (cx + 55, 114), 1.6, (255, 60, 40), 4)
        # Office chair: seat back with a headrest, seen from the front.
        cv2.rectangle(bg, (sx - 54, 360), (sx + 54, _DESK_Y), (52, 58, 74), -1, cv2.LINE_AA)
        cv2.ellipse(bg, (sx, 362), (54, 16), 0, 180, 360, (52, 58, 74), -1, cv2.LINE_AA)
        cv2.line(bg, (sx - 44, 356), (sx + 44, 356), (80, 88, 104), 2, cv2.LINE_AA)

        # Front layer: desk top, monitor (back side), papers, evaluation pad, counter.
        cv2.rectangle(fg, (x0, _DESK_Y), (x1, _DESK_Y + 18), (226, 224, 218), -1)
        cv2.line(fg, (x0, _DESK_Y + 17), (x1, _DESK_Y + 17), (150, 148, 140), 2)
        cv2.rectangle(fg, (x0 + 12, 402), (x0 + 80, 462), (40, 42, 46), -1)
        cv2.rectangle(fg, (x0 + 12, 402), (x0 + 80, 462), (70, 72, 78), 2)
        cv2.rectangle(fg, (x0 + 40, 462), (x0 + 52, _DESK_Y + 4), (70, 72, 78), -1)
        cv2.rectangle(fg, (x1 - 72, 456), (x1 - 22, _DESK_Y + 2), (248, 248, 244), -1)
        cv2.rectangle(fg, (x1 - 72, 456), (x1 - 22, _DESK_Y + 2), (180, 180, 176), 1)
        cv2.rectangle(fg, (x0, _DESK_Y + 18), (x1, _COUNTER_BOTTOM), (156, 112, 72), -1)
        for y in range(_DESK_Y + 60, _COUNTER_BOTTOM, 56):
            cv2.line(fg, (x0, y), (x1, y), (138, 98, 62), 2)
        cv2.ellipse(fg, (cx, 560), (44, 30), 0, 0, 360, (244, 240, 228), -1, cv2.LINE_AA)
        _text(fg, window, (cx, 560), 1.2, (120, 30, 30), 3)
        cv2.rectangle(fg, (x1 - 70, _DESK_Y + 26), (x1 - 18, _DESK_Y + 52), (30, 32, 36), -1)
        for k, col in enumerate(((40, 200, 80), (240, 200, 40), (230, 60, 50))):
            cv2.circle(fg, (x1 - 58 + 14 * k, _DESK_Y + 39), 4, col, -1, cv2.LINE_AA)
        fg_mask[_DESK_Y:_COUNTER_BOTTOM, x0 : x1 + 1] = 1
        fg_mask[402:_DESK_Y, x0 + 12 : x0 + 81] = 1
        fg_mask[456:_DESK_Y, x1 - 72 : x1 - 21] = 1

    # Partitions between windows, and the floor.
    edges = [0] + [x1 for _, x1 in layout.booths]
    for x in edges:
        cv2.rectangle(fg, (x, 150), (x + _PARTITION_W - 1, _COUNTER_BOTTOM), (208, 202, 192), -1)
        cv2.line(fg, (x + 2, 150), (x + 2, _COUNTER_BOTTOM), (226, 222, 214), 2)
        cv2.line(
            fg,
            (x + _PARTITION_W - 3, 150),
            (x + _PARTITION_W - 3, _COUNTER_BOTTOM),
            (170, 164, 154),
            2,
        )
        fg_mask[150:_COUNTER_BOTTOM, x : x + _PARTITION_W] = 1
    fg[_COUNTER_BOTTOM:] = (176, 176, 172)
    fg[_COUNTER_BOTTOM : _COUNTER_BOTTOM + 3] = (120, 100, 80)
    fg_mask[_COUNTER_BOTTOM:] = 1
    return bg, fg, fg_mask.astype(bool)
