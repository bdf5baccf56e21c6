"""Detection accuracy on real footage, through ``hallwatch replay``'s pipeline.

Replays ``../shared/footage/intel_one-by-one-person-detection.mp4`` (six people in turn
stand at a table) with ``benchmarks/footage/intel_table.yaml`` and compares the post's
on/off state, sampled every 0.5 s, with the occupied intervals given in the footage's
README (estimated by frame differencing, walking in and out included, so ±2 s at each edge
is not counted). Prints per-interval results, then one JSON object as the last line::

    {"accuracy": …, "on_recall": …, "off_recall": …, "transitions_found": …, "seconds": …}

Run: ``.venv/bin/python benchmarks/replay_accuracy.py``. Not a test: the footage is not
part of the repository.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from edge.replay import replay_facts
from hallwatch.config import load_hall_config

ROOT = Path(__file__).resolve().parents[1]
VIDEO = ROOT.parent / "shared" / "footage" / "intel_one-by-one-person-detection.mp4"
CONFIG = ROOT / "benchmarks" / "footage" / "intel_table.yaml"
OCCUPIED = [(6.6, 19.0), (23.0, 44.1), (50.6, 69.1), (74.9, 85.9), (92.3, 118.9), (123.8, 135.2)]
DURATION = 139.4
EDGE_SLACK_S = 2.0
GRACE_S = 2.0


def truth(t: float) -> bool | None:
    """True/False where the README says occupied/empty; None within the slack of an edge."""
    for start, end in OCCUPIED:
        if abs(t - start) < EDGE_SLACK_S or abs(t - end) < EDGE_SLACK_S + GRACE_S:
            return None
    return any(start <= t < end for start, end in OCCUPIED)


def main() -> int:
    if not VIDEO.is_file():
        print(f"footage not found: {VIDEO}", file=sys.stderr)
        return 2
    config = load_hall_config(CONFIG)
    started = time.perf_counter()
    cpu0 = time.process_time()
    changes = [
        (float(f["since_t"]), f["state"] == "on_post")  # type: ignore[arg-type]
        for f in replay_facts(VIDEO, config, "room")
        if not f["summary"]
    ]
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
    print(f"replayed {DURATION:.0f} s of video in {wall:.1f} s ({cpu:.1f} CPU-s)")
    for since, is_on in changes:
        print(f"  {'on_post ' if is_on else 'off_post'} since {since:6.1f} s")

    def state(t: float) -> bool:
        current = False
        for since, is_on in changes:
            if since <= t:
                current = is_on
        return current

    samples = [i * 0.5 for i in range(int(DURATION * 2))]
    judged = [(truth(t), state(t)) for t in samples if truth(t) is not None]
    on = [s for want, s in judged if want]
    off = [not s for want, s in judged if not want]
    starts = [since for since, is_on in changes if is_on]
    found = sum(any(abs(s - a) <= 3.0 for s in starts) for a, _ in OCCUPIED)
    result = {
        "accuracy": round(sum(w == s for w, s in judged) / len(judged), 3),
        "on_recall": round(sum(on) / len(on), 3),
        "off_recall": round(sum(off) / len(off), 3),
        "transitions_found": f"{found}/{len(OCCUPIED)}",
        "seconds": round(wall, 1),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
