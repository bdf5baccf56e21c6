"""Cost and size of evidence snapshots: ms per snapshot, with and without the detector call.

Runs :class:`edge.evidence.SnapshotMaker` over the generated window scenes of
``tests/support/evidence_scenes.py`` (full-size and half-size frames, clerks blurred and
shown) and prints, per case, the median over ``--repeats`` of:

- ``take_ms``: a whole :meth:`~edge.evidence.SnapshotMaker.take` that runs the detector on
  the crop (and on the post's crop when clerks are shown);
- ``given_ms``: the same with the people given (merged with the snapshot's own detector call);
- ``detector_ms`` / ``cascade_ms``: the detector on the crop and the face cascade on the
  snapshot-sized image alone;
- ``kb``: the JPEG's size and ``faces``: the regions blurred.

Times are wall-clock and thread CPU (``time.thread_time``); on a shared machine the CPU
figure is the steadier one. The last line printed is one JSON object with all numbers.

Usage::

    .venv/bin/python benchmarks/evidence_blur.py [--repeats 5] [--precision int8]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """Median wall and thread-CPU milliseconds of ``fn`` over ``repeats`` calls, last result."""
    walls, cpus = [], []
    result = None
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.thread_time()
        result = fn()
        cpus.append((time.thread_time() - c0) * 1000)
        walls.append((time.perf_counter() - w0) * 1000)
    return statistics.median(walls), statistics.median(cpus), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--precision", choices=("fp32", "int8"), default="int8")
    args = parser.parse_args()

    import cv2

    from edge.detectors import create_detector
    from edge.evidence import FaceCascade, SnapshotMaker
    from edge.regions.post_region import PostRegion
    from hallwatch.config.models import CameraConfig
    from hallwatch.config.zones import EvidenceConfig
    from tests.support.evidence_scenes import CAMERA_ID, CLERK_POLYGON, SCENE_SIZE, scenes

    cv2.setNumThreads(1)
    detector = create_detector(
        "ssdlite_person", threads=1, score_threshold=0.5, precision=args.precision
    )
    camera = CameraConfig(id=CAMERA_ID, url="x.mp4", width=SCENE_SIZE[0], height=SCENE_SIZE[1])
    cascade = FaceCascade()
    rows: list[dict[str, Any]] = []
    for scene in scenes():
        for frame_scale in (1.0, 0.5):
            frame = scene.frame(frame_scale)
            x1, y1, x2, y2 = scene.region
            box = PostRegion(
                "e", [(x1, y1), (x2, y1), (x2, y2), (x1, y2)], SCENE_SIZE, margin=0.15
            ).crop_box(frame.width, frame.height)
            crop = np.ascontiguousarray(frame.image[box.y1 : box.y2, box.x1 : box.x2])
            det_ms, det_cpu, people = timed(partial(detector.detect, crop), args.repeats)
            people = people.shifted(box.x1, box.y1)
            for show in (False, True):
                maker = SnapshotMaker(
                    camera,
                    clerk_polygons=[list(CLERK_POLYGON)],
                    detector=detector,
                    settings=EvidenceConfig(show_clerks=show),
                )
                take = partial(maker.take, frame, scene.region)
                take_ms, take_cpu, ev = timed(take, args.repeats)
                given_ms, given_cpu, _ = timed(
                    partial(maker.take, frame, scene.region, people=people), args.repeats
                )
                small = cv2.resize(crop, (ev.width, ev.height), interpolation=cv2.INTER_AREA)
                casc_ms, casc_cpu, _ = timed(partial(cascade.find, small), args.repeats)
                row = {
                    "scene": scene.name,
                    "frame": f"{frame.width}x{frame.height}",
                    "clerks_shown": show,
                    "snapshot": f"{ev.width}x{ev.height}",
                    "take_ms": round(take_ms, 1),
                    "take_cpu_ms": round(take_cpu, 1),
                    "given_ms": round(given_ms, 1),
                    "given_cpu_ms": round(given_cpu, 1),
                    "detector_ms": round(det_ms, 1),
                    "detector_cpu_ms": round(det_cpu, 1),
                    "cascade_ms": round(casc_ms, 1),
                    "cascade_cpu_ms": round(casc_cpu, 1),
                    "kb": round(len(ev.image_bytes()) / 1000, 1),
                    "faces": ev.faces_blurred,
                }
                rows.append(row)
                print(
                    f"{row['scene']:22} {row['frame']:9} clerks {'shown  ' if show else 'blurred'}"
                    f" {row['snapshot']:8} take {take_ms:6.1f} ms (cpu {take_cpu:6.1f})"
                    f"  people given {given_ms:6.1f} ms (cpu {given_cpu:6.1f})"
                    f"  detector {det_ms:5.1f}  cascade {casc_ms:6.1f}"
                    f"  {row['kb']:5.1f} KB  faces {row['faces']}"
                )
    summary = {
        "precision": args.precision,
        "repeats": args.repeats,
        "median_take_cpu_ms": statistics.median(r["take_cpu_ms"] for r in rows),
        "median_given_cpu_ms": statistics.median(r["given_cpu_ms"] for r in rows),
        "max_kb": max(r["kb"] for r in rows),
        "rows": rows,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
