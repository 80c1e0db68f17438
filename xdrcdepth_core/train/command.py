"""``xdrcdepth train --config config/train/<name>.yaml [--resume] [--set key=value ...]``.

Trains the model the config names with its losses (see :mod:`xdrcdepth_core.train.config` for the keys);
``--resume`` continues an interrupted run from ``<out>/last.pt``. Multi-process (DDP):
``torchrun --nproc_per_node N -m xdrcdepth_core.cli train --config ...``.
Ends with one summary line; bad configs exit 2 with one line naming the key.
"""

from __future__ import annotations

import argparse

from xdrcdepth_core.cli_args import (EXIT_INTERRUPTED, EXIT_USAGE, add_no_progress, os_error_line, output_overlap,
                                     path_argument, say)

PROG = "xdrcdepth train"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=path_argument, help="experiment YAML")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/last.pt if it exists")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set optim.epochs=2 (repeatable)")
    add_no_progress(parser)


def run(args: argparse.Namespace) -> int:
    from xdrcdepth_core.train.config import ConfigError, resolve_config

    try:
        cfg = resolve_config(args.config, args.overrides)
    except ConfigError as exc:
        say(f"{PROG}: {exc}")
        return EXIT_USAGE
    # checkpoints and TensorBoard logs went into the training cache folder named as out (a black-box run)
    inputs = {"data.train": cfg["data"]["train"], "data.val": cfg["data"]["val"],
              "teacher.cache": cfg["teacher"]["cache"], "teacher.checkpoint": cfg["teacher"]["checkpoint"]}
    if problem := output_overlap({"out": cfg["out"]}, inputs):
        say(f"{PROG}: {args.config}: {problem.removeprefix('argument ')}")
        return EXIT_USAGE
    from xdrcdepth_core.train.distributed import shutdown
    from xdrcdepth_core.train.precision import emulated_bf16
    from xdrcdepth_core.train.teacher_cache import TeacherCacheFileError
    from xdrcdepth_core.train.trainer import OutFolderInUse, Trainer, TrainingDiverged

    try:
        trainer = Trainer(cfg, resume=args.resume, progress=not args.no_progress)
    except ConfigError as exc:          # a model or loss the registries do not build: the file holds the key
        say(f"{PROG}: {args.config}: {exc}")
        return EXIT_USAGE
    except (FileExistsError, FileNotFoundError, ValueError) as exc:
        say(f"{PROG}: {exc}")
        return EXIT_USAGE
    if trainer.dist.is_main and emulated_bf16(trainer.precision, trainer.device):
        say(f"{PROG}: warning: precision bf16 on a CPU without native bf16 (AVX512-BF16 or AMX) is emulated, "
            "about 8x slower than fp32; set precision: auto or fp32 unless the run must match bf16 runs")
    try:
        summary = trainer.fit()
    except KeyboardInterrupt:           # under torchrun every process gets the Ctrl-C: one line, from rank 0
        last = trainer.out / "last.pt"     # absent when the first epoch had not finished: nothing to point at
        if trainer.dist.is_main:
            say(f"{PROG}: interrupted; resume with --resume (" + (f"state of the last finished epoch is in {last})"
                                                                 if last.is_file() else "no epoch had finished yet)"))
        return EXIT_INTERRUPTED
    except OutFolderInUse as exc:       # the out folder is another run's now
        say(f"{PROG}: {exc}")
        return EXIT_USAGE
    except OSError as exc:              # out folder read-only, full, or a file in the way
        say(os_error_line(PROG, exc))
        return 1
    except TrainingDiverged as exc:
        last = trainer.out / "last.pt"
        say(f"{PROG}: {exc}; " + (f"{last} holds the last finished epoch: --resume with --set precision=fp32, or "
                                  "train anew with a lower optim.lr" if last.is_file()
                                  else "no epoch had finished: train anew with a lower optim.lr or precision fp32"))
        return 1
    except ConfigError as exc:          # found at the first step: a loss the model or teacher cache cannot feed
        say(f"{PROG}: {args.config}: {exc}")
        return EXIT_USAGE
    except ValueError as exc:           # a cache file (data or teacher outputs) found unreadable mid-run
        done = (trainer.out / "last.pt").is_file()
        remedy = ("rerun xdrcdepth teacher-cache with the same arguments, which computes such files anew"
                  if isinstance(exc, TeacherCacheFileError) else
                  "replace it, e.g. rerun xdrcdepth prepare, which rebuilds corrupt files")
        say(f"{PROG}: {exc} ({remedy}" + ("; then --resume continues from the last finished epoch)" if done else ")"))
        return EXIT_USAGE
    finally:
        shutdown(trainer.dist)
    if trainer.dist.is_main:
        mae = summary["best_val_mae_mm"]
        best = f"best val MAE {mae / 1000:.3f} m at epoch {summary['best_epoch']}" if mae == mae and mae < float("inf") \
            else "no validation"
        print(f"train {summary['name']}: {summary['epochs']} epochs, {best}, {summary['skipped_steps']} skipped steps, "
              f"{trainer.precision} on {trainer.device} x{trainer.dist.world_size}, {summary['seconds']:.0f} s "
              f"-> {summary['out']}/best.pt")
    return 0
