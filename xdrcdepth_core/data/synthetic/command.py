"""``xdrcdepth synth``: write a synthetic nuScenes-format folder (see :mod:`.writer` for its layout)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from xdrcdepth_core.cli_args import add_no_progress, os_error_line, positive_float, positive_int, say
from xdrcdepth_core.data.synthetic.conditions import CONDITIONS


def _conditions(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in CONDITIONS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"unknown condition(s) {unknown}; choose from {','.join(CONDITIONS)}")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, help="output folder (created; must be empty)")
    parser.add_argument("--scenes", type=positive_int, default=1, help="number of scenes (default: %(default)s)")
    parser.add_argument("--frames", type=positive_int, default=4,
                        help="key frames (2 Hz samples) per scene (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--image-scale", type=positive_float, default=1.0,
                        help="camera image size relative to nuScenes 1600x900, intrinsics scaled (default: 1)")
    parser.add_argument("--conditions", type=_conditions, default=("clear",),
                        help="comma list of clear,fog,night,rain; scene i uses entry i mod len (default: clear)")
    parser.add_argument("--camera-sweeps", action=argparse.BooleanOptionalAction, default=True,
                        help="also render the 12 Hz camera frames between key frames (default: on)")
    parser.add_argument("--version", default="v1.0-mini", help="table folder name (default: %(default)s)")
    add_no_progress(parser)


def run(args: argparse.Namespace) -> int:
    from xdrcdepth_core.data.synthetic.writer import SynthConfig, synthesize

    config = SynthConfig(out=args.out, scenes=args.scenes, keyframes=args.frames, seed=args.seed,
                         image_scale=args.image_scale, conditions=args.conditions,
                         camera_sweeps=args.camera_sweeps, version=args.version)
    start = time.monotonic()
    try:
        summary = synthesize(config, progress=not args.no_progress)
    except ValueError as exc:
        say(f"xdrcdepth synth: {exc}")
        return 2
    except OSError as exc:       # an output folder that cannot be made or written
        say(os_error_line("xdrcdepth synth", exc, args.out))
        return 1
    conditions = ",".join(sorted({s["condition"] for s in summary["scenes"]}))
    h, w = summary["image_hw"]
    print(f"synth: {len(summary['scenes'])} scene(s) x {summary['keyframes_per_scene']} key frames, "
          f"{summary['readings']} readings, {w}x{h} images, conditions {conditions}, "
          f"{time.monotonic() - start:.1f} s -> {args.out}")
    return 0
