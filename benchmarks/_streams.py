"""Benchmark helpers: the demo hall as a 720p25 camera video, served as K live RTSP streams.

The video is the generated demo hall (:mod:`hallwatch.demo.scene`) rendered at 1280×720,
25 fps, one key frame every 2 s (GOP 50, no B-frames, CRF 26, x264 ``veryfast``), 120 s
long. It is cached (``write_demo_video`` re-renders only when the script or the renderer
changed); the first render takes about two minutes on a 2-core box.

That render is far cheaper to decode than a camera: the scene is still, CRF 26 smooths the
sensor noise away, and P-frames are ~100 bytes (0.14 Mbit/s). :func:`camera_video` therefore
re-encodes it the way an IP camera's main stream looks: temporal sensor grain
(``noise=alls=6:allf=t``), constant 2 Mbit/s, H.264 Main (CABAC), GOP 50, no B-frames
(key frames ~100 KB, P-frames ~8 KB). Cached too; about 45 s the first time.

The RTSP server is ``tests/support/rtsp_server.py`` run by Debian's Python + GStreamer: it
passes the file's H.264 through without re-encoding, loops it and paces it in real time,
one mount (``/cam1`` … ``/camK``) per camera. It runs in its own process, so its CPU time
is never counted by the edge-side measurement.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hallwatch.demo.scene import DemoScript, default_script, write_demo_video  # noqa: E402
from tests.support.rtsp import RtspServer, gst_rtsp_available  # noqa: E402

FPS = 25
GOP_S = 2.0
CACHE_ENV = "HALLWATCH_BENCH_CACHE"


def bench_script() -> DemoScript:
    """The demo hall at 1280×720 and 25 fps (the default script is 5 fps)."""
    return replace(default_script(), fps=FPS)


def default_cache_dir() -> Path:
    """``$HALLWATCH_BENCH_CACHE`` or ``<tmp>/hallwatch-bench``."""
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env) if env else Path(tempfile.gettempdir()) / "hallwatch-bench"


def demo_video(cache_dir: Path | None = None) -> tuple[Path, DemoScript, float]:
    """Render (or reuse) the 720p25 GOP-2 s demo-hall video.

    Returns:
        ``(path, script, seconds spent rendering)``; 0 s when the cached copy was reused.
    """
    script = bench_script()
    folder = cache_dir or default_cache_dir()
    started = time.perf_counter()
    path = write_demo_video(folder / "demo-hall-720p25-gop2s.mp4", script, gop_s=GOP_S)
    return path, script, time.perf_counter() - started


def camera_video(src: Path, kbps: int) -> Path:
    """Re-encode ``src`` like a camera's main stream (grain, CBR ``kbps``, Main, GOP 50).

    Cached next to ``src``; redone when ``src``'s sidecar (its render key) or the settings
    change. ``kbps <= 0`` returns ``src`` unchanged.

    Raises:
        RuntimeError: ``ffmpeg`` is missing or failed.
    """
    if kbps <= 0:
        return src
    out = src.with_name(f"{src.stem}-cam{kbps}k.mp4")
    sidecar = out.with_name(out.name + ".json")
    args = [
        "-vf", "noise=alls=6:allf=t",
        "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "main",
        "-b:v", f"{kbps}k", "-maxrate", f"{kbps}k", "-bufsize", f"{kbps}k",
        "-g", str(round(GOP_S * FPS)), "-keyint_min", str(round(GOP_S * FPS)),
        "-sc_threshold", "0", "-bf", "0", "-pix_fmt", "yuv420p", "-an",
    ]  # fmt: skip
    src_sidecar = src.with_name(src.name + ".json")
    key = {"src": src_sidecar.read_text() if src_sidecar.exists() else str(src), "args": args}
    if out.exists() and sidecar.exists():
        try:
            if json.loads(sidecar.read_text()).get("key") == key:
                return out
        except (OSError, ValueError):
            pass
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("ffmpeg not found (needed to make the camera-like stream)")
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp.mp4")
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-y", "-i", str(src), *args, str(tmp)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"ffmpeg failed ({proc.returncode}): {proc.stderr[-2000:]}")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    sidecar.write_text(json.dumps({"key": key}, indent=1))
    return out


def serve(video: Path, cameras: int) -> RtspServer:
    """A started RTSP server with mounts ``/cam1`` … ``/camK``, each looping ``video``.

    Raises:
        RuntimeError: Debian's GStreamer RTSP server is not usable, or did not start.
    """
    ok, reason = gst_rtsp_available()
    if not ok:
        raise RuntimeError(f"RTSP server unavailable: {reason}")
    mounts = {f"/cam{i + 1}": str(video) for i in range(cameras)}
    return RtspServer(mounts, ready_timeout_s=30.0).start()
