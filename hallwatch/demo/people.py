"""Real people for the demo hall, cut out of photos that ship inside installed packages.

The demo's clerks have to be real people so that the real person detector finds them. Three
photos that ship with the project's dependencies are used: scikit-image's ``astronaut.png``
and ``camera.png`` and matplotlib's ``grace_hopper.jpg``. Each is cut out of its background
with OpenCV's GrabCut, seeded by a hand-tuned mask (a probable-foreground envelope, a few
sure-foreground cores and sure-background areas), run at half resolution with a fixed RNG
seed so the cut-out is deterministic. The result is cached once per process.

A :class:`Sprite` is an RGB image with a float alpha matte, scaled so that all clerks have
about the same head size, with an *anchor*: the point under the chin at the centre of the
body, which the scene places at a fixed height above the desk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np

# Points are (x, y) in the photo's own pixels.
_Pts = tuple[tuple[int, int], ...]
_Ellipse = tuple[tuple[int, int], tuple[int, int]]

#: Extra rows (in sprite pixels) added under each cut-out by repeating its last row, so that
#: a clerk who rises a little while walking never shows the photo's bottom edge above the desk.
BOTTOM_PAD_PX = 80


@dataclass(frozen=True)
class _CutSpec:
    """How to cut one photo: GrabCut seeds and where the person sits in it."""

    envelope: _Pts  # probable foreground; everything outside is sure background
    cores: tuple[_Pts, ...]  # sure foreground polygons
    core_ellipses: tuple[_Ellipse, ...]  # sure foreground ellipses (centre, half-axes)
    bg_polys: tuple[_Pts, ...]  # sure background polygons inside the envelope
    bg_ellipses: tuple[_Ellipse, ...]  # sure background ellipses
    anchor: tuple[int, int]  # body centre x, chin y
    scale: float  # photo pixels → demo pixels (about the same face size for all)


# fmt: off
_SPECS: dict[str, _CutSpec] = {
    "astronaut": _CutSpec(
        envelope=((145, 5), (310, 5), (306, 115), (285, 150), (305, 165), (330, 205), (365, 270),
                  (375, 330), (300, 350), (270, 420), (250, 512), (10, 512), (10, 300), (50, 260),
                  (110, 185), (150, 160), (148, 120)),
        cores=(((80, 320), (250, 300), (330, 320), (260, 380), (240, 500), (60, 500)),
               ((130, 180), (300, 180), (290, 270), (140, 270))),
        core_ellipses=(((225, 100), (60, 70)),),
        bg_polys=(),
        bg_ellipses=(((395, 440), (118, 98)),),  # the helmet in front of her
        anchor=(200, 185),
        scale=0.5,
    ),
    "camera": _CutSpec(
        envelope=((160, 55), (275, 60), (290, 130), (335, 130), (340, 215), (305, 230),
                  (300, 288), (197, 298), (142, 432), (142, 512), (0, 512), (0, 250), (30, 180),
                  (120, 120)),
        cores=(((40, 220), (150, 160), (230, 230), (230, 290), (120, 480), (10, 480)),),
        core_ellipses=(((215, 140), (45, 55)),),
        bg_polys=(((142, 432), (197, 298), (300, 288), (300, 512), (145, 512)),),  # grass
        bg_ellipses=(),
        anchor=(185, 200),
        scale=0.62,
    ),
    "grace_hopper": _CutSpec(
        envelope=((150, 20), (380, 20), (380, 250), (362, 305), (340, 330), (470, 360),
                  (512, 410), (512, 600), (10, 600), (15, 420), (60, 375), (150, 345),
                  (192, 332), (170, 280), (156, 200), (148, 120)),
        cores=(((80, 420), (200, 340), (330, 340), (460, 420), (490, 590), (40, 590)),),
        core_ellipses=(((262, 190), (95, 140)),),
        bg_polys=(),
        bg_ellipses=(),
        anchor=(262, 335),
        scale=0.40,
    ),
}
# fmt: on

PHOTOS: tuple[str, ...] = tuple(_SPECS)


@dataclass(frozen=True)
class Sprite:
    """A cut-out person ready to composite.

    Attributes:
        rgb: ``uint8`` RGB image, shape ``(h, w, 3)``.
        alpha: ``float32`` matte in ``[0, 1]``, shape ``(h, w, 1)``.
        anchor: ``(x, y)`` in sprite pixels: body centre, chin height.
    """

    rgb: np.ndarray
    alpha: np.ndarray
    anchor: tuple[int, int]

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


def photo_path(photo: str) -> Path:
    """Return the path of a packaged photo.

    Args:
        photo: One of :data:`PHOTOS`.

    Returns:
        The file inside the installed scikit-image or matplotlib package.

    Raises:
        KeyError: For an unknown photo name.
    """
    if photo == "grace_hopper":
        import matplotlib

        return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if photo in ("astronaut", "camera"):
        import skimage

        return Path(skimage.__file__).parent / "data" / f"{photo}.png"
    raise KeyError(photo)


def load_photo(photo: str) -> np.ndarray:
    """Read a packaged photo as RGB ``uint8`` (grayscale photos are expanded to 3 channels)."""
    path = photo_path(photo)
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(path)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


@cache
def cutout_mask(photo: str) -> np.ndarray:
    """Cut the person out of a photo with seeded GrabCut (deterministic, cached per process).

    Args:
        photo: One of :data:`PHOTOS`.

    Returns:
        ``float32`` matte in ``[0, 1]`` of the photo's size, edges feathered by about a pixel.
    """
    spec = _SPECS[photo]
    img = load_photo(photo)
    h, w = img.shape[:2]
    f = 0.5  # GrabCut at half size: ~4x faster and plenty for sprites scaled to 0.4-0.6
    small = cv2.resize(img, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)

    def poly(pts: _Pts) -> np.ndarray:
        return (np.asarray(pts, np.float32) * f).round().astype(np.int32)

    def ellipse(mask: np.ndarray, e: _Ellipse, label: int) -> None:
        (cx, cy), (ax, ay) = e
        centre = (round(cx * f), round(cy * f))
        cv2.ellipse(mask, centre, (round(ax * f), round(ay * f)), 0, 0, 360, label, -1)

    seeds = np.full(small.shape[:2], cv2.GC_BGD, np.uint8)
    cv2.fillPoly(seeds, [poly(spec.envelope)], cv2.GC_PR_FGD)
    for e in spec.core_ellipses:
        ellipse(seeds, e, cv2.GC_FGD)
    cv2.fillPoly(seeds, [poly(p) for p in spec.cores], cv2.GC_FGD)
    if spec.bg_polys:
        cv2.fillPoly(seeds, [poly(p) for p in spec.bg_polys], cv2.GC_BGD)
    for e in spec.bg_ellipses:
        ellipse(seeds, e, cv2.GC_BGD)

    cv2.setRNGSeed(12345)
    bgd_model = np.zeros((1, 65), np.float64)
    fgd_model = np.zeros((1, 65), np.float64)
    bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
    cv2.grabCut(bgr, seeds, None, bgd_model, fgd_model, 5, cv2.GC_INIT_WITH_MASK)  # type: ignore[call-overload]
    fg = ((seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)).astype(np.uint8) * 255
    # Drop specks: keep the largest connected blob only.
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n > 2:
        biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        fg = np.where(labels == biggest, 255, 0).astype(np.uint8)
    full = cv2.resize(fg, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
    full = cv2.GaussianBlur(full, (0, 0), 1.5)
    return np.clip((full - 0.5) * 2.0 + 0.5, 0.0, 1.0).astype(np.float32)


def _recolour(rgb: np.ndarray, alpha: np.ndarray, from_row: int, hue: int) -> np.ndarray:
    """Turn saturated clothes below ``from_row`` to OpenCV hue ``hue`` (0-179)."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    region = np.zeros(rgb.shape[:2], bool)
    region[from_row:] = True
    cloth = region & (hsv[..., 1] > 90) & (alpha[..., 0] > 0.0)
    hsv[..., 0] = np.where(cloth, hue, hsv[..., 0]).astype(np.uint8)
    value = (hsv[..., 2].astype(np.float32) * 0.75).astype(np.uint8)
    hsv[..., 2] = np.where(cloth, value, hsv[..., 2])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


@cache
def sprite(photo: str, flip: bool = False, clothes_hue: int | None = None) -> Sprite:
    """Return a clerk sprite cut out of ``photo`` (cached per process).

    Args:
        photo: One of :data:`PHOTOS`.
        flip: Mirror left-right (for a second clerk from the same photo).
        clothes_hue: If set, saturated clothes below the chin get this OpenCV hue (0-179).

    Returns:
        The scaled sprite, padded at the bottom by :data:`BOTTOM_PAD_PX` repeated rows.
    """
    spec = _SPECS[photo]
    img = load_photo(photo)
    matte = cutout_mask(photo)
    h, w = img.shape[:2]
    # Crop to the matte's bounding box (plus a pixel) before scaling.
    ys, xs = np.nonzero(matte > 0.01)
    x0, x1 = max(int(xs.min()) - 1, 0), min(int(xs.max()) + 2, w)
    y0, y1 = max(int(ys.min()) - 1, 0), min(int(ys.max()) + 2, h)
    img, matte = img[y0:y1, x0:x1], matte[y0:y1, x0:x1]
    ax, ay = spec.anchor[0] - x0, spec.anchor[1] - y0
    s = spec.scale
    size = (max(round(img.shape[1] * s), 1), max(round(img.shape[0] * s), 1))
    rgb = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(matte, size, interpolation=cv2.INTER_AREA)[..., None]
    anchor_x, anchor_y = round(ax * s), round(ay * s)
    if clothes_hue is not None:
        rgb = _recolour(rgb, alpha, anchor_y + 6, clothes_hue)
    if flip:
        rgb, alpha = rgb[:, ::-1], alpha[:, ::-1]
        anchor_x = rgb.shape[1] - 1 - anchor_x
    rgb = cv2.copyMakeBorder(
        np.ascontiguousarray(rgb), 0, BOTTOM_PAD_PX, 0, 0, cv2.BORDER_REPLICATE
    )
    alpha = cv2.copyMakeBorder(
        np.ascontiguousarray(alpha), 0, BOTTOM_PAD_PX, 0, 0, cv2.BORDER_REPLICATE
    )[..., None]
    alpha = alpha.astype(np.float32)
    rgb.setflags(write=False)  # shared by the cache
    alpha.setflags(write=False)
    return Sprite(rgb=rgb, alpha=alpha, anchor=(anchor_x, anchor_y))


# --- casting and motion -------------------------------------------------------------------


@dataclass(frozen=True)
class _Cast:
    photo: str
    flip: bool = False
    clothes_hue: int | None = None


# Four clerks from three photos: the second astronaut is mirrored and wears blue.
_CAST = (
    _Cast("grace_hopper"),
    _Cast("astronaut"),
    _Cast("camera"),
    _Cast("astronaut", flip=True, clothes_hue=108),
)


def clerk_sprite(index: int) -> Sprite:
    """Return the sprite of the clerk at post number ``index`` (0-based; the cast repeats)."""
    c = _CAST[index % len(_CAST)]
    return sprite(c.photo, c.flip, c.clothes_hue)


def ease(u: float) -> float:
    """Smoothstep of ``u`` clamped to ``[0, 1]``."""
    u = min(max(u, 0.0), 1.0)
    return u * u * (3.0 - 2.0 * u)


def idle_offset(index: int, t: float, duration: float) -> tuple[float, float]:
    """Return a seated clerk's ``(dx, dy)`` in pixels at ``t``: sway, breathing, two shifts.

    Every term is periodic in ``duration`` (whole cycles) and the shifts stay clear of both
    ends, so a looping video is continuous at ``t = 0`` / ``t = duration``.

    Args:
        index: Post number; gives each clerk their own phases and shift times.
        t: Seconds within ``[0, duration]``.
        duration: The video's length.
    """

    def cycles(period_s: float) -> float:
        return 2.0 * math.pi * max(1, round(duration / period_s)) * t / duration

    phase = 1.7 * index
    dx = 2.0 * math.sin(cycles(23.0) + phase) + 1.0 * math.sin(cycles(7.0) + 2 * phase)
    dy = 1.2 * math.sin(cycles(4.5) + 3 * phase)
    # Occasional shifts: lean ~5 px to one side for a few seconds.
    for k, (centre, amp) in enumerate(((0.22, 5.0), (0.64, -4.0))):
        c = duration * ((centre + 0.13 * index + 0.05 * k) % 0.8 + 0.1)
        u = abs(t - c)
        if u < 3.5:
            dx += amp * (1.0 - ease(u - 2.5))
    return dx, dy


def walk_offset(spr: Sprite, away: float, seat_x: int, exit_x: int) -> tuple[float, float]:
    """Return ``(dx, dy)`` of a clerk ``away`` (0 seated … 1 gone) on their walk to ``exit_x``.

    The clerk rises a little, then walks right with a slight gait bob until their left-most
    opaque column has passed ``exit_x``.
    """
    reach = exit_x - (seat_x - spr.anchor[0] + left_margin(spr)) + 4
    dx = away * reach
    dy = -12.0 * ease(away * 4.0) - 3.0 * abs(math.sin(math.pi * 3.0 * away))
    return dx, dy


def left_margin(spr: Sprite) -> int:
    """First sprite column with any opacity."""
    cols = np.nonzero(spr.alpha[..., 0].max(axis=0) > 0.02)[0]
    return int(cols[0]) if cols.size else 0


def paste(
    frame: np.ndarray,
    background: np.ndarray,
    fg_rgb: np.ndarray,
    fg_mask: np.ndarray,
    spr: Sprite,
    at: tuple[int, int],
    clip_x: tuple[int, int],
) -> None:
    """Composite ``spr`` into ``frame`` in place, between the hall's two layers.

    Args:
        frame: The frame being built (background with the foreground layer already on it).
        background: The hall behind the clerks.
        fg_rgb: The hall's foreground layer (desk, monitors, counter, partitions).
        fg_mask: Where the foreground layer is, ``bool`` of shape ``(H, W)``.
        spr: The clerk.
        at: Where the sprite's anchor goes, ``(x, y)``.
        clip_x: Columns ``[x0, x1)`` the clerk may appear in (their own window).
    """
    h, w = frame.shape[:2]
    left, top = at[0] - spr.anchor[0], at[1] - spr.anchor[1]
    x0, x1 = max(left, clip_x[0], 0), min(left + spr.width, clip_x[1], w)
    y0, y1 = max(top, 0), min(top + spr.height, h)
    if x0 >= x1 or y0 >= y1:
        return
    sx, sy = x0 - left, y0 - top
    a = spr.alpha[sy : sy + y1 - y0, sx : sx + x1 - x0]
    src = spr.rgb[sy : sy + y1 - y0, sx : sx + x1 - x0].astype(np.float32)
    bg = background[y0:y1, x0:x1].astype(np.float32)
    out = (bg + (src - bg) * a + 0.5).astype(np.uint8)
    m = fg_mask[y0:y1, x0:x1, None]
    frame[y0:y1, x0:x1] = np.where(m, fg_rgb[y0:y1, x0:x1], out)
