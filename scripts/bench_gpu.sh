#!/usr/bin/env bash
# GPU section of the inference benchmark (issue 9): run on a machine with an NVIDIA GPU, a CUDA build of torch
# 2.13 and, for TensorRT, onnxruntime-gpu (TensorrtExecutionProvider) or torch-tensorrt. Never a test requirement.
#   scripts/bench_gpu.sh [venv python]
# Writes docs/benchmarks/inference_gpu.md/.json (batch 1: eager fp32, fp16, fp16 + CUDA graphs, ONNX Runtime CUDA,
# TensorRT fp16 where installed; every model at 352x704, 448x800, 896x1600) and inference_gpu_batch6.md/.json
# (the student, 6 cameras in one batch).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))"
"$PY" -m xdrcdepth_core.cli bench --device cuda --repeats 20 --warmup 5 \
    --out docs/benchmarks/inference_gpu.md
"$PY" -m xdrcdepth_core.cli bench --device cuda --models xdrcdepth --sizes 352x704 896x1600 --batch 6 \
    --repeats 20 --warmup 5 --skip e2e node radar --out docs/benchmarks/inference_gpu_batch6.md
