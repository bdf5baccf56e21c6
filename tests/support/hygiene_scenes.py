"""Generated scenes of a window's public area for the hygiene tests, and a tiny ONNX model.

The scene is one camera's view of window 1: a pale wall, the counter (generated wood grain),
and in front of it the public area, a floor of terrazzo tiles (scikit-image's ``gravel.png``,
tinted) that the zone :data:`ZONE_POLYGON` covers. Things that can appear in it:

- ``cup``: a coffee cup on its saucer, cut out of scikit-image's ``coffee.png`` with an
  ellipse;
- ``paper``: a crumpled leaflet made from scikit-image's ``page.png`` (creased, shaded, with a
  ragged outline);
- ``person``: an applicant standing in the zone, cut out of matplotlib's ``grace_hopper.jpg``
  by :func:`hallwatch.demo.people.sprite`; ``passer_by``: the same beside the zone, her
  shoulder over its right edge;
- lighting: ``dim`` (x0.75), ``bright`` (x1.25) and ``cast`` (a warm colour cast) over the
  whole picture.

A :class:`HygieneScript` says what is there when; :func:`frames` renders it, one frame per
``step_s``, with sensor noise (a dozen fields of it, in turn).

:func:`tiny_dirtiness_model` writes a valid ONNX file without the ``onnx`` package (only
``onnxruntime`` is installed): the protobuf is encoded by hand, four nodes.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import skimage.data

from edge.sources.frame import Frame
from hallwatch.demo.people import sprite

#: Frame size ``(width, height)``.
SIZE = (640, 400)
#: The public area in front of window 1 (floor in front of the counter), frame pixels.
ZONE_POLYGON: list[tuple[float, float]] = [(160, 195), (470, 195), (495, 392), (135, 392)]
CAMERA = "hall-cam"
T0 = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)

#: Where each item lies (centre, frame pixels) and its width.
ITEMS: dict[str, tuple[tuple[int, int], int]] = {
    "cup": ((250, 300), 96),
    "paper": ((390, 250), 92),
}
#: Chin positions of an applicant standing in the zone (``person``) and of one standing
#: beside it, overlapping its right edge (``passer_by``).
PEOPLE_AT: dict[str, tuple[int, int]] = {"person": (318, 205), "passer_by": (560, 205)}
LIGHTS: dict[str, tuple[float, float, float]] = {
    "dim": (0.75, 0.75, 0.75),
    "bright": (1.25, 1.25, 1.25),
    "cast": (1.12, 1.0, 0.86),
}
NOISE_SIGMA = 2.5
_NOISE_FIELDS = 12


@dataclass(frozen=True)
class Cue:
    """``what`` is in the scene from ``start_s`` (inclusive) to ``end_s`` (exclusive)."""

    what: str
    start_s: float
    end_s: float = math.inf

    def on(self, t: float) -> bool:
        return self.start_s <= t < self.end_s


@dataclass(frozen=True)
class HygieneScript:
    """What is in the zone when; see the module docstring for the names."""

    duration_s: float
    cues: tuple[Cue, ...] = field(default=())
    step_s: float = 1.0

    def at(self, t: float) -> set[str]:
        return {c.what for c in self.cues if c.on(t)}


@dataclass(frozen=True)
class Cutout:
    """An RGB cut-out with a float matte ``(h, w, 1)``."""

    rgb: np.ndarray
    alpha: np.ndarray


def _wood(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Wood grain: stretched noise bent by slow waves, in warm browns."""
    noise = rng.normal(0, 1, (h, max(1, w // 24)))
    grain = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    rings = np.sin((ys + 6 * np.sin(xs / 37.0)) / 2.7) * 0.5
    v = np.clip(0.55 + 0.12 * grain + 0.08 * rings, 0, 1)[..., None]
    dark, light = np.array([96, 60, 34], np.float32), np.array([178, 124, 78], np.float32)
    return (dark + (light - dark) * v).astype(np.uint8)


def _terrazzo(h: int, w: int) -> np.ndarray:
    """Tiles of scikit-image's gravel, tinted beige, 80 px with grey grout."""
    gravel = skimage.data.gravel().astype(np.float32)
    grey = gravel if gravel.ndim == 2 else gravel.mean(axis=2)
    tile = cv2.resize(grey, (80, 80), interpolation=cv2.INTER_AREA)
    tile = 0.55 + 0.45 * (tile - tile.min()) / max(1.0, float(np.ptp(tile)))
    reps = np.tile(tile, (h // 80 + 1, w // 80 + 1))[:h, :w]
    base = np.array([186, 170, 146], np.float32) * reps[..., None]
    base[::80] = base[1::80] = (120, 118, 112)
    base[:, ::80] = base[:, 1::80] = (120, 118, 112)
    return np.clip(base * 0.82, 0, 255).astype(np.uint8)


@cache
def background() -> np.ndarray:
    """The empty, evenly lit scene (no noise)."""
    w, h = SIZE
    rng = np.random.default_rng(11)
    img = np.zeros((h, w, 3), np.uint8)
    wall = np.linspace(215, 190, 120, dtype=np.float32)[:, None, None]
    img[:120] = (wall * np.array([1.0, 0.97, 0.9], np.float32)).astype(np.uint8)
    img[120:180] = _wood(60, w, rng)  # the counter front
    img[112:122] = (70, 48, 30)  # its top edge
    img[180:] = _terrazzo(h - 180, w)
    cv2.putText(img, "1", (300, 100), cv2.FONT_HERSHEY_SIMPLEX, 2.2, (180, 30, 30), 5)
    img.setflags(write=False)
    return img


def _scaled(rgb: np.ndarray, mask: np.ndarray, width: int) -> Cutout:
    height = max(1, round(rgb.shape[0] * width / rgb.shape[1]))
    small = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    matte = cv2.resize(mask.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
    matte = cv2.GaussianBlur(matte, (0, 0), 0.7)
    return Cutout(small, np.clip(matte, 0, 1)[..., None].astype(np.float32))


@cache
def cup(width: int) -> Cutout:
    """The coffee cup on its saucer from ``skimage.data.coffee()``."""
    img = skimage.data.coffee()[40:400, 70:490]
    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.ellipse(mask, (208, 186), (200, 158), 0, 0, 360, 1, -1)
    return _scaled(img, mask, width)


@cache
def paper(width: int) -> Cutout:
    """A crumpled leaflet: ``skimage.data.page()`` brightened, creased and with a ragged edge."""
    page = skimage.data.page().astype(np.float32)[10:170, 20:240]
    h, w = page.shape
    sheet = 150 + 100 * (page - page.min()) / max(1.0, float(np.ptp(page)))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    creases = 1.0 - 0.18 * np.abs(np.sin(xs / 23.0 + ys / 41.0)) - 0.12 * (np.sin(ys / 17.0) > 0.6)
    rgb = np.clip(sheet[..., None] * creases[..., None] * np.array([1.0, 0.99, 0.95]), 0, 255)
    rng = np.random.default_rng(5)
    angles = np.linspace(0, 2 * np.pi, 14, endpoint=False)
    radii = 1.0 - 0.25 * rng.random(14)
    outline = np.stack(
        [w / 2 + np.cos(angles) * radii * w / 2, h / 2 + np.sin(angles) * radii * h / 2], 1
    )
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [outline.round().astype(np.int32)], 1)
    return _scaled(rgb.astype(np.uint8), mask, width)


def _place(img: np.ndarray, item: Cutout, centre: tuple[int, int]) -> None:
    """Alpha-blend ``item`` centred on ``centre``, with a soft shadow below-right."""
    h, w = item.rgb.shape[:2]
    x0, y0 = centre[0] - w // 2, centre[1] - h // 2
    region = img[y0 : y0 + h, x0 : x0 + w].astype(np.float32)
    shadow = cv2.GaussianBlur(item.alpha[..., 0], (0, 0), 3.0)
    shadow = np.roll(shadow, (3, 4), axis=(0, 1))[..., None]
    region *= 1.0 - 0.35 * shadow
    out = region + (item.rgb.astype(np.float32) - region) * item.alpha
    img[y0 : y0 + h, x0 : x0 + w] = np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _paste_person(img: np.ndarray, at: tuple[int, int]) -> None:
    spr = sprite("grace_hopper")
    h, w = img.shape[:2]
    left, top = at[0] - spr.anchor[0], at[1] - spr.anchor[1]
    x0, x1 = max(left, 0), min(left + spr.width, w)
    y0, y1 = max(top, 0), min(top + spr.height, h)
    a = spr.alpha[y0 - top : y1 - top, x0 - left : x1 - left]
    src = spr.rgb[y0 - top : y1 - top, x0 - left : x1 - left].astype(np.float32)
    bg = img[y0:y1, x0:x1].astype(np.float32)
    img[y0:y1, x0:x1] = (bg + (src - bg) * a + 0.5).astype(np.uint8)


def render(things: set[str], *, noise_seed: int | None = None) -> np.ndarray:
    """Render the scene with ``things`` (item, people and light names) in it.

    Args:
        things: Names from :data:`ITEMS`, :data:`PEOPLE_AT` and :data:`LIGHTS`.
        noise_seed: Picks this frame's sensor noise; ``None`` for a noiseless image.

    Returns:
        RGB ``uint8`` image of :data:`SIZE`.
    """
    out = _composite(frozenset(things))
    if noise_seed is not None:
        out = out + _noise_bank()[noise_seed % _NOISE_FIELDS]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


@cache
def _composite(things: frozenset[str]) -> np.ndarray:
    """The noiseless scene with ``things``, ``float32`` (cached: scripts repeat them)."""
    img = background().copy()
    for name, (centre, width) in ITEMS.items():
        if name in things:
            _place(img, cup(width) if name == "cup" else paper(width), centre)
    for name, at in PEOPLE_AT.items():
        if name in things:
            _paste_person(img, at)
    out = img.astype(np.float32)
    for name, gains in LIGHTS.items():
        if name in things:
            out *= np.array(gains, np.float32)
    out.setflags(write=False)
    return out


@cache
def _noise_bank() -> np.ndarray:
    """A few fields of sensor noise, reused by frame (rendering stays cheap)."""
    w, h = SIZE
    rng = np.random.default_rng(2026)
    return rng.normal(0, NOISE_SIGMA, (_NOISE_FIELDS, h, w, 3)).astype(np.float32)


def frame_at(image: np.ndarray, pts: float) -> Frame:
    """A frame of :data:`CAMERA` at ``pts``."""
    return Frame(CAMERA, image, pts, T0 + timedelta(seconds=pts))


def frames(script: HygieneScript, *, start_s: float = 0.0) -> Iterator[Frame]:
    """Render ``script`` from ``start_s``, one frame every ``script.step_s`` seconds."""
    n = round((script.duration_s - start_s) / script.step_s)
    for k in range(n):
        t = start_s + k * script.step_s
        yield frame_at(render(script.at(t), noise_seed=k), t)


# --- a tiny ONNX "hygiene classifier", written without the onnx package ----------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes | str | int) -> bytes:
    """One protobuf field: an int as a varint, bytes/str length-delimited."""
    if isinstance(payload, int):
        return _varint(number << 3) + _varint(payload)
    data = payload.encode() if isinstance(payload, str) else payload
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _float_tensor(name: str, values: np.ndarray) -> bytes:
    dims = b"".join(_field(1, int(d)) for d in values.shape)
    raw = struct.pack(f"<{values.size}f", *values.astype(np.float32).ravel())
    return dims + _field(2, 1) + _field(8, name) + _field(9, raw)  # data_type 1 = FLOAT


def _value_info(name: str, dims: list[int | str]) -> bytes:
    shape = b"".join(_field(1, _field(1, d) if isinstance(d, int) else _field(2, d)) for d in dims)
    tensor_type = _field(1, 1) + _field(2, shape)  # elem_type 1 = FLOAT
    return _field(1, name) + _field(2, _field(1, tensor_type))


def _node(op: str, inputs: list[str], outputs: list[str]) -> bytes:
    ins = b"".join(_field(1, i) for i in inputs)
    outs = b"".join(_field(2, o) for o in outputs)
    return ins + outs + _field(3, op.lower()) + _field(4, op)


def tiny_dirtiness_model(
    path: Path, *, two_class: bool = False, input_hw: tuple[int, int] | None = None
) -> Path:
    """Write an ONNX model that calls a dark image dirty: ``sigmoid(6 - 12 * mean level)``.

    Graph: ``image`` (1x3xHxW float32 in [0, 1]) → GlobalAveragePool → Flatten → Gemm. With
    one class a Sigmoid gives ``dirty`` (1x1 probability); with ``two_class`` the Gemm's
    1x2 logits ``[clean, dirty]`` are the output (``dirty - clean`` is the same expression).

    Args:
        path: Where to write the ``.onnx`` file.
        two_class: Output 2-class logits instead of one probability.
        input_hw: Fixed input height and width; ``None`` for symbolic ``H``/``W``.

    Returns:
        ``path``.
    """
    if two_class:
        weights = np.array([[2.0, -2.0]] * 3, np.float32)
        bias = np.array([-3.0, 3.0], np.float32)
    else:
        weights = np.full((3, 1), -4.0, np.float32)
        bias = np.array([6.0], np.float32)
    nodes = [
        _node("GlobalAveragePool", ["image"], ["pooled"]),
        _node("Flatten", ["pooled"], ["flat"]),
        _node("Gemm", ["flat", "w", "b"], ["logits" if two_class else "z"]),
    ]
    if not two_class:
        nodes.append(_node("Sigmoid", ["z"], ["dirty"]))
    hw: list[int | str] = list(input_hw) if input_hw else ["H", "W"]
    k = 2 if two_class else 1
    graph = (
        b"".join(_field(1, n) for n in nodes)
        + _field(2, "tiny_hygiene")
        + _field(5, _float_tensor("w", weights))
        + _field(5, _float_tensor("b", bias))
        + _field(11, _value_info("image", [1, 3, *hw]))
        + _field(12, _value_info("logits" if two_class else "dirty", [1, k]))
    )
    opset = _field(1, "") + _field(2, 13)
    model = _field(1, 7) + _field(2, "hallwatch-tests") + _field(7, graph) + _field(8, opset)
    path.write_bytes(model)
    return path
