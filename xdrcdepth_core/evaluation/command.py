"""``xdrcdepth eval --checkpoint C --data CACHE [--panels DIR] [--json FILE]``: the metric table with baselines.

Prints, per ground truth, the model's metrics at each cap next to the radar-only and constant baselines
(:mod:`.baselines`), writes PNG panels (:mod:`.panels`) and a JSON file with every number and the
protocol, and ends with a one-line summary.

Exit status: 0 scored; 1 no frame has a pixel of the (first) ground truth within the largest cap (nothing
scored: the tables and JSON are written, with 0 images and no numbers, but no summary of NaN scores), or an
output cannot be written (one line naming it); 2 bad arguments, a missing or unusable checkpoint or cache file
(named).
"""

from __future__ import annotations

import argparse
import json
import time

from xdrcdepth_core.cli_args import (add_no_progress, os_error_line, output_file_problem, output_folder_problem,
                                     output_overlap, path_argument, positive_float, positive_int, say)
from xdrcdepth_core.metrics import DEFAULT_CAPS

PROG = "xdrcdepth eval"
FLOAT32_MAX = 3.4028234663852886e38   # np.finfo(np.float32).max, without importing numpy for --help


def constant_depth(text: str) -> float:
    """``--constant-depth``: a positive depth that float32 holds (the baseline's depth map is float32: 1e300
    would become inf, with a numpy warning on stderr, and be scored as the cap)."""
    value = positive_float(text)
    if value > FLOAT32_MAX:
        raise argparse.ArgumentTypeError(f"must be at most {FLOAT32_MAX:.4g} (float32), got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from xdrcdepth_core.device import add_device_argument
    from xdrcdepth_core.evaluation.evaluate import GT_KEYS

    parser.add_argument("--checkpoint", default="", help="checkpoint (default: the shipped one)")
    parser.add_argument("--data", required=True, type=path_argument, help="cache folder from `xdrcdepth prepare`")
    parser.add_argument("--gt", nargs="+", default=["auto"], choices=sorted(GT_KEYS),
                        help="ground truths to score against (default: auto = single-sweep LiDAR)")
    parser.add_argument("--caps", nargs="+", type=positive_float, default=list(DEFAULT_CAPS),
                        help="range caps in metres (default: 50 70 80)")
    parser.add_argument("--constant-depth", type=constant_depth, default=None,
                        help="depth of the constant baseline (default: the checkpoint's median training depth)")
    parser.add_argument("--panels", type=path_argument, help="write one PNG panel per frame into this folder")
    parser.add_argument("--max-panels", type=positive_int, default=20,
                        help="panels to write (default: %(default)s)")
    parser.add_argument("--teacher", default="", help="teacher checkpoint: its Grad-CAM in the panels")
    parser.add_argument("--json", type=path_argument, help="write all numbers to this JSON file")
    parser.add_argument("--limit", type=positive_int, default=None, help="first N frames only (default: all)")
    add_device_argument(parser)
    add_no_progress(parser)


class PanelWriteError(Exception):
    """A panel picture could not be written (``args``: the ``OSError`` and the picture's path): exit code 1 as
    any write error, not the 2 of an unreadable input file."""


def run(args: argparse.Namespace) -> int:
    from xdrcdepth_core.atomic import atomic_write_bytes
    from xdrcdepth_core.checkpoint import load_checkpoint
    from xdrcdepth_core.demo import write_png
    from xdrcdepth_core.file_names import token_file_name
    from xdrcdepth_core.data.cache_file import read_cache_file
    from xdrcdepth_core.evaluation.evaluate import cache_files, evaluate_cache, missing_ground_truth
    from xdrcdepth_core.evaluation.panels import evaluation_panel
    from xdrcdepth_core.infer import SHIPPED_CHECKPOINT, DepthEstimator

    problem = output_overlap({"--json": args.json, "--panels": args.panels},
                             {"--checkpoint": args.checkpoint, "--teacher": args.teacher, "--data": args.data})
    if problem:
        say(f"{PROG}: error: {problem}")
        return 2
    if args.teacher and args.panels is None:
        say(f"{PROG}: --teacher puts the teacher's Grad-CAM into the --panels pictures; it does nothing without "
            "--panels")
        return 2
    if args.panels is not None and (code := output_folder_problem(PROG, args.panels)):
        return code
    if args.json is not None and (code := output_file_problem(PROG, args.json)):
        return code
    try:
        estimator = DepthEstimator.from_checkpoint(args.checkpoint or None, device=args.device)
        teacher = DepthEstimator.from_checkpoint(args.teacher, device=args.device) if args.teacher else None
        path = args.checkpoint or (SHIPPED_CHECKPOINT if SHIPPED_CHECKPOINT.is_file() else "")
        metrics = load_checkpoint(path).get("metrics", {}) if path else {}
    except (OSError, ValueError) as exc:
        say(f"{PROG}: {exc}")
        return 2
    try:                            # before the model runs over every frame: the ground truth --gt names first
        first = cache_files(args.data, 1)[0]
        missing = missing_ground_truth(first, read_cache_file(first), args.gt[0])
    except (OSError, ValueError) as exc:
        say(f"{PROG}: {exc}")
        return 2
    if missing:
        say(f"{PROG}: {missing} for --gt {args.gt[0]} (cache {args.data}; 'exact' needs a synthetic folder's cache)")
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
        picture = args.panels / f"{index:04d}_{token_file_name(sample['token'])}.png"
        try:
            write_png(picture, rgb)
        except OSError as exc:      # an output error, not one of the data that evaluate_cache reports as such
            raise PanelWriteError(exc, picture) from exc

    start = time.monotonic()
    try:
        result = evaluate_cache(estimator, args.data, caps=args.caps, gts=args.gt, constant=constant,
                                limit=args.limit or 0, saliency_frames=args.max_panels if args.panels else 0,
                                on_frame=panel, progress=not args.no_progress)
    except PanelWriteError as exc:
        say(os_error_line(PROG, *exc.args))
        return 1
    except (OSError, ValueError) as exc:
        say(f"{PROG}: {exc}")
        return 2
    print(result.format_table())
    if args.json:
        report = {"checkpoint": str(path) or "untrained", "model_id": estimator.model_id, "data": str(args.data),
                  "frames": result.frames, "caps": list(result.caps), "gt": args.gt, "constant_depth": constant,
                  "protocol": "prediction at the model input size, bilinearly resized to the cached resolution, "
                              "scored on 1e-3 < gt < cap per image, averaged over images",
                  "results": result.results()}
        try:
            atomic_write_bytes(args.json, json.dumps(report, indent=1).encode())
        except OSError as exc:      # full or read-only disk
            say(os_error_line(PROG, exc, args.json))
            return 1
    gt = args.gt[0]
    cap = max(result.caps)
    if not result.images("model", gt, cap):
        say(f"{PROG}: no frame of {args.data} has {gt} ground truth within 0-{cap:g} m: nothing scored")
        return 1
    parts = [f"{name} {result.mae(name, gt, cap) / 1000:.3f} m" for name in result.rows if gt in result.rows[name]]
    print(f"eval: {result.frames} frames, MAE@{cap:g} m ({gt} GT): " + ", ".join(parts) +
          f"; {time.monotonic() - start:.0f} s" + (f"; panels -> {args.panels}" if args.panels else ""))
    return 0
