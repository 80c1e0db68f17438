"""``xdrcdepth`` command line: one sub-command per module.

Each command lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``; the
module is imported only when its command runs, so ``xdrcdepth models`` never loads ROS and
``xdrcdepth launch`` never loads torch before it needs to. Bad arguments: one line on stderr, exit code 2
(:mod:`xdrcdepth_core.cli_args`).
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys

from xdrcdepth_core.cli_args import (EXIT_INTERRUPTED, EXIT_USAGE, ArgumentParser, MissingDependency,
                                     interrupted_line, interrupts_seen, say, sigint_held, stdout_to_devnull)

#: command name -> (module path, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("xdrcdepth_core.models.summary", "table of registered models: parameters and GFLOPs"),
    "bench": ("xdrcdepth_core.bench", "inference speed per model, size and backend, end to end, node path, "
              "radar; writes docs/benchmarks/inference.md and .json"),
    "export": ("xdrcdepth_core.backends.export", "export a checkpoint to ONNX or OpenVINO, verified against "
               "PyTorch on real frames"),
    "demo": ("xdrcdepth_core.demo", "run the student on a frame and write a colorized depth PNG"),
    "prepare": ("xdrcdepth_core.data.prepare", "precompute a .npz cache from a nuScenes-format folder"),
    "train": ("xdrcdepth_core.train.command", "train a model (teacher or student) from an experiment YAML"),
    "teacher-cache": ("xdrcdepth_core.train.teacher_cache", "cache a frozen teacher's depths and Grad-CAM maps"),
    "eval": ("xdrcdepth_core.evaluation.command", "metric table of a checkpoint with baselines, panels, JSON"),
    "build-data": ("xdrcdepth_core.experiments.benchmark_data", "render and prepare the synthetic benchmark "
                   "(train/val/test) from a data config"),
    "ablate": ("xdrcdepth_core.experiments.ablation", "run the KD ablation (resumable jobs) and write its report"),
    "synth": ("xdrcdepth_core.data.synthetic.command", "write a synthetic nuScenes-format folder"),
    "nuscenes2bag": ("xdrcdepth_ros.bag.nuscenes2bag", "convert a nuScenes-format folder into one rosbag2 per scene"),
    "launch": ("xdrcdepth_ros.tools.launcher", "run a launch graph (node + tools) from its .launch.py file, no ros2 launch needed"),
    "replay-demo": ("xdrcdepth_ros.bag.replay_demo", "replay a nuScenes scene through the depth node (launch graph), "
                    "record it and write depth pictures"),
    "replay-eval": ("xdrcdepth_ros.bag.replay_eval", "score a replay's recorded depth against the LiDAR of the "
                    "bag it played, with the radar-only baseline; four-panel pictures"),
    "bag-reindex": ("xdrcdepth_ros.bag.reindex", "finalise a bag whose recording was killed (as ros2 bag reindex)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="xdrcdepth", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, description=help_text).set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; ``argv=None``: this process's arguments, the program itself (``xdrcdepth``), which then
    ignores SIGINT once the command has returned (as :mod:`xdrcdepth_ros.entry_points` does for its batch
    programs): a Ctrl-C while the interpreter exits would end it in a traceback of whatever exit code it hit."""
    program = argv is None
    argv = sys.argv[1:] if program else argv
    parser = build_parser()
    # Parse the command name first, then let the command's module add its own arguments.
    known, _ = parser.parse_known_args(argv[:1] if argv and not argv[0].startswith("-") else argv)
    prog = f"xdrcdepth {known.command}"
    with interrupts_seen() as ctrl_c:
        try:
            with sigint_held():     # a library's import may swallow KeyboardInterrupt (xdrcdepth_ros.entry_points)
                module = importlib.import_module(known._module)
            cmd_parser = ArgumentParser(prog=prog, description=COMMANDS[known.command][1])
            module.add_arguments(cmd_parser)
            args = cmd_parser.parse_args(argv[1:])
            code = int(module.run(args) or 0)
            if program:
                signal.signal(signal.SIGINT, signal.SIG_IGN)    # raises a SIGINT still pending first: caught here
            return code
        except KeyboardInterrupt:
            # Ctrl-C where the command has no handler of its own (while torch loads, a model is built, ...)
            say(interrupted_line(prog))
            return EXIT_INTERRUPTED
        except MissingDependency as exc:   # tf2_msgs in a pip-only setup (xdrcdepth_ros.tf_messages)
            say(f"{prog}: {exc}")
            return EXIT_USAGE
        except BrokenPipeError:
            stdout_to_devnull()    # `xdrcdepth ablate --dry-run | head`: stop quietly, as cat does
            return 1
        except Exception:
            if not ctrl_c:
                raise
            # the KeyboardInterrupt came out as another error: Ctrl-C inside a lazy `import cv2` is numpy's
            # "ImportError: numpy._core.multiarray failed to import" (a black-box run: a 32-line traceback, exit 1)
            say(interrupted_line(prog))
            return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
