"""Compare the TensorFlow frozen graph with its ONNX conversion (run by build_person_detector.sh).

Runs inside the throwaway build venv (tensorflow-cpu + onnxruntime), not the project venv.
Every image is run through TensorFlow and the new ``.onnx``; with ``--compare-onnx`` also
through an earlier conversion (normally the committed model), which must agree too.

Usage:
    python check_parity.py [--compare-onnx OLD.onnx] FROZEN_GRAPH.pb NEW.onnx [PHOTO ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import tensorflow as tf

OUTPUTS = ["num_detections:0", "detection_boxes:0", "detection_scores:0", "detection_classes:0"]
TOLERANCE = 1e-3
MIN_SCORE = 0.3  # boxes and classes are compared for detections above this score


def synthetic_image() -> np.ndarray:
    """A deterministic 640x360 gradient-plus-noise image (no person in it)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:360, 0:640]
    img = np.stack([xx % 256, yy % 256, (xx + yy) % 256], -1).astype(np.float64)
    return np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)


def difference(ref: list[np.ndarray], got: list[np.ndarray]) -> float | None:
    """Largest score/box difference, or ``None`` if counts or classes of real detections differ."""
    keep = ref[2][0] > MIN_SCORE
    if int(ref[0][0]) != int(got[0][0]):
        return None
    if not np.array_equal(ref[3][0][keep], got[3][0][keep]):
        return None
    score_diff = float(np.abs(np.sort(ref[2][0]) - np.sort(got[2][0])).max())
    box_diff = float(np.abs(ref[1][0][keep] - got[1][0][keep]).max()) if keep.any() else 0.0
    return max(score_diff, box_diff)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--compare-onnx", type=Path, default=None)
    parser.add_argument("frozen_graph", type=Path)
    parser.add_argument("onnx_model", type=Path)
    parser.add_argument("photos", type=Path, nargs="*")
    args = parser.parse_args(argv)

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(args.frozen_graph.read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    sess_tf = tf.compat.v1.Session(graph=graph)
    sessions = {
        "onnx": ort.InferenceSession(str(args.onnx_model), providers=["CPUExecutionProvider"])
    }
    if args.compare_onnx is not None:
        sessions["committed onnx"] = ort.InferenceSession(
            str(args.compare_onnx), providers=["CPUExecutionProvider"]
        )

    images = {"synthetic": synthetic_image()}
    for p in args.photos:
        images[p.name] = tf.image.decode_image(p.read_bytes(), channels=3).numpy()

    worst = 0.0
    for name, img in images.items():
        batch = img[None]
        ref = sess_tf.run(OUTPUTS, {"image_tensor:0": batch})
        line = f"parity {name}: shape={img.shape} tf top scores={np.round(ref[2][0][:3], 4)}"
        for label, sess in sessions.items():
            diff = difference(ref, sess.run(OUTPUTS, {"image_tensor:0": batch}))
            if diff is None:
                print(f"FAIL {name}: {label} detection counts or classes differ", file=sys.stderr)
                return 1
            line += f" | {label} max|diff|={diff:.2e}"
            worst = max(worst, diff)
        print(line)
    if worst > TOLERANCE:
        print(f"FAIL: max difference {worst:.2e} > {TOLERANCE}", file=sys.stderr)
        return 1
    print(f"parity OK: max difference {worst:.2e} <= {TOLERANCE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
