"""Derive the int8 person detector from the float one with onnxruntime static quantization.

Reads ``models/ssdlite_mobilenet_v2_person.onnx`` (checked against its ``.sha256``), calibrates
on a fixed set of images that the project renders or that ship inside installed packages, and
writes ``models/ssdlite_mobilenet_v2_person.int8.onnx`` and its ``.sha256``, but only after the
new model agreed with the float one on every check image (see ``models/PROVENANCE.md``,
section "int8 variant").

What is quantized: the MobileNetV2 backbone and the box-predictor heads, i.e. the ``Conv``
nodes with their ``Clip`` (ReLU6) and residual ``Add`` nodes whose names start with
``FeatureExtractor/`` or ``BoxPredictor``; QDQ format, int8 weights per output channel (on
7 bits for the ordinary convs, 8 for the depthwise ones: :func:`seven_bit_weights`), uint8
activations, min/max calibration. Left in float: the input ``Cast``/``Resize`` loop
(``Preprocessor/``), the box decoding and the NMS loop (``Postprocessor/``), and the first
convolution and the first bottleneck block (:data:`KEEP_FLOAT`): quantizing those cost the most
agreement with the float model on real footage (24 of 697 crops flipped at a 0.5 threshold
with them quantized, 2 without), at no measurable cost in speed.

Deterministic: the calibration and check images are fixed (the demo renderer's noise has a
fixed seed; nothing here draws random numbers), so the same versions of onnxruntime, onnx,
numpy and OpenCV on the same kind of CPU give the same bytes. A different CPU may compute the
calibration ranges with different float rounding, and so different bytes, but the same
numbers to well within the checks.

Needs the ``onnx`` package, which ``onnxruntime.quantization`` imports and the project does
not depend on. Either install it into the venv, or keep it outside::

    .venv/bin/pip install --target /tmp/onnx-pkgs --no-deps onnx==1.23.2 ml-dtypes==0.6.0
    PYTHONPATH=/tmp/onnx-pkgs .venv/bin/python models/quantize_person_detector.py

Usage:
    python models/quantize_person_detector.py [--fp32 PATH] [--out PATH] [--no-check]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge.regions.post_region import PostRegion
from hallwatch.demo.people import load_photo
from hallwatch.demo.scene import (
    Absence,
    DemoScript,
    away_fraction,
    default_script,
    render_frame,
)

MODELS_DIR = Path(__file__).resolve().parent
FP32_PATH = MODELS_DIR / "ssdlite_mobilenet_v2_person.onnx"
INT8_PATH = MODELS_DIR / "ssdlite_mobilenet_v2_person.int8.onnx"
#: The versions the committed int8 model was made with; others work but give other bytes.
PINNED = {"onnxruntime": "1.31.1", "onnx": "1.23.2"}

_INPUT = "image_tensor:0"
_OUTPUTS = ["num_detections:0", "detection_boxes:0", "detection_scores:0", "detection_classes:0"]
#: Node types quantized, and the name prefixes of the nodes that may be (backbone and heads).
OP_TYPES = ["Conv", "Clip", "Add"]
QUANTIZED_PREFIXES = ("FeatureExtractor/", "BoxPredictor")
#: Nodes kept in float although they match the above: the first conv and the first
#: bottleneck block (its depthwise conv above all) are the most sensitive to int8.
KEEP_FLOAT = re.compile(r"^FeatureExtractor/MobilenetV2/(Conv|expanded_conv)/")

PHOTOS = ("astronaut", "camera", "grace_hopper")
#: Demo times the calibration crops are taken at (the checks use whole seconds).
CALIBRATION_TIMES = [0.5 + 6.0 * k for k in range(20)]
EMPTY_HALL_TIMES = [2.0, 33.4, 77.8]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def empty_hall_script() -> DemoScript:
    """The demo hall with every clerk gone from the start (an empty chair at each post)."""
    s = default_script()
    absences = [Absence(p.id, 0.0, None) for p in s.posts]
    return DemoScript(s.size, s.fps, s.duration_s, s.posts, absences)


def post_crops(script: DemoScript, t: float) -> list[tuple[str, np.ndarray]]:
    """``(post id, crop)`` for every post of the demo frame at ``t``, cut as the edge cuts them."""
    frame = render_frame(script, t)
    regions = [
        PostRegion(p.id, [(float(x), float(y)) for x, y in p.polygon], script.size)
        for p in script.posts
    ]
    return [(r.post, np.ascontiguousarray(r.crop(frame))) for r in regions]


def calibration_images() -> list[np.ndarray]:
    """The 99 fixed calibration images, RGB ``uint8`` of their own sizes.

    80 post crops of the demo hall (4 posts x 20 times, clerks seated and away), 12 post
    crops and 3 whole frames of the empty hall, 1 whole demo frame, and the 3 package photos.
    """
    script, empty = default_script(), empty_hall_script()
    images = [crop for t in CALIBRATION_TIMES for _, crop in post_crops(script, t)]
    for t in EMPTY_HALL_TIMES:
        images += [crop for _, crop in post_crops(empty, t)]
        images.append(render_frame(empty, t))
    images.append(render_frame(script, 3.2))
    images += [load_photo(name) for name in PHOTOS]
    return images


class _Reader:
    """Feeds the calibration images to ``quantize_static``, each as a batch of one."""

    def __init__(self, images: list[np.ndarray]) -> None:
        self._feeds: Iterator[dict[str, np.ndarray]] = iter(
            [{_INPUT: image[np.newaxis]} for image in images]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def nodes_to_quantize(model_path: Path) -> list[str]:
    import onnx

    graph = onnx.load(str(model_path)).graph
    return [
        n.name
        for n in graph.node
        if n.op_type in OP_TYPES
        and n.name.startswith(QUANTIZED_PREFIXES)
        and not KEEP_FLOAT.match(n.name)
    ]


def seven_bit_weights(model_path: Path, nodes: list[str]) -> list[str]:
    """The weights quantized to 7 bits, [-64, 64], instead of 8: those of the ordinary
    (``group == 1``, here all 1x1) convs among ``nodes``; the depthwise convs keep 8 bits.

    Why: on an x86 CPU without VNNI (AVX2, or AVX-512 without VNNI) onnxruntime computes an
    ordinary u8 x s8 conv with VPMADDUBSW, which adds each pair of u8 x s8 products (adjacent
    input channels) in a *saturating* 16-bit integer: 255 * 127 * 2 = 64,770 does not fit,
    255 * 64 * 2 = 32,640 does. With 8-bit weights the same model scored astronaut 0.978 on
    an AMD EPYC (AVX2) against 0.890 on a VNNI Xeon and 0.902 in float, and up to 14 % of
    some layers' outputs had a saturated pair. Its depthwise kernel multiplies in 16 bits
    and does not saturate, and 7 bits everywhere (``reduce_range=True``) cost too much
    agreement: 44 of 697 footage crops flipped. See models/PROVENANCE.md, "int8 variant".
    """
    import onnx

    wanted = set(nodes)
    return [
        n.input[1]
        for n in onnx.load(str(model_path)).graph.node
        if n.name in wanted
        and n.op_type == "Conv"
        and next((a.i for a in n.attribute if a.name == "group"), 1) == 1
    ]


def quantize(fp32: Path, out: Path) -> None:
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    nodes = nodes_to_quantize(fp32)
    seven_bit = seven_bit_weights(fp32, nodes)
    images = calibration_images()
    print(
        f"== quantizing {len(nodes)} nodes ({len(seven_bit)} convs with 7-bit weights), "
        f"calibrating on {len(images)} images"
    )
    quantize_static(
        str(fp32),
        str(out),
        _Reader(images),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=OP_TYPES,
        nodes_to_quantize=nodes,
        per_channel=True,
        reduce_range=False,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        extra_options={
            "TensorQuantOverrides": {w: [{"axis": 0, "reduce_range": True}] for w in seven_bit}
        },
    )


# --- check --------------------------------------------------------------------------------


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _best_person(
    session: ort.InferenceSession, image: np.ndarray
) -> tuple[float, np.ndarray | None]:
    """The best person score and its normalised box (``0.0, None`` if no person row)."""
    num, boxes, scores, classes = session.run(_OUTPUTS, {_INPUT: image[np.newaxis]})
    n = int(num[0])
    person = classes[0, :n] == 1
    if not person.any():
        return 0.0, None
    i = int(np.flatnonzero(person)[0])
    return float(scores[0, i]), boxes[0, i]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(
        0.0, min(a[3], b[3]) - max(a[1], b[1])
    )
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def check(fp32: Path, int8: Path) -> list[str]:
    """Compare the models; return the failures (empty if the int8 model may be used).

    Every demo post crop at whole seconds 0..120 (mid-walk ones skipped) must be judged the
    same at a 0.5 threshold; each package photo must give a person (>= 0.5) whose box
    overlaps the float model's by IoU >= 0.9; no empty-hall crop may score 0.2.
    """
    f, q = _session(fp32), _session(int8)
    failures: list[str] = []
    script = default_script()
    judged, deltas = 0, [0.0]
    for t in range(121):
        for post, crop in post_crops(script, float(t)):
            if 0.0 < away_fraction(script, post, t) < 1.0:
                continue
            (sf, _), (sq, _) = _best_person(f, crop), _best_person(q, crop)
            judged += 1
            deltas.append(abs(sq - sf))
            if (sf >= 0.5) != (sq >= 0.5):
                failures.append(f"demo {post} t={t}: fp32 {sf:.3f}, int8 {sq:.3f}")
    print(f"== demo crops: {judged} judged, max |score delta| {max(deltas):.4f}")
    for name in PHOTOS:
        photo = load_photo(name)
        (sf, bf), (sq, bq) = _best_person(f, photo), _best_person(q, photo)
        overlap = _iou(bf, bq) if bf is not None and bq is not None else 0.0
        print(f"== {name}: fp32 {sf:.4f}, int8 {sq:.4f}, box IoU {overlap:.3f}")
        if sq < 0.5 or overlap < 0.9:
            failures.append(f"photo {name}: int8 {sq:.3f}, IoU {overlap:.3f}")
    worst = 0.0
    empty = empty_hall_script()
    for at in (10.0, 60.0, 110.0):
        for post, crop in post_crops(empty, at):
            sq, _ = _best_person(q, crop)
            worst = max(worst, sq)
            if sq >= 0.2:
                failures.append(f"empty hall {post} t={at}: int8 {sq:.3f}")
    print(f"== empty hall crops: highest int8 person score {worst:.4f}")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fp32", type=Path, default=FP32_PATH, help="the float model")
    parser.add_argument("--out", type=Path, default=INT8_PATH, help="the int8 model to write")
    parser.add_argument("--no-check", action="store_true", help="skip the agreement check")
    args = parser.parse_args(argv)

    try:
        import onnx
    except ImportError:
        print("needs the onnx package: see this script's docstring", file=sys.stderr)
        return 2
    versions = {"onnxruntime": ort.__version__, "onnx": onnx.__version__}
    print(f"== {', '.join(f'{k} {v}' for k, v in versions.items())}, numpy {np.__version__}")
    if versions != PINNED:
        print(f"note: the committed model was made with {PINNED}; expect other bytes")

    recorded = args.fp32.with_name(args.fp32.name + ".sha256")
    if recorded.is_file() and recorded.read_text().split()[0] != sha256(args.fp32):
        print(f"{args.fp32} does not match {recorded}", file=sys.stderr)
        return 1

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=args.out.parent) as work:
        new = Path(work) / args.out.name
        quantize(args.fp32, new)
        print(f"== quantized in {time.perf_counter() - started:.0f} s")
        if not args.no_check:
            failures = check(args.fp32, new)
            if failures:
                print("int8 model disagrees with the float one:", *failures, sep="\n  ")
                return 1
        old = sha256(args.out) if args.out.is_file() else None
        os.replace(new, args.out)
    digest = sha256(args.out)
    args.out.with_name(args.out.name + ".sha256").write_text(f"{digest}  {args.out.name}\n")
    same = "same bytes as before" if digest == old else "new bytes" if old else "new file"
    print(f"== {args.out} {args.out.stat().st_size} bytes sha256 {digest} ({same})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
