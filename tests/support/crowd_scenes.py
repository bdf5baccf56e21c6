"""Generated hall scenes with known numbers of people, for occupancy and flow tests.

Two kinds of scene, both built from the demo's real cut-out people
(:func:`hallwatch.demo.people.sprite`: three photos, mirrored, clothes recoloured) so that the
real person detector is what is measured:

- :func:`waiting_scene`: a waiting area (候办区) seen from a camera above the service windows:
  back wall, tiled floor, three rows of benches facing the camera. ``k`` people sit on
  randomly chosen seats (no two on neighbouring seats of a row); the row in front, or the low
  table before the front row, hides their lower body, as benches do. Back rows are smaller
  (perspective). Optional *outsiders* stand behind leaflet stands by the side walls, outside
  the zone's polygon (the detector sees them; the zone must not count them).
- :func:`walking_script` / :func:`walking_frames`: an entrance passage seen from the side:
  people step out from behind a pillar and walk left or right behind a waist-high rail,
  across a vertical entrance line in the doorway; one walker may stop on the line and turn
  back.

Everything is drawn with OpenCV from a seed; nothing is downloaded.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import cv2
import numpy as np

from hallwatch.demo.people import PHOTOS, Sprite, paste, sprite

#: Configured-image size of the waiting-area camera.
WAITING_SIZE = (1280, 720)
#: Configured-image size of the entrance camera.
ENTRANCE_SIZE = (800, 450)

_HUES: tuple[int | None, ...] = (None, 0, 20, 60, 108, 140, 165)


@dataclass(frozen=True)
class Look:
    """How one person looks: photo, mirroring and clothes colour."""

    photo: str
    flip: bool
    clothes_hue: int | None


def random_look(rng: np.random.Generator) -> Look:
    """A random person from the three photos, maybe mirrored, maybe in other clothes."""
    return Look(
        photo=PHOTOS[int(rng.integers(len(PHOTOS)))],
        flip=bool(rng.integers(2)),
        clothes_hue=_HUES[int(rng.integers(len(_HUES)))],
    )


@lru_cache(maxsize=256)
def scaled_sprite(look: Look, scale: float) -> Sprite:
    """The sprite of ``look`` resized by ``scale`` (cached; ``scale`` is rounded to 0.01)."""
    base = sprite(look.photo, look.flip, look.clothes_hue)
    scale = round(scale, 2)
    size = (max(round(base.width * scale), 1), max(round(base.height * scale), 1))
    rgb = cv2.resize(np.ascontiguousarray(base.rgb), size, interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(np.ascontiguousarray(base.alpha[..., 0]), size, interpolation=cv2.INTER_AREA)
    anchor = (round(base.anchor[0] * scale), round(base.anchor[1] * scale))
    return Sprite(rgb=rgb, alpha=alpha[..., None].astype(np.float32), anchor=anchor)


def _composite(frame: np.ndarray, spr: Sprite, at: tuple[int, int]) -> None:
    """Paste ``spr`` with its anchor (chin) at ``at``, over whatever ``frame`` shows."""
    no_front = np.zeros(frame.shape[:2], bool)
    paste(frame, frame, frame, no_front, spr, at, (0, frame.shape[1]))


def _finish(frame: np.ndarray, rng: np.random.Generator, gain: float) -> np.ndarray:
    """Camera exposure and sensor noise."""
    noise = rng.normal(0.0, 2.0, (*frame.shape[:2], 1)).astype(np.float32)
    out = frame.astype(np.float32) * gain + noise
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


# --- waiting area -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    """One bench row: chin height of people seated on it, their scale, the seats' x."""

    chin_y: int
    scale: float
    seats: tuple[int, ...]
    bench_x: tuple[int, int]


def _rows() -> tuple[_Row, ...]:
    def seats(x0: int, x1: int, n: int) -> tuple[int, ...]:
        step = (x1 - x0) / (n - 1)
        return tuple(round(x0 + i * step) for i in range(n))

    return (
        _Row(chin_y=318, scale=0.38, seats=seats(300, 980, 9), bench_x=(260, 1020)),
        _Row(chin_y=430, scale=0.50, seats=seats(230, 1050, 8), bench_x=(180, 1100)),
        _Row(chin_y=565, scale=0.64, seats=seats(170, 1110, 7), bench_x=(110, 1170)),
    )


#: The waiting zone's polygon (configured-image pixels): the benches' floor area, from the
#: back row's seats to the front of the table before the front row.
WAITING_POLYGON: tuple[tuple[int, int], ...] = ((230, 300), (1050, 300), (1190, 712), (90, 712))


def _bench_front_y(row: _Row) -> int:
    """Top of what hides the lower body of people on ``row``: mid-chest height."""
    return row.chin_y + round(105 * row.scale)


def _draw_backrest(img: np.ndarray, row: _Row) -> None:
    """The bench back behind ``row``'s people (seen from the front, above their shoulders)."""
    x0, x1 = row.bench_x
    top, bottom = row.chin_y - round(40 * row.scale), _bench_front_y(row)
    cv2.rectangle(img, (x0, top), (x1, bottom), (70, 92, 128), -1)
    half = (row.seats[1] - row.seats[0]) // 2
    for sx in row.seats[:-1]:
        cv2.line(img, (sx + half, top), (sx + half, bottom), (52, 70, 100), 2)


def _draw_occluder(img: np.ndarray, row: _Row, colour: tuple[int, int, int]) -> None:
    """The seat and next bench back (or table) in front of ``row``'s people's lower body."""
    top = _bench_front_y(row)
    bottom = row.chin_y + round(320 * row.scale)
    x0, x1 = row.bench_x
    cv2.rectangle(img, (x0, top), (x1, bottom), colour, -1)
    cv2.line(img, (x0, top), (x1, top), tuple(min(c + 40, 255) for c in colour), 3)
    cv2.line(img, (x0, top + 6), (x1, top + 6), tuple(max(c - 30, 0) for c in colour), 1)


@lru_cache(maxsize=1)
def _waiting_background() -> np.ndarray:
    w, h = WAITING_SIZE
    img = np.empty((h, w, 3), np.float32)
    wall_h = 250
    img[:wall_h] = (226, 222, 210)
    img[:wall_h] += np.linspace(-14, 6, wall_h, dtype=np.float32)[:, None, None]
    img[wall_h:] = (196, 192, 184)
    img[wall_h:] += np.linspace(-10, 18, h - wall_h, dtype=np.float32)[:, None, None]
    out = np.clip(img, 0, 255).astype(np.uint8)
    cv2.rectangle(out, (0, 0), (w, 40), (40, 62, 96), -1)
    cv2.putText(out, "WAITING AREA", (520, 30), cv2.FONT_HERSHEY_DUPLEX, 0.8, (255, 255, 255), 2)
    # Queue display and windows signs on the back wall, a skirting line.
    cv2.rectangle(out, (520, 70), (760, 170), (20, 22, 26), -1)
    for k in range(4):
        y = 92 + 22 * k
        cv2.putText(out, f"A0{17 + k}  -> {k + 1}", (545, y), 0, 0.6, (255, 80, 40), 1)
    for x in (80, 1000):
        cv2.rectangle(out, (x, 90), (x + 200, 240), (205, 212, 222), -1)
        cv2.rectangle(out, (x, 90), (x + 200, 240), (160, 170, 182), 2)
    cv2.line(out, (0, wall_h), (w, wall_h), (140, 130, 118), 3)
    # Floor tiles in perspective towards a vanishing point above the image.
    vx, vy = w // 2, -500
    for x in range(-1600, w + 1600, 160):
        top_x = round(vx + (x - vx) * (wall_h - vy) / (h - vy))
        cv2.line(out, (top_x, wall_h), (x, h), (178, 174, 166), 1, cv2.LINE_AA)
    line_y, gap = float(wall_h + 14), 14.0
    while line_y < h:
        cv2.line(out, (0, round(line_y)), (w, round(line_y)), (178, 174, 166), 1, cv2.LINE_AA)
        gap *= 1.25
        line_y += gap
    return out


@dataclass(frozen=True)
class SeatedPerson:
    """One person seated in the zone: who, on which row (0 = back), where they show.

    Attributes:
        look: Photo, mirroring, clothes.
        row: Bench row, 0 (back, smallest) to 2 (front).
        box: ``(x1, y1, x2, y2)`` of their visible part in image pixels.
    """

    look: Look
    row: int
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class WaitingScene:
    """A waiting area with a known number of people in its zone.

    Attributes:
        image: RGB ``uint8``, :data:`WAITING_SIZE`.
        polygon: The zone, configured-image pixels (= image pixels).
        count: People seated inside the zone.
        outsiders: People standing outside the zone (not counted).
        people: The seated people, ``count`` of them.
    """

    image: np.ndarray
    polygon: list[tuple[float, float]]
    count: int
    outsiders: int
    people: tuple[SeatedPerson, ...]


def waiting_scene(count: int, seed: int, *, outsiders: int = 0) -> WaitingScene:
    """Render a waiting area with ``count`` seated people in the zone.

    Args:
        count: People to seat, 0..9.
        seed: RNG seed: seats, looks, lighting and noise.
        outsiders: 0..2 people standing by the side walls, outside :data:`WAITING_POLYGON`.

    Returns:
        The scene.

    Example:
        >>> s = waiting_scene(3, seed=1)
        >>> s.image.shape, s.count
        ((720, 1280, 3), 3)
    """
    rows = _rows()
    if not 0 <= count <= 9 or not 0 <= outsiders <= 2:
        raise ValueError(f"count must be 0..9 and outsiders 0..2, got {count}, {outsiders}")
    rng = np.random.default_rng(seed)
    # Free seats: none next to a taken one, so no two people overlap much.
    taken: list[set[int]] = [set() for _ in rows]
    for _ in range(count):
        free = [
            (r, i)
            for r, row in enumerate(rows)
            for i in range(len(row.seats))
            if not {i - 1, i, i + 1} & taken[r]
        ]
        r, i = free[int(rng.integers(len(free)))]
        taken[r].add(i)
    img = _waiting_background().copy()
    people: list[SeatedPerson] = []
    for r, row in enumerate(rows):
        _draw_backrest(img, row)
        for i in sorted(taken[r]):
            look = random_look(rng)
            spr = scaled_sprite(look, row.scale * float(rng.uniform(0.93, 1.07)))
            jitter = rng.integers(-6, 7, 2)
            at = (row.seats[i] + int(jitter[0]), row.chin_y + int(jitter[1]))
            _composite(img, spr, at)
            people.append(SeatedPerson(look, r, _visible_box(spr, at, _bench_front_y(row))))
        _draw_occluder(img, row, (64, 84, 120) if r < len(rows) - 1 else (150, 112, 76))
    for side in range(outsiders):
        # Standing by a side wall: feet (the sprite's bottom) outside the zone's polygon.
        spr = scaled_sprite(random_look(rng), 0.5)
        x, chin_y = (50 if side == 0 else 1225), 300 + int(rng.integers(-10, 10))
        _composite(img, spr, (x, chin_y))
        # A leaflet stand in front of them hides their legs (the sprite is a bust).
        top = chin_y + 55
        cv2.rectangle(img, (x - 60, top), (x + 60, top + 150), (180, 60, 50), -1)
        cv2.rectangle(img, (x - 60, top), (x + 60, top + 150), (120, 40, 30), 3)
    image = _finish(img, rng, float(rng.uniform(0.85, 1.08)))
    return WaitingScene(
        image=image,
        polygon=[(float(x), float(y)) for x, y in WAITING_POLYGON],
        count=count,
        outsiders=outsiders,
        people=tuple(people),
    )


def _visible_box(spr: Sprite, at: tuple[int, int], hidden_below: int) -> tuple[int, int, int, int]:
    """Where a sprite pasted with its anchor at ``at`` shows above row ``hidden_below``."""
    left, top = at[0] - spr.anchor[0], at[1] - spr.anchor[1]
    rows = max(0, min(spr.height, hidden_below - top))
    alpha = spr.alpha[:rows, :, 0] > 0.3
    ys, xs = np.nonzero(alpha)
    if not len(ys):
        return (left, top, left, top)
    return (left + int(xs.min()), top + int(ys.min()), left + int(xs.max()) + 1, hidden_below)


# --- entrance -----------------------------------------------------------------------------

#: The entrance line (configured-image pixels), drawn up the doorway: inside the hall is on
#: the right of it looking from the first point to the second, i.e. the image's right side.
ENTRANCE_LINE: tuple[tuple[float, float], tuple[float, float]] = ((400.0, 420.0), (400.0, 150.0))
#: The entrance zone: the passage between the two pillars, around the doorway.
ENTRANCE_POLYGON: tuple[tuple[int, int], ...] = ((170, 150), (630, 150), (630, 430), (170, 430))
_RAIL_Y = 330  # top of the waist-high rail in front of the walkers
_PILLARS = ((0, 140), (660, 800))  # columns hidden behind the pillars
_WALK_CHIN_Y = 245
_WALK_SCALE = 0.62
_WALK_FROM, _WALK_TO = 60.0, 740.0  # body centre x at the start and end of a walk ("in")
_TURN_PAUSE = 6  # frames the turning walker stands on the line


@dataclass(frozen=True)
class Walker:
    """One person in the passage.

    Attributes:
        start: Frame at which they step out from behind the pillar.
        direction: ``"in"`` walks left → right (into the hall), ``"out"`` right → left.
        turn_back: Stops on the line for a few frames and walks back the way they came.
        look: How they look.
        dy: Vertical offset of their chin (some are taller).
    """

    start: int
    direction: Literal["in", "out"]
    turn_back: bool
    look: Look
    dy: int = 0


@dataclass(frozen=True)
class WalkingScene:
    """An entrance passage sequence: who walks when, the frame count and the true counts."""

    walkers: tuple[Walker, ...]
    step_px: float
    frames: int
    in_count: int
    out_count: int


def _walk_frames(turn_back: bool, step_px: float) -> int:
    """Frames a walker is in view."""
    if turn_back:
        to_line = ENTRANCE_LINE[0][0] - _WALK_FROM
        return 2 * math.ceil(to_line / step_px) + _TURN_PAUSE + 1
    return math.ceil((_WALK_TO - _WALK_FROM) / step_px) + 1


def walking_script(
    n_in: int, n_out: int, *, turn_back: bool = True, step_px: float = 30.0, seed: int = 0
) -> WalkingScene:
    """People walking through the entrance, in a random order.

    Someone walking the same way as the person before them follows half a passage behind;
    someone walking the other way (or after the one who turns back) waits until the passage
    is clear, so people never overlap.

    Args:
        n_in: People walking in (left → right).
        n_out: People walking out (right → left).
        turn_back: Add one person who stops on the line and goes back without crossing.
        step_px: Walking speed in image pixels per frame.
        seed: Order and looks.

    Returns:
        The script; render its frames with :func:`walking_frames`.
    """
    rng = np.random.default_rng(seed)
    kinds: list[tuple[Literal["in", "out"], bool]] = [("in", False)] * n_in
    kinds += [("out", False)] * n_out
    if turn_back:
        kinds.append(("in" if rng.integers(2) else "out", True))
    walkers: list[Walker] = []
    start, end = 0, 0
    for j in rng.permutation(len(kinds)):
        direction, turns = kinds[int(j)]
        if walkers:
            before = walkers[-1]
            if before.direction == direction and not before.turn_back and not turns:
                start = before.start + math.ceil(_walk_frames(False, step_px) / 2)
            else:
                start = end
        walkers.append(
            Walker(start, direction, turns, random_look(rng), dy=int(rng.integers(-12, 13)))
        )
        end = max(end, start + _walk_frames(turns, step_px))
    return WalkingScene(
        walkers=tuple(walkers), step_px=step_px, frames=end + 2, in_count=n_in, out_count=n_out
    )


def walker_x(walker: Walker, frame: int, step_px: float) -> float | None:
    """Body centre x of ``walker`` at ``frame``, or ``None`` when not in the passage."""
    t = frame - walker.start
    if t < 0:
        return None
    d = step_px * t
    if walker.turn_back:
        to_line = ENTRANCE_LINE[0][0] - 4.0 - _WALK_FROM  # stops just short of the line
        if d <= to_line:
            x = _WALK_FROM + d
        else:
            back = max(0.0, d - to_line - _TURN_PAUSE * step_px)
            x = _WALK_FROM + to_line - back
            if x < _WALK_FROM:
                return None
    else:
        x = _WALK_FROM + d
        if x > _WALK_TO:
            return None
    return x if walker.direction == "in" else ENTRANCE_SIZE[0] - x


@lru_cache(maxsize=1)
def _entrance_background() -> np.ndarray:
    w, h = ENTRANCE_SIZE
    img = np.empty((h, w, 3), np.uint8)
    img[:] = (218, 214, 204)
    img[:] = np.clip(
        img.astype(np.float32) + np.linspace(-12, 10, h, dtype=np.float32)[:, None, None], 0, 255
    ).astype(np.uint8)
    # Glass doorway in the middle, notice boards either side.
    cv2.rectangle(img, (330, 60), (470, _RAIL_Y), (170, 196, 206), -1)
    cv2.rectangle(img, (330, 60), (470, _RAIL_Y), (90, 96, 104), 6)
    cv2.putText(img, "ENTRANCE", (345, 48), cv2.FONT_HERSHEY_DUPLEX, 0.7, (40, 60, 90), 2)
    for x in (170, 500):
        cv2.rectangle(img, (x, 110), (x + 130, 200), (200, 206, 214), -1)
        cv2.rectangle(img, (x, 110), (x + 130, 200), (150, 156, 166), 2)
    return img


def _draw_front(img: np.ndarray) -> None:
    """The rail in front of the walkers and the two pillars."""
    w, h = ENTRANCE_SIZE
    cv2.rectangle(img, (0, _RAIL_Y), (w, h), (150, 146, 140), -1)
    cv2.rectangle(img, (0, _RAIL_Y), (w, _RAIL_Y + 10), (110, 112, 118), -1)
    for x in range(30, w, 120):
        cv2.rectangle(img, (x, _RAIL_Y + 10), (x + 8, h), (120, 120, 124), -1)
    for x0, x1 in _PILLARS:
        cv2.rectangle(img, (x0, 0), (x1, h), (196, 186, 170), -1)
        cv2.line(
            img, (x0 + 4 if x0 else x1 - 4, 0), (x0 + 4 if x0 else x1 - 4, h), (160, 150, 136), 3
        )


def walking_frames(scene: WalkingScene, seed: int = 0) -> Iterator[np.ndarray]:
    """Render every frame of ``scene`` (RGB ``uint8``, :data:`ENTRANCE_SIZE`)."""
    rng = np.random.default_rng(seed)
    for f in range(scene.frames):
        img = _entrance_background().copy()
        for walker in scene.walkers:
            x = walker_x(walker, f, scene.step_px)
            if x is None:
                continue
            bob = round(3.0 * abs(math.sin(0.5 * f)))
            spr = scaled_sprite(walker.look, _WALK_SCALE)
            _composite(img, spr, (round(x), _WALK_CHIN_Y + walker.dy - bob))
        _draw_front(img)
        yield _finish(img, rng, 1.0)
