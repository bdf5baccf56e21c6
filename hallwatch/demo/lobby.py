"""The demo hall's lobby: a waiting area (候办区) with a changing crowd, and an entrance (出入口).

A second generated camera, 1280x720 at 5 fps, looping every 60 s. The left part is the
waiting area: two rows of benches facing the camera, whose solid backs hide the seated
applicants' lower bodies. Applicants walk in from the left edge along their row, sit
(swaying a little) and later walk back out, per the script's :class:`WaitingApplicant`
cues: by default 2 people wait, 7 from about 12 s, 3 from about 40 s. The right part is the
entrance: a glass door on the right, a waist-high frosted railing in front of the walkway
and a pillar on the left; :class:`Walker` cues walk one person at a time in (from the door,
leftwards, behind the pillar into the hall) or out, across a vertical counting line.

People are the real cut-outs of :mod:`hallwatch.demo.people`, scaled, mirrored and
recoloured, so that the real person detector finds them. :func:`lobby_zones` gives the
zones' polygons and the entrance line; :func:`expected_occupancy_peaks`,
:func:`expected_crowding` and :func:`expected_flow` what a correct pipeline reports.

Example:
    >>> script = default_lobby_script()
    >>> [people_in_zone(script, "waiting", t) for t in (5.0, 25.0, 45.0)]
    [2, 7, 3]
    >>> expected_flow(script, 60.0)
    {'in': 6, 'out': 3}
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from dataclasses import asdict, dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from hallwatch.demo.hall import CANVAS, _text
from hallwatch.demo.people import Sprite, idle_offset, sprite
from hallwatch.demo.scene import _noise_bank, write_video

#: Bump whenever the lobby's rendering changes, so cached videos are re-rendered.
LOBBY_RENDERER_VERSION = "1"
#: The lobby camera's id in the demo hall's config.
LOBBY_CAMERA = "lobby-cam"
#: Pace of applicants walking to and from their seats, pixels per second.
SEAT_WALK_PX_S = 300.0

_FLOOR_Y = 440  # back wall / floor line
_PILLAR = (826, 884)  # pillar between the waiting area and the entrance (columns)
_DOOR_X = 1196  # left edge of the door's jamb: walkers are hidden right of it
_RAIL_Y = 508  # top of the entrance railing: walkers are hidden below it
_WALKER_CHIN_Y = 405
_WALKER_SCALE = 0.74
_LINE_X = 1040  # the entrance's counting line


@dataclass(frozen=True)
class Row:
    """A row of benches in the waiting area.

    Attributes:
        chin_y: Chin height of the people seated in it.
        back_y: Top of the benches' backs: people are hidden below.
        bottom_y: Bottom of the benches.
        scale: Sprite scale (the back row is further away, smaller).
        seats: Seat centres (columns).
    """

    chin_y: int
    back_y: int
    bottom_y: int
    scale: float
    seats: tuple[int, ...]


#: Back row first (drawn first).
ROWS: tuple[Row, ...] = (
    Row(chin_y=232, back_y=320, bottom_y=430, scale=0.72, seats=(215, 420, 660)),
    Row(chin_y=452, back_y=545, bottom_y=660, scale=0.86, seats=(105, 315, 525, 730)),
)


@dataclass(frozen=True)
class Look:
    """Who a person is: a packaged photo, mirrored or not, clothes recoloured or not."""

    photo: str
    flip: bool = False
    clothes_hue: int | None = None


@dataclass(frozen=True)
class WaitingApplicant:
    """An applicant (办事群众) waiting on a bench.

    Attributes:
        row: Index into :data:`ROWS`.
        seat: Index into the row's seats.
        arrive_s: When they sit down (they walk in from the left edge before).
        leave_s: When they stand up and walk back out; ``None`` for never.
        look: Who they are.
    """

    row: int
    seat: int
    arrive_s: float | None
    leave_s: float | None
    look: Look


@dataclass(frozen=True)
class Walker:
    """Somebody walking through the entrance, behind the railing.

    Attributes:
        start_s: When they come out from behind the door (``in``) or the pillar (``out``).
        direction: ``in`` (door → hall, leftwards) or ``out`` (hall → door, rightwards).
        speed_px_s: Walking pace in pixels per second.
        look: Who they are.
    """

    start_s: float
    direction: Literal["in", "out"]
    speed_px_s: float
    look: Look


@dataclass(frozen=True)
class LobbyScript:
    """Everything that defines the lobby video.

    Attributes:
        size: ``(width, height)``; drawn at :data:`~hallwatch.demo.hall.CANVAS` and resized.
        fps: Frames per second.
        duration_s: Video length; a looping player repeats it.
        waiting: The waiting area's applicants. Someone seated at ``0`` has
            ``arrive_s=None``; the crowd must be the same at both ends of the loop.
        walkers: The entrance's walkers, all within ``[0, duration_s)``.
    """

    size: tuple[int, int]
    fps: int
    duration_s: float
    waiting: list[WaitingApplicant]
    walkers: list[Walker]


def default_lobby_script() -> LobbyScript:
    """The demo lobby: 60 s; 2 waiting, 7 from ~12 s, 3 from ~40 s; 6 walk in, 3 out.

    Arrivals fill each row from the right, so nobody walks past a seated person of their
    own row; leavers go from the left. The walkers are 5.6 s apart and each is in view for
    about 5 s, so at most one is in the entrance at a time.
    """
    a, c, g = "astronaut", "camera", "grace_hopper"
    waiting = [
        WaitingApplicant(0, 2, None, None, Look(g, flip=True)),
        WaitingApplicant(1, 3, None, None, Look(a, clothes_hue=60)),
        WaitingApplicant(0, 1, 9.6, 38.8, Look(a)),
        WaitingApplicant(1, 2, 10.4, 52.0, Look(g)),
        WaitingApplicant(0, 0, 11.2, 37.6, Look(a, flip=True, clothes_hue=120)),
        WaitingApplicant(1, 1, 12.0, 38.2, Look(g, flip=True)),
        WaitingApplicant(1, 0, 12.8, 37.0, Look(a, clothes_hue=150)),
    ]
    pattern: list[Literal["in", "out"]] = ["in", "in", "out"] * 3
    looks = [
        Look(g), Look(a, True, 100), Look(c, True), Look(a, False, 30), Look(g, True),
        Look(c), Look(a, True), Look(g), Look(a, False, 90),
    ]  # fmt: skip
    walkers = [
        Walker(1.0 + 5.6 * k, d, (92.0, 100.0, 96.0)[k % 3], looks[k])
        for k, d in enumerate(pattern)
    ]
    return LobbyScript(size=CANVAS, fps=5, duration_s=60.0, waiting=waiting, walkers=walkers)


def lobby_digest(script: LobbyScript) -> str:
    """Hash of the script and :data:`LOBBY_RENDERER_VERSION` (the video cache key)."""
    blob = json.dumps({"lobby": asdict(script), "renderer": LOBBY_RENDERER_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


# --- zones --------------------------------------------------------------------------------

_ZONES: dict[str, list[tuple[int, int]]] = {
    "waiting": [(6, 124), (_PILLAR[0] - 4, 124), (_PILLAR[0] - 4, 600), (6, 600)],
    "entrance": [
        (_PILLAR[1] + 2, 230),
        (_DOOR_X - 2, 230),
        (_DOOR_X - 2, 600),
        (_PILLAR[1] + 2, 600),
    ],
}


def lobby_zones(
    script: LobbyScript, camera: str = LOBBY_CAMERA, crowding_at: int = 6
) -> dict[str, dict[str, object]]:
    """The lobby camera's zones as hall-config ``zones:`` entries.

    Args:
        script: The lobby script (polygons are scaled to its size).
        camera: The lobby camera's id.
        crowding_at: The waiting area's crowding threshold.

    Returns:
        ``{"waiting": {...}, "entrance": {...}}`` with ``id``, ``name``, ``kind``,
        ``camera``, ``polygon``, ``count_people`` and, for the waiting area,
        ``crowding_at``; for the entrance, ``line``: its points run bottom to top, so
        ``inside: left`` is the image's left of the line, where the hall is (the door is
        on the right). Walking up the image, the viewer's left is the image's left.
    """
    sx, sy = script.size[0] / CANVAS[0], script.size[1] / CANVAS[1]

    def scaled(points: list[tuple[int, int]]) -> list[list[int]]:
        return [[round(x * sx), round(y * sy)] for x, y in points]

    entrance = _ZONES["entrance"]
    line = [(_LINE_X, entrance[2][1]), (_LINE_X, entrance[0][1])]
    return {
        "waiting": {
            "id": "waiting",
            "name": "候办区",
            "kind": "waiting_area",
            "camera": camera,
            "polygon": scaled(_ZONES["waiting"]),
            "count_people": True,
            "crowding_at": crowding_at,
        },
        "entrance": {
            "id": "entrance",
            "name": "出入口",
            "kind": "entrance",
            "camera": camera,
            "polygon": scaled(entrance),
            "count_people": True,
            "line": {"points": scaled(line), "inside": "left"},
        },
    }


# --- motion -------------------------------------------------------------------------------


@cache
def _look_sprite(look: Look, scale: float) -> Sprite:
    """The person of ``look`` at ``scale`` of their clerk size (cached)."""
    base = sprite(look.photo, look.flip, look.clothes_hue)
    size = (max(1, round(base.width * scale)), max(1, round(base.height * scale)))
    rgb = cv2.resize(np.asarray(base.rgb), size, interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(np.asarray(base.alpha[..., 0]), size, interpolation=cv2.INTER_AREA)
    anchor = (round(base.anchor[0] * scale), round(base.anchor[1] * scale))
    return Sprite(rgb=rgb, alpha=alpha.astype(np.float32)[..., None], anchor=anchor)


def _seat_walk_s(person: WaitingApplicant) -> float:
    """Seconds to walk from off the left edge to the seat."""
    row = ROWS[person.row]
    spr = _look_sprite(person.look, row.scale)
    return (row.seats[person.seat] + spr.width - spr.anchor[0]) / SEAT_WALK_PX_S


def _seated_x(person: WaitingApplicant, t: float) -> float | None:
    """The centre column of a waiting applicant at ``t``, or ``None`` when not in view."""
    row = ROWS[person.row]
    seat = float(row.seats[person.seat])
    walk = _seat_walk_s(person)
    if person.arrive_s is not None and t < person.arrive_s:
        if t <= person.arrive_s - walk:
            return None
        return seat - (person.arrive_s - t) * SEAT_WALK_PX_S
    if person.leave_s is not None and t > person.leave_s:
        if t >= person.leave_s + walk:
            return None
        return seat - (t - person.leave_s) * SEAT_WALK_PX_S
    return seat


def _walker_span(walker: Walker) -> tuple[float, float]:
    """Centre columns where a walker comes into view and where they are out of it."""
    spr = _look_sprite(walker.look, _WALKER_SCALE)
    at_door = _DOOR_X + spr.anchor[0]  # left edge at the door jamb: hidden
    at_pillar = _PILLAR[1] - (spr.width - spr.anchor[0])  # right edge at the pillar: hidden
    return (at_door, at_pillar) if walker.direction == "in" else (at_pillar, at_door)


def walker_x(walker: Walker, t: float) -> float | None:
    """A walker's centre column at ``t`` (within one loop), or ``None`` when not in view."""
    begin, end = _walker_span(walker)
    run = (t - walker.start_s) * walker.speed_px_s
    if run <= 0 or run >= abs(end - begin):
        return None
    return begin + math.copysign(run, end - begin)


def line_crossing_s(walker: Walker) -> float:
    """When a walker's centre crosses the entrance line (video seconds)."""
    begin, _ = _walker_span(walker)
    return walker.start_s + abs(begin - _LINE_X) / walker.speed_px_s


def people_in_zone(script: LobbyScript, zone: str, t: float) -> int:
    """How many people the script puts in ``zone`` at ``t``: body centres inside its columns.

    Args:
        script: The lobby script.
        zone: ``waiting`` or ``entrance``.
        t: Seconds; taken modulo the duration.
    """
    t = t % script.duration_s
    xs = [p[0] for p in _ZONES[zone]]
    lo, hi = min(xs), max(xs)
    if zone == "waiting":
        centres = [_seated_x(p, t) for p in script.waiting]
    else:
        centres = [walker_x(w, t) for w in script.walkers]
    return sum(1 for c in centres if c is not None and lo <= c <= hi)


# --- drawing ------------------------------------------------------------------------------


def _draw_bench_row(fg: np.ndarray, mask: np.ndarray, row: Row, x1: int) -> None:
    """A row of seats with a solid back from ``row.back_y`` down to the floor."""
    bottom = row.bottom_y
    cv2.rectangle(fg, (0, row.back_y), (x1, bottom), (40, 92, 150), -1)
    cv2.rectangle(fg, (0, row.back_y), (x1, row.back_y + 8), (58, 118, 182), -1)
    for x in row.seats:
        half = round(105 * row.scale)
        cv2.line(fg, (x + half + 8, row.back_y + 10), (x + half + 8, bottom), (30, 70, 118), 3)
    cv2.rectangle(fg, (0, bottom), (x1, bottom + 10), (120, 124, 130), -1)
    mask[row.back_y : bottom + 11, 0 : x1 + 1] = True


@lru_cache(maxsize=1)
def _layers() -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """The empty lobby: background, then one occluding layer per row and the front layer."""
    w, h = CANVAS
    bg = np.empty((h, w, 3), np.uint8)
    bg[:] = (226, 222, 210)
    shade = np.linspace(-12, 6, h, dtype=np.float32)[:, None, None]
    bg = np.clip(bg.astype(np.float32) + shade, 0, 255).astype(np.uint8)
    bg[:56] = (38, 60, 92)
    _text(bg, "WAITING AREA", (_PILLAR[0] // 2, 32), 0.8, (255, 255, 255), 2)
    _text(bg, "ENTRANCE / EXIT", ((_PILLAR[1] + w) // 2, 32), 0.8, (255, 255, 255), 2)
    bg[_FLOOR_Y:] = (188, 186, 180)
    for y in range(_FLOOR_Y + 30, h, 46):
        cv2.line(bg, (0, y), (w, y), (172, 170, 164), 1)
    # The call screen (叫号显示屏) on the waiting area's wall, and a clock.
    cv2.rectangle(bg, (270, 64), (570, 128), (18, 20, 26), -1)
    for k, text in enumerate(("A012 -> 1", "B007 -> 3")):
        _text(bg, text, (420, 80 + 32 * k), 0.7, (255, 80, 50), 2)
    cv2.circle(bg, (740, 96), 26, (250, 250, 246), -1, cv2.LINE_AA)
    cv2.circle(bg, (740, 96), 26, (90, 90, 96), 3, cv2.LINE_AA)
    cv2.line(bg, (740, 96), (740, 78), (30, 30, 30), 3, cv2.LINE_AA)
    cv2.line(bg, (740, 96), (752, 102), (30, 30, 30), 3, cv2.LINE_AA)
    # The entrance: the door (daylight through glass) and a mat on the floor.
    cv2.rectangle(bg, (_DOOR_X, 120), (w, _FLOOR_Y + 40), (214, 232, 240), -1)
    cv2.rectangle(bg, (_PILLAR[1], _FLOOR_Y + 20), (_DOOR_X, _FLOOR_Y + 70), (110, 96, 88), -1)

    layers = []
    for row in ROWS:
        fg, mask = np.zeros_like(bg), np.zeros((h, w), bool)
        _draw_bench_row(fg, mask, row, _PILLAR[0] - 1)
        layers.append((fg, mask))
    # Front: the railing in front of the walkway, the pillar and the door's jamb.
    fg, mask = np.zeros_like(bg), np.zeros((h, w), bool)
    cv2.rectangle(fg, (_PILLAR[1], _RAIL_Y), (_DOOR_X, h), (206, 214, 218), -1)
    cv2.rectangle(fg, (_PILLAR[1], _RAIL_Y), (_DOOR_X, _RAIL_Y + 8), (150, 156, 162), -1)
    for x in range(_PILLAR[1] + 60, _DOOR_X, 80):
        cv2.line(fg, (x, _RAIL_Y + 8), (x, h), (180, 188, 192), 2)
    mask[_RAIL_Y:, _PILLAR[1] : _DOOR_X + 1] = True
    cv2.rectangle(fg, (_PILLAR[0], 56), (_PILLAR[1] - 1, h), (208, 202, 192), -1)
    cv2.line(fg, (_PILLAR[0] + 3, 56), (_PILLAR[0] + 3, h), (226, 222, 214), 2)
    cv2.line(fg, (_PILLAR[1] - 4, 56), (_PILLAR[1] - 4, h), (170, 164, 154), 2)
    mask[56:, _PILLAR[0] : _PILLAR[1]] = True
    cv2.rectangle(fg, (_DOOR_X, 56), (_DOOR_X + 26, h), (96, 100, 108), -1)
    mask[56:, _DOOR_X : _DOOR_X + 27] = True
    layers.append((fg, mask))
    return bg, layers


def _composite(
    frame: np.ndarray, spr: Sprite, at: tuple[int, int], clip_x: tuple[int, int]
) -> None:
    """Blend ``spr`` onto ``frame`` in place, anchor at ``at``, only in columns ``clip_x``."""
    h, w = frame.shape[:2]
    left, top = at[0] - spr.anchor[0], at[1] - spr.anchor[1]
    x0, x1 = max(left, clip_x[0], 0), min(left + spr.width, clip_x[1], w)
    y0, y1 = max(top, 0), min(top + spr.height, h)
    if x0 >= x1 or y0 >= y1:
        return
    a = spr.alpha[y0 - top : y1 - top, x0 - left : x1 - left]
    src = spr.rgb[y0 - top : y1 - top, x0 - left : x1 - left].astype(np.float32)
    dst = frame[y0:y1, x0:x1].astype(np.float32)
    frame[y0:y1, x0:x1] = (dst + (src - dst) * a + 0.5).astype(np.uint8)


def _overlay(frame: np.ndarray, layer: tuple[np.ndarray, np.ndarray]) -> None:
    """Copy a layer onto ``frame`` where its mask is set (within the mask's bounding box)."""
    fg, mask = layer
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    box = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
    np.copyto(frame[box], fg[box], where=mask[box][..., None])


def render_lobby(script: LobbyScript, t: float) -> np.ndarray:
    """Render the lobby at time ``t``.

    Args:
        script: The lobby script.
        t: Seconds; taken modulo ``script.duration_s``. The image depends only on
            ``(script, t)``.

    Returns:
        RGB ``uint8`` image of shape ``(height, width, 3)`` from ``script.size``.
    """
    background, layers = _layers()
    frame = background.copy()
    tm = t % script.duration_s
    for r, row in enumerate(ROWS):
        for i, person in enumerate(script.waiting):
            if person.row != r:
                continue
            x = _seated_x(person, tm)
            if x is None:
                continue
            seat = row.seats[person.seat]
            dx, dy = idle_offset(i, tm, script.duration_s) if x == seat else (0.0, 0.0)
            if x != seat:  # walking: a small gait bob
                dy = -3.0 * abs(math.sin(math.pi * x / 70.0)) - 6.0
            at = (round(x + dx), round(row.chin_y + dy))
            _composite(frame, _look_sprite(person.look, row.scale), at, (0, _PILLAR[0]))
        _overlay(frame, layers[r])
    for walker in script.walkers:
        x = walker_x(walker, tm)
        if x is None:
            continue
        bob = -3.0 * abs(math.sin(math.pi * x / 60.0))
        at = (round(x), round(_WALKER_CHIN_Y + bob))
        _composite(frame, _look_sprite(walker.look, _WALKER_SCALE), at, (_PILLAR[1], _DOOR_X))
    _overlay(frame, layers[-1])
    bank = _noise_bank()
    noise = bank[(round(t * script.fps) + 3) % len(bank)]
    frame = np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    if (frame.shape[1], frame.shape[0]) != tuple(script.size):
        frame = cv2.resize(frame, tuple(script.size), interpolation=cv2.INTER_AREA)
    return frame


def write_lobby_video(path: Path, script: LobbyScript | None = None, gop_s: float = 0.4) -> Path:
    """Render the lobby to an H.264 mp4, unless an up-to-date copy is already there.

    See :func:`hallwatch.demo.scene.write_video` (same encoder, cache and atomic rename).

    Args:
        path: Where the ``.mp4`` goes.
        script: The script; :func:`default_lobby_script` if ``None``.
        gop_s: Keyframe interval (default 0.4 s: every other frame, for an edge that looks
            at keyframes only every 0.4-0.5 s).

    Returns:
        ``path``.
    """
    script = script or default_lobby_script()
    return write_video(
        path,
        lambda t: render_lobby(script, t),
        size=script.size,
        fps=script.fps,
        duration_s=script.duration_s,
        digest=lobby_digest(script),
        gop_s=gop_s,
    )


# --- expectations -------------------------------------------------------------------------


def _loop_times(script: LobbyScript, run_s: float, step_s: float) -> list[float]:
    """Video times from 0 to ``run_s`` every ``step_s`` (looping past the duration)."""
    return [k * step_s for k in range(int(run_s / step_s) + 1)]


def expected_occupancy_peaks(script: LobbyScript, run_s: float) -> dict[str, int]:
    """The most people each zone holds at any moment of a run of ``run_s`` from ``t=0``.

    Counts are the script's (:func:`people_in_zone`), sampled every 0.1 s.

    Args:
        script: The lobby script.
        run_s: Length of the run, seconds of stream time from 0.

    Returns:
        ``{"waiting": n, "entrance": m}``.
    """
    times = _loop_times(script, run_s, 0.1)
    return {zone: max(people_in_zone(script, zone, t) for t in times) for zone in _ZONES}


def expected_crowding(
    script: LobbyScript,
    run_s: float,
    interval_s: float,
    crowding_at: int,
    look_s: float = 0.5,
) -> list[dict[str, object]]:
    """The waiting area's crowding episodes a correct pipeline reports in ``run_s`` from 0.

    The rule, matching the zone counter: each occupancy interval ``[k * interval_s,
    (k + 1) * interval_s)`` looks every ``look_s`` (at ``start + (j + 0.5) * look_s``); its
    ``count`` is the median of the looks' counts (a half rounded up, for an even number),
    and it is crowded when ``count >= crowding_at``. An episode starts with the first
    crowded interval and ends with the first interval after it that is not; only intervals
    that end by ``run_s`` are reported. A real pipeline aligns its intervals differently
    (its own start or the wall clock) and loses a walking person now and then, so compare
    its times with ``tolerance_s`` (``interval_s + 1``): the default script keeps the crowd
    above the threshold for about 25 s, far longer than an interval.

    Args:
        script: The lobby script.
        run_s: Length of the run, seconds of stream time from 0.
        interval_s: The occupancy interval (``environment.occupancy_interval_s``).
        crowding_at: The waiting area's ``crowding_at``.
        look_s: The camera's look interval.

    Returns:
        Dicts ``{"zone": "waiting", "start_s", "opens_s", "end_s", "closes_s", "count",
        "tolerance_s"}``: ``start_s``/``end_s`` are the first crowded interval's start and
        the first uncrowded one's start (``None`` while still crowded at ``run_s``),
        ``opens_s``/``closes_s`` the ends of those intervals (when their facts are due),
        ``count`` the largest interval count of the episode.
    """
    looks = max(1, round(interval_s / look_s))
    episodes: list[dict[str, object]] = []
    current: dict[str, object] | None = None
    k = 0
    while (k + 1) * interval_s <= run_s + 1e-9:
        start = k * interval_s
        counts = [
            people_in_zone(script, "waiting", start + (j + 0.5) * look_s) for j in range(looks)
        ]
        count = math.floor(statistics.median(counts) + 0.5)
        if count >= crowding_at and current is None:
            current = {
                "zone": "waiting",
                "start_s": round(start, 3),
                "opens_s": round(start + interval_s, 3),
                "end_s": None,
                "closes_s": None,
                "count": count,
                "tolerance_s": interval_s + 1.0,
            }
            episodes.append(current)
        elif count >= crowding_at and current is not None:
            current["count"] = max(int(str(current["count"])), count)
        elif current is not None:
            current["end_s"] = round(start, 3)
            current["closes_s"] = round(start + interval_s, 3)
            current = None
        k += 1
    return episodes


def expected_flow(script: LobbyScript, run_s: float) -> dict[str, int]:
    """People crossing the entrance line in a run of ``run_s`` from ``t=0``.

    A walker counts once their centre crosses the line (:func:`line_crossing_s`) by
    ``run_s``; the video loops, so loop ``k`` adds ``k * duration_s``.

    Args:
        script: The lobby script.
        run_s: Length of the run, seconds of stream time from 0.

    Returns:
        ``{"in": n, "out": m}``.
    """
    flow = {"in": 0, "out": 0}
    for loop in range(max(0, math.ceil(run_s / script.duration_s))):
        for walker in script.walkers:
            if loop * script.duration_s + line_crossing_s(walker) <= run_s:
                flow[walker.direction] += 1
    return flow
