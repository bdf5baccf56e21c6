"""The generated demo hall: a scripted service-hall video that needs no footage and no servers.

The hall has one service window per post: a back wall with an LED window number above each
window, a desk with a monitor, an office chair, partitions between windows and a wooden
counter front (drawn by :mod:`hallwatch.demo.hall`). Clerks are real people cut out of
packaged photos (:mod:`hallwatch.demo.people`) seated behind the desk, swaying a little.
On the script's cue a clerk stands, walks off sideways behind the partition (over
:data:`WALK_S` seconds) and leaves an empty chair, and comes back the same way. On a
:class:`~hallwatch.demo.litter.Litter` cue a cup of coffee and a crumpled leaflet are left
on a window's counter (its public area, :func:`public_area_polygon`) and later removed.

The off-post alerts a correct pipeline raises on the video are listed by
:func:`expected_off_post`, whose docstring gives the exact timing rule; the hygiene changes
(环境差 / 环境好) by :func:`expected_hygiene`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from hallwatch.demo.hall import _CHIN_Y as _CHIN_Y
from hallwatch.demo.hall import _COUNTER_BOTTOM as _COUNTER_BOTTOM
from hallwatch.demo.hall import _DESK_Y as _DESK_Y
from hallwatch.demo.hall import _PARTITION_W as _PARTITION_W
from hallwatch.demo.hall import _TOP as _TOP
from hallwatch.demo.hall import CANVAS, HallLayout, draw_hall, hall_layout
from hallwatch.demo.hall import _text as _text
from hallwatch.demo.litter import Litter, place_litter
from hallwatch.demo.litter import public_area_polygon as public_area_polygon
from hallwatch.demo.people import clerk_sprite, ease, idle_offset, paste, walk_offset

#: Bump whenever the rendering changes, so cached videos are re-rendered.
RENDERER_VERSION = "4"
#: Seconds a clerk takes to walk out of (or back into) their post.
WALK_S = 1.5
#: Standard deviation of the luma sensor noise, in grey levels.
NOISE_SIGMA = 1.5
_NOISE_BANK = 8
_CRF = 26


@dataclass(frozen=True)
class DemoPost:
    """One clerk's post: a service window and the seat area watched for them.

    Attributes:
        id: Post id (``"w1"``...).
        window: Window number shown on the sign (``"1"``...).
        name: Display name of the clerk's seat.
        polygon: Seat area in video pixels: head to desk of the seated clerk, with margin.
    """

    id: str
    window: str
    name: str
    polygon: list[tuple[int, int]]


@dataclass(frozen=True)
class Absence:
    """A scripted absence: the clerk starts walking off at ``leave_s``.

    Attributes:
        post: Post id.
        leave_s: Time the clerk stands up and starts walking off.
        return_s: Time the clerk starts walking back, or ``None`` for not within the video.
    """

    post: str
    leave_s: float
    return_s: float | None


@dataclass(frozen=True)
class DemoScript:
    """Everything that defines the demo video.

    Attributes:
        size: ``(width, height)`` in pixels. The hall is drawn at :data:`CANVAS` and resized
            to this; post polygons are in the video's pixels (:func:`default_script` uses
            :data:`CANVAS`).
        fps: Frames per second.
        duration_s: Video length; a looping player repeats it.
        posts: Posts, one per service window, left to right.
        absences: Scripted absences, times within ``[0, duration_s)``.
        litter: Scripted litter on window counters, times within ``[0, duration_s]``.
    """

    size: tuple[int, int]
    fps: int
    duration_s: float
    posts: list[DemoPost]
    absences: list[Absence]
    litter: list[Litter] = field(default_factory=list)


def default_script() -> DemoScript:
    """Return the demo's script: 4 windows, 1280x720 at 5 fps, 120 s, everyone seated at 0/120.

    ``w1`` never leaves; ``w2`` is away 12 s → 50 s (off-post alert); ``w3`` is away 25 s →
    31 s (too short for an alert); ``w4`` is away 70 s → 105 s (second alert). A cup of
    coffee and a leaflet lie on window 1's counter from 8 s to 45 s.
    """
    layout = hall_layout(4)
    names = ["Window 1 clerk", "Window 2 clerk", "Window 3 clerk", "Window 4 clerk"]
    posts = [
        DemoPost(id=f"w{i + 1}", window=str(i + 1), name=names[i], polygon=layout.seat_polygon(i))
        for i in range(4)
    ]
    absences = [
        Absence("w2", 12.0, 50.0),
        Absence("w3", 25.0, 31.0),
        Absence("w4", 70.0, 105.0),
    ]
    litter = [Litter("w1", 8.0, 45.0)]
    return DemoScript(
        size=CANVAS, fps=5, duration_s=120.0, posts=posts, absences=absences, litter=litter
    )


def script_digest(script: DemoScript) -> str:
    """Hash of the script and :data:`RENDERER_VERSION` (the video cache key)."""
    blob = json.dumps({"script": asdict(script), "renderer": RENDERER_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


# --- rendering ----------------------------------------------------------------------------


def away_fraction(script: DemoScript, post: str, t: float) -> float:
    """How far the clerk of ``post`` has walked off at ``t``: 0 seated, 1 gone.

    Args:
        script: The demo script.
        post: Post id.
        t: Seconds; taken modulo the script's duration (the video loops).

    Returns:
        A value in ``[0, 1]``; strictly between while walking.
    """
    t = t % script.duration_s
    out = 0.0
    for a in script.absences:
        if a.post != post or t < a.leave_s:
            continue
        if a.return_s is None or t < a.return_s:
            out = max(out, ease((t - a.leave_s) / WALK_S))
        else:
            out = max(out, 1.0 - ease((t - a.return_s) / WALK_S))
    return out


@lru_cache(maxsize=4)
def _static(
    windows: tuple[str, ...],
) -> tuple[HallLayout, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    layout = hall_layout(len(windows))
    background, fg_rgb, fg_mask = draw_hall(layout, windows)
    composed = np.where(fg_mask[..., None], fg_rgb, background)
    return layout, background, fg_rgb, fg_mask, composed


@lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    rng = np.random.default_rng(20240611)
    w, h = CANVAS
    noise = rng.normal(0.0, NOISE_SIGMA, (_NOISE_BANK, h, w, 1))
    return np.clip(np.round(noise), -10, 10).astype(np.int16)


def render_frame(script: DemoScript, t: float) -> np.ndarray:
    """Render the hall at time ``t``.

    Args:
        script: The demo script.
        t: Seconds; taken modulo ``script.duration_s``. The image depends only on
            ``(script, t)``.

    Returns:
        RGB ``uint8`` image of shape ``(height, width, 3)`` from ``script.size``.
    """
    layout, background, fg_rgb, fg_mask, composed = _static(tuple(p.window for p in script.posts))
    frame = composed.copy()
    tm = t % script.duration_s
    for i, post in enumerate(script.posts):
        away = away_fraction(script, post.id, tm)
        if away >= 1.0:
            continue
        spr = clerk_sprite(i)
        dx, dy = idle_offset(i, tm, script.duration_s)
        seat_x, chin_y = layout.seats[i]
        booth = layout.booths[i]
        if away > 0.0:
            wx, wy = walk_offset(spr, away, seat_x, booth[1])
            dx, dy = dx + wx, dy + wy
        at = (round(seat_x + dx), round(chin_y + dy))
        paste(frame, background, fg_rgb, fg_mask, spr, at, booth)
    windows = {post.id: i for i, post in enumerate(script.posts)}
    for mess in script.litter:
        if mess.present(tm):
            place_litter(frame, layout, windows[mess.window_post])
    noise = _noise_bank()[round(t * script.fps) % _NOISE_BANK]
    frame = np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    if (frame.shape[1], frame.shape[0]) != tuple(script.size):
        frame = cv2.resize(frame, tuple(script.size), interpolation=cv2.INTER_AREA)
    return frame


# --- video --------------------------------------------------------------------------------


def write_video(
    path: Path,
    render: Callable[[float], np.ndarray],
    *,
    size: tuple[int, int],
    fps: int,
    duration_s: float,
    digest: str,
    gop_s: float = 1.0,
) -> Path:
    """Render ``render(t)`` for every frame to an H.264 mp4, unless an up-to-date copy is there.

    The file is re-rendered only when its sidecar ``<path>.json`` does not match ``digest``
    (the caller's hash of what is rendered), ``gop_s`` and the encoder settings. Writing goes
    to a temporary file that is renamed into place, so readers never see a partial video.

    Args:
        path: Where the ``.mp4`` goes (parent folders are created).
        render: Gives the RGB ``uint8`` frame of shape ``(height, width, 3)`` at ``t`` seconds.
        size: ``(width, height)`` of the frames.
        fps: Frames per second.
        duration_s: Video length: ``round(duration_s * fps)`` frames at ``t = i / fps``.
        digest: Identifies the content (the cache key with the encoder settings).
        gop_s: Keyframe interval in seconds (every ``round(gop_s * fps)`` frames).

    Returns:
        ``path``.
    """
    import av

    path = Path(path)
    sidecar = path.with_name(path.name + ".json")
    gop = max(1, round(gop_s * fps))
    key = {"digest": digest, "gop": gop, "crf": _CRF, "codec": "libx264"}
    if path.exists() and sidecar.exists():
        try:
            if json.loads(sidecar.read_text()).get("key") == key:
                return path
        except (OSError, ValueError):
            pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    started = time.perf_counter()
    n_frames = round(duration_s * fps)
    width, height = size
    try:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height = width, height
            stream.pix_fmt = "yuv420p"
            stream.codec_context.gop_size = gop
            stream.options = {
                "crf": str(_CRF),
                "preset": "veryfast",
                "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0",
            }
            for i in range(n_frames):
                frame = av.VideoFrame.from_ndarray(render(i / fps), format="rgb24")
                frame.pts = i
                frame.time_base = Fraction(1, fps)
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    info = {"key": key, "frames": n_frames, "render_s": round(time.perf_counter() - started, 2)}
    sidecar.write_text(json.dumps(info, indent=1))
    return path


def write_demo_video(path: Path, script: DemoScript | None = None, gop_s: float = 1.0) -> Path:
    """Render the hall script to an H.264 mp4, unless an up-to-date copy is already there.

    See :func:`write_video`; the cache key is :func:`script_digest` (the script and
    :data:`RENDERER_VERSION`), ``gop_s`` and the encoder settings.

    Args:
        path: Where the ``.mp4`` goes (parent folders are created).
        script: The script; :func:`default_script` if ``None``.
        gop_s: Keyframe interval in seconds (every ``round(gop_s * fps)`` frames).

    Returns:
        ``path``.
    """
    script = script or default_script()
    return write_video(
        path,
        lambda t: render_frame(script, t),
        size=script.size,
        fps=script.fps,
        duration_s=script.duration_s,
        digest=script_digest(script),
        gop_s=gop_s,
    )


# --- expected alerts ------------------------------------------------------------------------


def expected_off_post(
    script: DemoScript,
    run_s: float,
    grace_s: float,
    off_post_after_s: float,
    tolerance_s: float = WALK_S + 1.0,
) -> list[dict[str, object]]:
    """List the off-post alerts a correct pipeline raises in a run of ``run_s`` from ``t=0``.

    The video loops, so absences repeat every ``duration_s`` (loop ``k`` adds
    ``k * duration_s``). The rule, matching the presence tracker (an absence is dated from
    the last time somebody was seen, declared ``grace_s`` later) and the off-post rule (the
    threshold is counted from the absence's start; the alert's ``start`` is that start)::

        start_s = leave_s + WALK_S                         # clerk fully out of the post
        opens_s = start_s + max(grace_s, off_post_after_s)  # the alert is raised
        alert  iff  return_s > opens_s  and  opens_s <= run_s
        end_s   = return_s + WALK_S                        # seated again; None if > run_s

    An absence with ``return_s=None`` ends at the loop's end (``end_s = duration_s``), where
    the video jumps back to everyone seated.

    A real pipeline loses a walking clerk somewhere in the walk and finds them again
    somewhere in the walk back, so its times are up to ``WALK_S`` earlier than these
    nominal ones, plus its own look interval: compare with ``tolerance_s``. The default
    script keeps every absence far (≥ 10 s) from the alert/no-alert boundary for the
    demo's thresholds (grace ≈ 3 s, off-post ≈ 15 s).

    Args:
        script: The demo script.
        run_s: Length of the run, seconds of stream time from 0.
        grace_s: The presence tracker's absence grace.
        off_post_after_s: The off-post threshold.
        tolerance_s: Copied into each alert: allowed difference of a real pipeline's times.

    Returns:
        Dicts ``{"post", "start_s", "opens_s", "end_s", "tolerance_s"}`` sorted by
        ``start_s``; ``end_s`` is ``None`` for an alert still open at ``run_s``.
    """
    d = script.duration_s
    found: list[tuple[float, str, float, float | None]] = []
    for loop in range(max(0, math.ceil(run_s / d))):
        base = loop * d
        for a in script.absences:
            start = base + a.leave_s + WALK_S
            opens = start + max(grace_s, off_post_after_s)
            if a.return_s is None:
                back = end = base + d
            else:
                back, end = base + a.return_s, base + a.return_s + WALK_S
            if back > opens and opens <= run_s:
                found.append((start, a.post, opens, end if end <= run_s else None))
    return [
        {
            "post": post,
            "start_s": round(start, 3),
            "opens_s": round(opens, 3),
            "end_s": None if end is None else round(end, 3),
            "tolerance_s": tolerance_s,
        }
        for start, post, opens, end in sorted(found)
    ]


def expected_hygiene(
    script: DemoScript,
    run_s: float,
    bad_after_s: float,
    good_after_s: float,
    look_s: float,
    tolerance_s: float | None = None,
) -> list[dict[str, object]]:
    """List the hygiene changes (环境差, then 环境好) a correct pipeline reports in ``run_s``.

    Each :class:`~hallwatch.demo.litter.Litter` cue dirties its window's public area
    (zone ``"<post>-public"``, :func:`public_area_polygon`) from ``placed_s`` to
    ``removed_s``; the video loops, so loop ``k`` adds ``k * duration_s``. The rule, matching
    the hygiene watcher (a difference must persist ``bad_after_s`` before 环境差, and be gone
    ``good_after_s`` before 环境好; the watcher sees it at its first look, up to ``look_s``
    late)::

        bad_s  = placed_s + bad_after_s        # 环境差 reported (up to one look later)
        good_s = removed_s + good_after_s      # 环境好 again; None if after run_s
        reported  iff  removed_s > placed_s + bad_after_s  and  bad_s <= run_s

    Args:
        script: The demo script.
        run_s: Length of the run, seconds of stream time from 0.
        bad_after_s: The zone's ``hygiene_bad_after_s``.
        good_after_s: The zone's ``hygiene_good_after_s``.
        look_s: The camera's look interval.
        tolerance_s: Allowed difference of a real pipeline's times; by default two looks
            plus a second (one look to see the litter, one to see it gone, and the lag of
            the stream).

    Returns:
        Dicts ``{"zone", "post", "window", "since_s", "bad_s", "good_s", "tolerance_s"}``
        sorted by ``bad_s``; ``since_s`` is when the litter appeared (the 环境差 fact's
        ``since``), ``good_s`` is ``None`` while still 环境差 at ``run_s``.
    """
    tolerance = 2.0 * look_s + 1.0 if tolerance_s is None else tolerance_s
    windows = {post.id: post.window for post in script.posts}
    d = script.duration_s
    found: list[tuple[float, str, float, float | None]] = []
    for loop in range(max(0, math.ceil(run_s / d))):
        base = loop * d
        for mess in script.litter:
            placed, removed = base + mess.placed_s, base + mess.removed_s
            bad = placed + bad_after_s
            if removed <= bad or bad > run_s:
                continue
            good = removed + good_after_s
            found.append((bad, mess.window_post, placed, good if good <= run_s else None))
    return [
        {
            "zone": f"{post}-public",
            "post": post,
            "window": windows[post],
            "since_s": round(placed, 3),
            "bad_s": round(bad, 3),
            "good_s": None if good is None else round(good, 3),
            "tolerance_s": tolerance,
        }
        for bad, post, placed, good in sorted(found)
    ]
