"""``xdrcdepth benchmark``: inference speed of every registered model, written to ``docs/``.

Benchmarks are not tests: this command measures, and writes a Markdown report that names the command
that produced it and the machine it ran on. Latencies are compared as ratios measured in the same run
(absolute numbers move with load and hardware). For each model (default config, random weights, eval
mode, batch 1, ``torch.inference_mode``) it times ``--repeats`` forward passes at ``--height`` x ``--width``
after ``--warmup`` passes and reports the median, plus the end-to-end ``DepthEstimator.estimate`` path
(radar rasterisation, resize, forward, resize back) on a 1600 x 900 nuScenes-sized frame for the student.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from xdrcdepth_core.atomic import atomic_write_bytes
from xdrcdepth_core.device import resolve_device
from xdrcdepth_core.models import build_model, list_models
from xdrcdepth_core.models.summary import BASELINE, STUDENT, model_stats

#: a 1600 x 900 camera with a 70 degree horizontal field of view, like a nuScenes front camera
FRONT_CAMERA_K = np.array([[1140.0, 0.0, 799.5], [0.0, 1140.0, 449.5], [0.0, 0.0, 1.0]])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="*", default=None, help="models to time (default: all)")
    parser.add_argument("--height", type=int, default=352)
    parser.add_argument("--width", type=int, default=704)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/inference.md"))


def machine_description(device: torch.device) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    text = (f"{cpu}, {os.cpu_count()} logical cores, torch {torch.__version__} with "
            f"{torch.get_num_threads()} threads, Python {platform.python_version()}, {platform.system()}")
    if device.type == "cuda":
        text += f"; GPU {torch.cuda.get_device_name(device)}"
    return text


def time_call(fn, repeats: int, warmup: int, device: torch.device) -> float:
    """Median wall time of ``fn()`` in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_model(name: str, hw: tuple[int, int], repeats: int, warmup: int, device: torch.device) -> float:
    torch.manual_seed(0)
    model = build_model(name).to(device).eval()
    image = torch.randn(1, 3, *hw, device=device)
    radar = torch.zeros(1, model.radar_channels, *hw, device=device)
    radar[:, :, hw[0] // 2, ::16] = 0.3  # a sparse row of returns

    def forward():
        with torch.inference_mode():
            model(image, radar)

    return time_call(forward, repeats, warmup, device)


def time_estimator(repeats: int, warmup: int, device: torch.device) -> float:
    from xdrcdepth_core.infer import DepthEstimator, RadarInput

    estimator = DepthEstimator.from_checkpoint(None, device=str(device))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (900, 1600, 3), dtype=np.uint8)
    xyz = np.column_stack([rng.uniform(5, 80, 100), rng.uniform(-20, 20, 100), np.zeros(100)])
    radar_to_cam = np.array([[0.0, -1, 0, 0], [0, 0, -1, 0.5], [1, 0, 0, 0], [0, 0, 0, 1]])
    radars = [RadarInput(xyz, {"rcs": rng.uniform(0, 20, 100)}, radar_to_cam)]
    return time_call(lambda: estimator.estimate(image, radars, FRONT_CAMERA_K), repeats, warmup, device)


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    names = args.models or list_models()
    unknown = sorted(set(names) - set(list_models()))
    if unknown:
        print(f"error: unknown models {unknown}; registered: {list_models()}", file=sys.stderr)
        return 2
    hw = (args.height, args.width)
    rows = {}
    for name in tqdm(names, desc="benchmark", unit="model"):
        params, flops = model_stats(name, *hw)
        rows[name] = (params, flops, time_model(name, hw, args.repeats, args.warmup, device))
    end_to_end = time_estimator(args.repeats, args.warmup, device) if STUDENT in names else None

    reference = rows.get(BASELINE, rows[names[0]])[2]
    ref_name = BASELINE if BASELINE in rows else names[0]
    command = "xdrcdepth benchmark " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    lines = [
        "# Inference benchmark",
        "",
        f"- command: `{command.strip()}`",
        f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {machine_description(device)}",
        f"- device: {device}; batch 1, eval mode, random weights, input {hw[0]} x {hw[1]}, "
        f"median of {args.repeats} runs after {args.warmup} warm-up runs",
        "",
        f"| model | params (M) | GFLOPs | forward latency (ms) | latency vs {ref_name} | FPS |",
        "|---|---|---|---|---|---|",
    ]
    for name, (params, flops, seconds) in rows.items():
        lines.append(f"| {name} | {params / 1e6:.3f} | {flops:.2f} | {1000 * seconds:.1f} | "
                     f"{seconds / reference:.2f} | {1 / seconds:.1f} |")
    if end_to_end is not None:
        lines += ["", f"End to end, `DepthEstimator.estimate` on a 1600 x 900 frame with 100 radar returns "
                  f"({STUDENT}, rasterise + resize + forward + resize back): **{1000 * end_to_end:.1f} ms** "
                  f"({1 / end_to_end:.1f} FPS)."]
    report = "\n".join(lines) + "\n"
    atomic_write_bytes(args.out, report.encode())
    print(report)
    summary = ", ".join(f"{n} {1000 * r[2]:.0f} ms" for n, r in rows.items())
    print(f"benchmark: {summary} on {device} -> {args.out}")
    return 0
