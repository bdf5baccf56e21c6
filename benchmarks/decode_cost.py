"""CPU cost of reading one RTSP camera: key frames only vs every frame.

Serves a 720p25 GOP-50 H.264 stream on loopback (``tests/support/rtsp_server.py``), then
for each decode mode starts a fresh child process that reads the stream with
:class:`edge.sources.LatestFrameReader` for ``--seconds`` while a consumer takes the
latest frame once per second (as the detector would, RGB conversion included). The CPU
time (user + sys, ``resource.getrusage``) of the child only is divided by the wall time:
the result is the share of one core per camera. The server's CPU is not counted.

Usage::

    .venv/bin/python benchmarks/decode_cost.py [--seconds 20] [--source pattern|file]

The last line printed is one JSON object with all numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WARMUP_S = 2.0
MODES = {  # name -> reader options
    "keyframes": {"keyframes_only": True, "threads": 0},
    "keyframes_1thread": {"keyframes_only": True, "threads": 1},
    "all_frames": {"keyframes_only": False, "threads": 0},
    "all_frames_1thread": {"keyframes_only": False, "threads": 1},
}


def cpu_s() -> float:
    """User + system CPU seconds of this process (all its threads)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def child(url: str, mode: str, seconds: float) -> dict[str, float | int | str]:
    """Read ``url`` for ``seconds`` in ``mode``; return the measurement."""
    from edge.sources import open_source

    opts = MODES[mode]
    reader = open_source(
        url, "bench", keyframes_only=bool(opts["keyframes_only"]), threads=int(opts["threads"])
    )
    first = reader.wait_next(None, timeout=15)
    if first is None:
        raise SystemExit(f"no frame from {url}: {reader.end_reason}")
    time.sleep(WARMUP_S)  # let the burst buffered while probing pass
    size = f"{first.width}x{first.height}"
    start_stats = reader.stats
    wall0, cpu0 = time.monotonic(), cpu_s()
    taken = 0
    while (left := wall0 + seconds - time.monotonic()) > 0:
        time.sleep(min(1.0, left))
        if reader.latest() is not None:  # 1 Hz consumer, like the detector
            taken += 1
    cpu, wall = cpu_s() - cpu0, time.monotonic() - wall0
    stats = reader.stats
    reader.close()
    decoded = stats.frames_decoded - start_stats.frames_decoded
    return {
        "mode": mode,
        "size": size,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 3),
        "core_pct": round(100 * cpu / wall, 2),
        "frames_decoded": decoded,
        "decoded_fps": round(decoded / wall, 2),
        "frames_consumed": taken,
    }


def run_child(url: str, mode: str, seconds: float) -> dict[str, float | int | str]:
    """Measure one mode in a fresh process (so no other threads are counted)."""
    cmd = [sys.executable, __file__, "--child", mode, "--url", url, "--seconds", str(seconds)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 60)
    result: dict[str, float | int | str] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    """Serve the stream, measure every mode, print a table and a JSON summary."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=20.0, help="measurement per mode")
    p.add_argument("--source", choices=["pattern", "file"], default="pattern")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated subset")
    p.add_argument("--preset", default="veryfast", help="pattern encoder x264 preset")
    p.add_argument("--profile", default="main", help="pattern encoder H.264 profile")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.url, args.child, args.seconds)))
        return

    from tests.support.rtsp import RtspServer
    from tests.support.video import make_test_video

    with tempfile.TemporaryDirectory() as tmp:
        if args.source == "file":
            clip = make_test_video(Path(tmp) / "720p.mp4", 20, size=(1280, 720), gop=50)
            mounts = {"/cam": str(clip)}
        else:
            mounts = {"/cam": "pattern:smpte"}
        extra = ["--size", "1280x720", "--fps", "25", "--gop", "50", "--bitrate", "2048"]
        # CABAC + deblocking like real cameras (ultrafast/baseline would flatter decoding)
        extra += ["--preset", args.preset, "--profile", args.profile]
        results = []
        with RtspServer(mounts, extra_args=extra) as server:
            for mode in args.modes.split(","):
                r = run_child(server.url("/cam"), mode, args.seconds)
                print(
                    f"{r['mode']:>20}: {r['core_pct']:6.2f} % of a core "
                    f"({r['cpu_s']} s CPU / {r['wall_s']} s, {r['decoded_fps']} decoded fps, "
                    f"{r['size']})",
                    flush=True,
                )
                results.append(r)
    by_mode = {str(r["mode"]): r for r in results}
    summary: dict[str, Any] = {
        "source": args.source if args.source == "file" else f"pattern {args.preset}/{args.profile}",
        "stream": "1280x720 25fps GOP50 H.264",
        "cores": os.cpu_count(),
        "results": by_mode,
    }
    if "keyframes" in by_mode and "all_frames" in by_mode:
        kf = float(by_mode["keyframes"]["core_pct"])
        af = float(by_mode["all_frames"]["core_pct"])
        summary["all_over_keyframes"] = round(af / kf, 2) if kf else None
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
