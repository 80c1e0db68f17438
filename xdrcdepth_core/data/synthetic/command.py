"""``xdrcdepth synth``: write a synthetic nuScenes-format folder (see :mod:`.writer` for its layout).

The folder is written whole or not at all: into a hidden temporary folder beside ``--out``
(:func:`xdrcdepth_core.atomic.temp_prefix` naming), renamed to ``--out`` when complete. A run that fails (full
disk) or is interrupted (Ctrl-C: exit 130) leaves no half-written dataset, which a rerun would refuse as "not
empty"; the temporary of a killed run is removed by the next run into the same ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

from xdrcdepth_core.cli_args import (add_no_progress, non_negative_int, os_error_line, output_folder_problem,
                                     path_argument, positive_float, positive_int, say)
from xdrcdepth_core.data.synthetic.conditions import CONDITIONS


def _conditions(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in CONDITIONS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"unknown condition(s) {unknown}; choose from {','.join(CONDITIONS)}")
    return names


def _version(text: str) -> str:
    """``--version``: the name of one folder inside ``--out`` (the table folder). A path would put the tables
    elsewhere: ``/abs`` replaces ``--out`` in the join, ``../x`` climbs out of it, ``""`` writes them into it."""
    if not text or text in (".", "..") or "/" in text or "\0" in text:
        raise argparse.ArgumentTypeError(f"must be one folder name such as v1.0-mini, got {text!r}")
    return text


#: Most key frames one scene may have (``--frames``, ``build-data``'s ``frames_per_scene``): a scene's readings are
#: scheduled in memory (~31 per key frame; 10**11 frames reached 5.7 GB and a MemoryError); nuScenes scenes have ~40.
MAX_KEYFRAMES = 10_000


def image_scale(text: str) -> float:
    """Camera image scale (argparse ``type``): 0.01 to 1 of nuScenes' 1600 x 900."""
    value = positive_float(text)
    if not 0.01 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0.01, 1], got {text!r}")
    return value


def keyframe_count(text: str) -> int:
    """Key frames per scene (argparse ``type``): 1 to :data:`MAX_KEYFRAMES`."""
    value = positive_int(text)
    if value > MAX_KEYFRAMES:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_KEYFRAMES}, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=path_argument, help="output folder (created; must be empty)")
    parser.add_argument("--scenes", type=positive_int, default=1, help="number of scenes (default: %(default)s)")
    parser.add_argument("--frames", type=keyframe_count, default=4,
                        help="key frames (2 Hz samples) per scene (default: %(default)s)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--image-scale", type=image_scale, default=1.0,
                        help="camera image size relative to nuScenes 1600x900, intrinsics scaled (default: 1)")
    parser.add_argument("--conditions", type=_conditions, default=("clear",),
                        help="comma list of clear,fog,night,rain; scene i uses entry i mod len (default: clear)")
    parser.add_argument("--camera-sweeps", action=argparse.BooleanOptionalAction, default=True,
                        help="also render the 12 Hz camera frames between key frames (default: on)")
    parser.add_argument("--version", type=_version, default="v1.0-mini",
                        help="table folder name (default: %(default)s)")
    add_no_progress(parser)


def run(args: argparse.Namespace) -> int:
    from xdrcdepth_core.data.synthetic.writer import SynthConfig

    if code := output_folder_problem("xdrcdepth synth", args.out):
        return code
    config = SynthConfig(out=args.out, scenes=args.scenes, keyframes=args.frames, seed=args.seed,
                         image_scale=args.image_scale, conditions=args.conditions,
                         camera_sweeps=args.camera_sweeps, version=args.version)
    start = time.monotonic()
    try:
        summary = synthesize_whole(config, progress=not args.no_progress)
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


def synthesize_whole(config, progress: bool = True) -> dict:
    """:func:`~.writer.synthesize` into ``<hidden temporary beside config.out>/<name>``, then renamed over
    ``config.out`` (absent or an empty folder, made first so that a file in the way fails before the work); the
    temporary, and ``config.out`` if made here, are removed when it fails (module docstring)."""
    from xdrcdepth_core.atomic import remove_stale_temporaries, temp_prefix
    from xdrcdepth_core.data.synthetic.writer import synthesize

    out = Path(config.out)
    if out.is_dir() and any(out.iterdir()):
        raise ValueError(f"{out}: output folder is not empty; choose a new folder")
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out.parent, lambda target: target == out.name)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(out), suffix=".tmp", dir=out.parent))
    try:
        config.out = tmp / out.name
        summary = synthesize(config, progress=progress)
        os.rename(config.out, out)      # over the empty folder (rename(2)); ENOTEMPTY if a file appeared in it
        made = False
        return summary
    finally:
        config.out = out
        shutil.rmtree(tmp, ignore_errors=True)
        if made:
            with contextlib.suppress(OSError):
                out.rmdir()
