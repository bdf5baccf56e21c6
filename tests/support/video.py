"""Synthetic H.264 test clips written with PyAV, so tests need no external footage."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def _background(width: int, height: int) -> np.ndarray:
    """A smooth, static, textured background (like a hall: mostly still, some detail)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 110 + 60 * np.sin(xx / 37.0) * np.cos(yy / 53.0)
    g = 120 + 50 * np.sin((xx + yy) / 71.0)
    b = 100 + 40 * np.cos(xx / 19.0 + yy / 29.0)
    return np.clip(np.stack([r, g, b], axis=-1), 0, 255).astype(np.uint8)


def _draw(bg: np.ndarray, index: int, fps: int) -> np.ndarray:
    """Background plus a few moving blocks and a frame-counter bar."""
    img = bg.copy()
    h, w = img.shape[:2]
    t = index / fps
    bw, bh = max(8, w // 10), max(16, h // 4)
    for k, color in enumerate(((230, 40, 40), (40, 200, 60), (50, 80, 230))):
        speed = (0.15 + 0.1 * k) * w
        x = int((t * speed + k * w / 3) % (w - bw))
        y = int((h - bh) * (0.5 + 0.4 * np.sin(t * (0.7 + 0.3 * k) + k)))
        img[y : y + bh, x : x + bw] = color
    # binary frame counter along the top edge: changes every frame, easy to eyeball
    cell = max(4, w // 64)
    for bit in range(16):
        on = (index >> bit) & 1
        img[0:cell, bit * cell : (bit + 1) * cell] = 255 if on else 0
    return img


def make_test_video(
    path: str | Path,
    seconds: float,
    size: tuple[int, int] = (640, 360),
    fps: int = 25,
    gop: int = 25,
    *,
    bframes: int = 0,
) -> Path:
    """Write a small H.264 MP4 with synthetic moving content.

    Args:
        path: Output file (``.mp4``); parent directories are created.
        seconds: Clip length in seconds.
        size: ``(width, height)``, both even.
        fps: Frame rate (integer).
        gop: Key-frame interval in frames (fixed GOP, no scene-cut key frames).
        bframes: Number of consecutive B-frames (0 keeps decode order == display order).

    Returns:
        The path written.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    n_frames = max(1, round(seconds * fps))
    bg = _background(width, height)
    with av.open(str(out), mode="w") as container:
        stream = container.add_stream(
            "libx264",
            rate=fps,
            options={
                "preset": "ultrafast",
                "crf": "28",
                "g": str(gop),
                "keyint_min": str(gop),
                "sc_threshold": "0",
                "bf": str(bframes),
                "x264-params": f"scenecut=0:open_gop=0:keyint={gop}:min-keyint={gop}",
            },
        )
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        stream.codec_context.time_base = Fraction(1, fps)
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(_draw(bg, i, fps), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out
