"""Generated service-window scenes with real faces where we know them, for evidence tests.

A camera looks at one service window (窗口) from the public side: a clerk sits behind the
counter, inside the post polygon (their seat), and members of the public stand in the public
area in front of the camera. Everybody is a real person cut out of a packaged photo
(:func:`hallwatch.demo.people.sprite`: astronaut, camera, grace_hopper), so their faces are
real faces, and the scene knows each face's box: the photos' faces were measured once in
sprite pixels relative to the sprite's anchor (chin), see :data:`FACE_IN_SPRITE`.

Everything else (wall, window sign, posters, floor tiles, counter) is drawn with OpenCV from a
seed; nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Literal

import cv2
import numpy as np

from edge.sources.frame import Frame
from hallwatch.demo.people import Sprite, paste, sprite

#: Configured-image size of the window camera.
SCENE_SIZE = (1280, 720)
#: The clerk's post polygon (the seat behind the counter), configured-image pixels.
CLERK_POLYGON: tuple[tuple[float, float], ...] = ((490, 150), (790, 150), (790, 420), (490, 420))
CAMERA_ID = "win-cam"
_COUNTER_Y = 400  # counter top: the clerk is hidden below it
_RAIL_Y = 580  # top of the barrier in front of the public: their lower body is hidden

#: Face box of each photo's sprite (scale 1, not mirrored): ``(x1, y1, x2, y2)`` relative to
#: the anchor (chin point), from eyebrows to chin and ear to ear, measured on the sprites.
FACE_IN_SPRITE: dict[str, tuple[int, int, int, int]] = {
    "astronaut": (-15, -64, 39, 0),
    "camera": (-15, -63, 57, 5),  # in profile behind his camera: the cascade misses him
    "grace_hopper": (-36, -80, 44, 2),
}

Role = Literal["public", "clerk"]


@dataclass(frozen=True)
class Person:
    """Where to put one person: who, where their chin goes, how big.

    Attributes:
        photo: ``astronaut``, ``camera`` or ``grace_hopper``.
        role: ``public`` (blurred always) or ``clerk`` (sits inside :data:`CLERK_POLYGON`).
        chin: Configured-image ``(x, y)`` of the anchor.
        scale: Sprite scale (1.0: faces about 55-80 px wide).
        flip: Mirrored.
    """

    photo: str
    role: Role
    chin: tuple[int, int]
    scale: float
    flip: bool = False


@dataclass(frozen=True)
class PlacedFace:
    """A face in the rendered scene.

    Attributes:
        photo: The photo it comes from.
        role: ``public`` or ``clerk``.
        box: ``(x1, y1, x2, y2)`` in configured-image pixels.
    """

    photo: str
    role: Role
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class EvidenceScene:
    """A rendered window scene.

    Attributes:
        name: Short id for test tables.
        image: RGB ``uint8`` at :data:`SCENE_SIZE` (the configured image).
        faces: Every face in it, with its role.
        region: The snapshot region an alert would ask for, configured-image pixels.
    """

    name: str
    image: np.ndarray
    faces: tuple[PlacedFace, ...]
    region: tuple[float, float, float, float]

    def frame(self, scale: float = 1.0) -> Frame:
        """The scene as a camera frame, resized by ``scale`` (a sub-stream)."""
        image = self.image
        if scale != 1.0:
            size = (round(SCENE_SIZE[0] * scale), round(SCENE_SIZE[1] * scale))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        return Frame(CAMERA_ID, image, 12.0, datetime(2026, 11, 2, 2, 30, tzinfo=UTC))

    @property
    def public_faces(self) -> tuple[PlacedFace, ...]:
        return tuple(f for f in self.faces if f.role == "public")

    @property
    def clerk_faces(self) -> tuple[PlacedFace, ...]:
        return tuple(f for f in self.faces if f.role == "clerk")


def scaled(photo: str, scale: float, flip: bool) -> Sprite:
    """The sprite of ``photo`` resized by ``scale`` (mirrored if ``flip``)."""
    base = sprite(photo, flip)
    size = (max(round(base.width * scale), 1), max(round(base.height * scale), 1))
    rgb = cv2.resize(np.ascontiguousarray(base.rgb), size, interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(np.ascontiguousarray(base.alpha[..., 0]), size, interpolation=cv2.INTER_AREA)
    anchor = (round(base.anchor[0] * scale), round(base.anchor[1] * scale))
    return Sprite(rgb=rgb, alpha=alpha[..., None].astype(np.float32), anchor=anchor)


def face_box(person: Person) -> tuple[int, int, int, int]:
    """The face of ``person`` in configured-image pixels."""
    x1, y1, x2, y2 = FACE_IN_SPRITE[person.photo]
    if person.flip:
        x1, x2 = -x2, -x1
    cx, cy = person.chin
    s = person.scale
    return (round(cx + x1 * s), round(cy + y1 * s), round(cx + x2 * s), round(cy + y2 * s))


@cache
def _background(seed: int) -> np.ndarray:
    """The empty window: wall, sign, posters, the clerk's booth, floor, no counter yet."""
    rng = np.random.default_rng(seed)
    w, h = SCENE_SIZE
    img = np.empty((h, w, 3), np.float32)
    img[:430] = (224, 218, 204)
    img[:430] += np.linspace(-12, 8, 430, dtype=np.float32)[:, None, None]
    img[430:] = (186, 184, 178)
    img[430:] += np.linspace(-8, 16, h - 430, dtype=np.float32)[:, None, None]
    out = np.clip(img, 0, 255).astype(np.uint8)
    # The booth behind the window: back panel, monitor, the window number sign above.
    cv2.rectangle(out, (470, 130), (810, _COUNTER_Y), (150, 164, 176), -1)
    cv2.rectangle(out, (470, 130), (810, _COUNTER_Y), (90, 100, 110), 6)
    cv2.rectangle(out, (560, 40), (720, 110), (30, 30, 36), -1)
    cv2.putText(out, "1", (618, 98), cv2.FONT_HERSHEY_DUPLEX, 2.0, (255, 60, 40), 4, cv2.LINE_AA)
    cv2.rectangle(out, (730, 300), (800, 360), (40, 42, 48), -1)
    # Posters with readable text-like detail on both sides of the booth.
    for x0 in (60, 880):
        cv2.rectangle(out, (x0, 60), (x0 + 340, 300), (246, 244, 236), -1)
        cv2.rectangle(out, (x0, 60), (x0 + 340, 300), (120, 60, 50), 3)
        for k in range(9):
            y = 92 + 24 * k
            words = rng.integers(3, 7)
            x = x0 + 16
            for _ in range(words):
                wlen = int(rng.integers(20, 60))
                if x + wlen > x0 + 324:
                    break
                cv2.putText(out, "ab" * (wlen // 18 + 1), (x, y), 0, 0.45, (40, 40, 40), 1)
                x += wlen + 14
    # Floor tiles.
    for x in range(-40, w + 40, 120):
        cv2.line(out, (x, 430), (x - 60, h), (160, 158, 150), 2, cv2.LINE_AA)
    for y in (470, 530, 610, 710):
        cv2.line(out, (0, y), (w, y), (160, 158, 150), 2, cv2.LINE_AA)
    return out


def _draw_counter(img: np.ndarray) -> None:
    cv2.rectangle(img, (440, _COUNTER_Y), (840, 560), (120, 84, 52), -1)
    cv2.rectangle(img, (440, _COUNTER_Y), (840, _COUNTER_Y + 14), (200, 190, 170), -1)
    for x in range(470, 840, 60):
        cv2.line(img, (x, _COUNTER_Y + 24), (x, 550), (96, 66, 40), 2)


def _draw_rail(img: np.ndarray) -> None:
    """The waist-high barrier the public queue behind, hiding their lower body."""
    w = img.shape[1]
    cv2.rectangle(img, (0, _RAIL_Y), (w, img.shape[0]), (132, 140, 156), -1)
    cv2.rectangle(img, (0, _RAIL_Y), (w, _RAIL_Y + 12), (180, 150, 110), -1)
    for x in range(100, w, 200):
        cv2.line(img, (x, _RAIL_Y + 12), (x, img.shape[0]), (110, 116, 130), 3)


def _composite(img: np.ndarray, person: Person) -> None:
    spr = scaled(person.photo, person.scale, person.flip)
    no_front = np.zeros(img.shape[:2], bool)
    paste(img, img, img, no_front, spr, person.chin, (0, img.shape[1]))


def render(
    name: str,
    people: tuple[Person, ...],
    region: tuple[float, float, float, float],
    *,
    seed: int = 0,
) -> EvidenceScene:
    """Render a window scene: the clerk, the counter, the public, the barrier in front.

    Args:
        name: Id for test tables.
        people: Who is where.
        region: The snapshot region, configured-image pixels.
        seed: Poster text and sensor noise.

    Returns:
        The scene.

    Example:
        >>> s = render("x", (Person("astronaut", "public", (300, 450), 1.0),), (0, 0, 640, 720))
        >>> s.image.shape, s.faces[0].box
        ((720, 1280, 3), (285, 386, 339, 450))
    """
    img = _background(seed).copy()
    for p in people:
        if p.role == "clerk":
            _composite(img, p)
    _draw_counter(img)
    for p in people:
        if p.role == "public":
            _composite(img, p)
    _draw_rail(img)
    rng = np.random.default_rng(seed + 1)
    noisy = img.astype(np.float32) + rng.normal(0.0, 2.0, (*img.shape[:2], 1))
    image = np.clip(noisy + 0.5, 0, 255).astype(np.uint8)
    faces = tuple(PlacedFace(p.photo, p.role, face_box(p)) for p in people)
    return EvidenceScene(name=name, image=image, faces=faces, region=region)


_CLERK = Person("grace_hopper", "clerk", (640, 320), 0.9, flip=True)


def scenes() -> list[EvidenceScene]:
    """The table of scenes the evidence tests run over."""
    return [
        render(
            "two-public-and-clerk",
            (
                _CLERK,
                Person("astronaut", "public", (250, 450), 1.2),
                Person("grace_hopper", "public", (1040, 470), 1.2),
            ),
            (120, 60, 1180, 720),
        ),
        render(
            "profile-and-small",
            (
                _CLERK,
                Person("camera", "public", (250, 420), 1.0),
                Person("astronaut", "public", (960, 420), 0.7, flip=True),
                Person("grace_hopper", "public", (1150, 440), 0.75),
            ),
            (60, 40, 1240, 720),
            seed=1,
        ),
        render(
            "close-up-left",
            (_CLERK, Person("astronaut", "public", (330, 470), 1.4, flip=True)),
            (100, 100, 820, 720),
            seed=2,
        ),
    ]


def child_at_the_counter() -> EvidenceScene:
    """The clerk and a child of the public at the counter, in front of the clerk's body.

    The child's face (about 45 px, the cascade finds it) lies inside the clerk's person box,
    below the clerk's head: a member of the public standing in front of a clerk, whom the
    detector may not single out (small, cut by the counter). The region is the window alone,
    so the snapshot is not scaled down at full frame size.
    """
    return render(
        "child-at-the-counter",
        (_CLERK, Person("astronaut", "public", (705, 400), 0.8, flip=True)),
        (470, 130, 810, 560),
        seed=3,
    )
