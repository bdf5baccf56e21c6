"""Motion gate: infer on change, skip when the crop is unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from edge.regions.motion_gate import MotionGate

RNG = np.random.default_rng(7)


def _scene() -> np.ndarray:
    """A counter-like scene: a wall gradient, a desk, a monitor."""
    img = np.zeros((180, 120, 3), np.uint8)
    img[:] = np.linspace(90, 170, 120, dtype=np.uint8)[None, :, None]
    img[120:] = (120, 90, 60)
    img[60:110, 20:70] = (30, 30, 40)
    return img


BASE = _scene()


def _noisy(img: np.ndarray, sigma: float) -> np.ndarray:
    noise = RNG.normal(0, sigma, img.shape)
    return np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def _with_block(img: np.ndarray, frac: float) -> np.ndarray:
    """Paint a dark object covering ``frac`` of the crop."""
    out = img.copy()
    side = int(np.sqrt(frac * img.shape[0] * img.shape[1]))
    out[10 : 10 + side, 75 : 75 + side] = (20, 20, 20)
    return out


CASES = [
    ("identical", BASE, False),
    ("sensor noise", _noisy(BASE, 4), False),
    ("global light change", np.clip(BASE.astype(np.int16) + 35, 0, 255).astype(np.uint8), False),
    ("small change (0.5 %)", _with_block(BASE, 0.005), False),
    ("a person-sized change", _with_block(BASE, 0.3), True),
    ("a sleeve moving (3 %)", _with_block(BASE, 0.03), True),
]


@pytest.mark.parametrize(("case", "second", "infer"), CASES, ids=[c[0] for c in CASES])
def test_gate_decision(case: str, second: np.ndarray, infer: bool) -> None:
    gate = MotionGate(threshold=0.01, pixel_delta=25)
    first = gate.look(BASE)
    assert first.infer
    gate.inferred(first)
    assert gate.look(second).infer is infer


def test_reference_is_the_last_inferred_crop_not_the_last_look() -> None:
    """Slow drift accumulates against the last inference and eventually triggers one."""
    gate = MotionGate(threshold=0.01, pixel_delta=25)
    gate.inferred(gate.look(BASE))
    decisions = [gate.look(_with_block(BASE, 0.003 * step)).infer for step in range(1, 8)]
    assert decisions[0] is False and decisions[-1] is True


def test_reset_forces_inference() -> None:
    gate = MotionGate(threshold=0.01, pixel_delta=25)
    gate.inferred(gate.look(BASE))
    gate.reset()
    assert gate.look(BASE).infer
