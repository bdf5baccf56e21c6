"""People counting accuracy of a zone (occupancy) on generated waiting areas, and its cost.

Composes ``--scenes`` waiting areas (``tests/support/crowd_scenes.py``: a 1280×720 hall
camera over three rows of benches, 0..8 seated people cut out of the packaged photos, a third
of the scenes with one or two people standing outside the zone) and counts the people in the
zone with :class:`edge.environment.people.ZonePeople` and the real person detector
(SSDLite MobileNetV2, ``threads=1``), in three ways:

* ``whole``: the zone's crop in one detector call (no tiling);
* ``short``: tiles of the crop's short side (``max_tile=None``);
* ``400px``: tiles of at most 400 px, the default.

For each way and each ``--precision`` it prints the mean absolute error (MAE) of the count,
its bias, the largest error, the median ms per zone look (the box is shared: ms are
indicative, the CPU time per call is the better figure) and the detector calls per look;
for the default way the confusion of true vs counted people and the recall per photo and per
bench row (a seated person is found when a kept box overlaps their visible part with IoU
≥ 0.3). The last line is one JSON object with the default way's figures.

Run: ``.venv/bin/python benchmarks/occupancy_accuracy.py [--scenes 200] [--precision int8]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.detectors import create_detector  # noqa: E402
from edge.detectors.base import Detector  # noqa: E402
from edge.environment.people import DEFAULT_MAX_TILE, ZonePeople  # noqa: E402
from edge.regions.post_region import PostRegion  # noqa: E402
from edge.sources.frame import Frame  # noqa: E402
from tests.support.crowd_scenes import WAITING_SIZE, WaitingScene, waiting_scene  # noqa: E402

WAYS: dict[str, tuple[bool, int | None]] = {
    "whole": (False, None),
    "short": (True, None),
    "400px": (True, DEFAULT_MAX_TILE),
}
MAX_COUNT = 8


def scenes(n: int) -> list[WaitingScene]:
    """``n`` scenes cycling through 0..8 people; every third has outsiders."""
    return [waiting_scene(i % (MAX_COUNT + 1), 5000 + i, outsiders=(i // 3) % 3) for i in range(n)]


def iou(a: np.ndarray, b: tuple[int, int, int, int]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def run(det: Detector, tile: bool, max_tile: int | None, data: list[WaitingScene]) -> dict:
    counted, ms, cpu_ms, calls = [], [], [], 0
    found: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for i, scene in enumerate(data):
        zone = ZonePeople(
            "waiting",
            PostRegion("waiting", scene.polygon, WAITING_SIZE),
            det,
            tile=tile,
            max_tile=max_tile,
        )
        frame = Frame("hall-cam", scene.image, float(i), datetime.now(UTC))
        t0, c0 = time.perf_counter(), time.process_time()
        people = zone.find(frame)
        ms.append(1000 * (time.perf_counter() - t0))
        cpu_ms.append(1000 * (time.process_time() - c0))
        calls += zone.detector_calls
        counted.append(len(people))
        for person in scene.people:
            hit = any(iou(b, person.box) >= 0.3 for b in people.xyxy)
            for key in (f"photo {person.look.photo}", f"row {person.row}"):
                total[key] += 1
                found[key] += hit
    truth = np.array([s.count for s in data])
    err = np.array(counted) - truth
    return {
        "mae": round(float(np.abs(err).mean()), 3),
        "bias": round(float(err.mean()), 3),
        "max_error": int(np.abs(err).max()),
        "exact": round(float((err == 0).mean()), 3),
        "empty_ok": bool(all(c == 0 for c, t in zip(counted, truth, strict=True) if t == 0)),
        "ms_per_look": round(statistics.median(ms), 1),
        "cpu_ms_per_look": round(statistics.median(cpu_ms), 1),
        "calls_per_look": round(calls / len(data), 2),
        "recall": {k: round(found[k] / total[k], 3) for k in sorted(total)},
        "confusion": Counter(zip(truth.tolist(), counted, strict=True)),
    }


def print_confusion(confusion: Counter[tuple[int, int]]) -> None:
    top = max([MAX_COUNT, *(c for _, c in confusion)])
    print("  true \\ counted " + " ".join(f"{c:3d}" for c in range(top + 1)))
    for t in range(MAX_COUNT + 1):
        cells = " ".join(f"{confusion.get((t, c), 0) or '.':>3}" for c in range(top + 1))
        print(f"  {t:>14d} {cells}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--precision", choices=["fp32", "int8", "both"], default="both")
    parser.add_argument("--min-score", type=float, default=0.5)
    args = parser.parse_args()
    t0 = time.perf_counter()
    data = scenes(args.scenes)
    print(f"composed {len(data)} scenes in {time.perf_counter() - t0:.1f} s")
    precisions = ["fp32", "int8"] if args.precision == "both" else [args.precision]
    headline: dict = {}
    for precision in precisions:
        det = create_detector(
            "ssdlite_person", threads=1, score_threshold=args.min_score, precision=precision
        )
        det.detect(data[0].image)  # warm up
        for way, (tile, max_tile) in WAYS.items():
            r = run(det, tile, max_tile, data)
            print(
                f"{precision} {way:>5}: MAE {r['mae']:.3f}  bias {r['bias']:+.3f}  "
                f"max err {r['max_error']}  exact {r['exact']:.0%}  empty→0 {r['empty_ok']}  "
                f"{r['ms_per_look']:.0f} ms ({r['cpu_ms_per_look']:.0f} CPU-ms) per look, "
                f"{r['calls_per_look']:.1f} calls"
            )
            if way == "400px":
                print("  recall: " + ", ".join(f"{k} {v:.0%}" for k, v in r["recall"].items()))
                print_confusion(r["confusion"])
                headline[precision] = {k: v for k, v in r.items() if k != "confusion"}
    print(json.dumps({"scenes": len(data), "min_score": args.min_score, **headline}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
