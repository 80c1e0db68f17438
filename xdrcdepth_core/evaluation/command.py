"""``xdrcdepth eval --checkpoint C --data CACHE [--panels DIR] [--json FILE]``: the metric table with baselines.

Prints, per ground truth, the model's metrics at each cap next to the radar-only and constant baselines
(:mod:`.baselines`), writes PNG panels (:mod:`.panels`) and a JSON file with every number and the
protocol, and ends with a one-line summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from xdrcdepth_core.cli_args import add_no_progress
from xdrcdepth_core.metrics import DEFAULT_CAPS


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from xdrcdepth_core.evaluation.evaluate import GT_KEYS

    parser.add_argument("--checkpoint", default="", help="checkpoint (default: the shipped one)")
    parser.add_argument("--data", required=True, type=Path, help="cache folder from `xdrcdepth prepare`")
    parser.add_argument("--gt", nargs="+", default=["auto"], choices=sorted(GT_KEYS),
                        help="ground truths to score against (default: auto = single-sweep LiDAR)")
    parser.add_argument("--caps", nargs="+", type=_positive_float, default=list(DEFAULT_CAPS),
                        help="range caps in metres (default: 50 70 80)")
    parser.add_argument("--constant-depth", type=_positive_float, default=None,
                        help="depth of the constant baseline (default: the checkpoint's median training depth)")
    parser.add_argument("--panels", type=Path, help="write one PNG panel per frame into this folder")
    parser.add_argument("--max-panels", type=int, default=20, help="panels to write (default: %(default)s)")
    parser.add_argument("--teacher", default="", help="teacher checkpoint: its Grad-CAM in the panels")
    parser.add_argument("--json", type=Path, help="write all numbers to this JSON file")
    parser.add_argument("--limit", type=int, default=0, help="first N frames only (default: all)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    add_no_progress(parser)


def run(args: argparse.Namespace) -> int:
    from xdrcdepth_core.atomic import atomic_write_bytes
    from xdrcdepth_core.checkpoint import load_checkpoint
    from xdrcdepth_core.demo import write_png
    from xdrcdepth_core.evaluation.evaluate import evaluate_cache
    from xdrcdepth_core.evaluation.panels import evaluation_panel
    from xdrcdepth_core.infer import SHIPPED_CHECKPOINT, DepthEstimator

    try:
        estimator = DepthEstimator.from_checkpoint(args.checkpoint or None, device=args.device)
        teacher = DepthEstimator.from_checkpoint(args.teacher, device=args.device) if args.teacher else None
        path = args.checkpoint or (SHIPPED_CHECKPOINT if SHIPPED_CHECKPOINT.is_file() else "")
        metrics = load_checkpoint(path).get("metrics", {}) if path else {}
    except (OSError, ValueError) as exc:
        print(f"xdrcdepth eval: {exc}", file=sys.stderr)
        return 2
    constant = args.constant_depth or metrics.get("median_train_depth")

    def panel(index: int, sample: dict, predictions: dict) -> None:
        if args.panels is None or index >= args.max_panels:
            return
        from xdrcdepth_core.evaluation.evaluate import ground_truth

        teacher_saliency = None
        if teacher is not None:
            teacher_saliency = teacher.estimate_raster(sample["image"], sample["radar"], saliency=True).saliency
        rgb = evaluation_panel(sample["image"], sample["radar"][0], ground_truth(sample, args.gt[0]),
                               predictions["model"], predictions["saliency"], teacher_saliency)
        write_png(args.panels / f"{index:04d}_{sample['token']}.png", rgb)

    start = time.monotonic()
    try:
        result = evaluate_cache(estimator, args.data, caps=args.caps, gts=args.gt, constant=constant,
                                limit=args.limit, saliency_frames=args.max_panels if args.panels else 0,
                                on_frame=panel, progress=not args.no_progress)
    except (OSError, ValueError) as exc:
        print(f"xdrcdepth eval: {exc}", file=sys.stderr)
        return 2
    print(result.format_table())
    if args.json:
        report = {"checkpoint": str(path) or "untrained", "model_id": estimator.model_id, "data": str(args.data),
                  "frames": result.frames, "caps": list(result.caps), "gt": args.gt, "constant_depth": constant,
                  "protocol": "prediction at the model input size, bilinearly resized to the cached resolution, "
                              "scored on 1e-3 < gt < cap per image, averaged over images",
                  "results": result.results()}
        atomic_write_bytes(args.json, json.dumps(report, indent=1).encode())
    gt = args.gt[0]
    cap = max(result.caps)
    parts = [f"{name} {result.mae(name, gt, cap) / 1000:.3f} m" for name in result.rows if gt in result.rows[name]]
    print(f"eval: {result.frames} frames, MAE@{cap:g} m ({gt} GT): " + ", ".join(parts) +
          f"; {time.monotonic() - start:.0f} s" + (f"; panels -> {args.panels}" if args.panels else ""))
    return 0
