"""``xdrcdepth build-data --config config/data/synthetic_benchmark.yaml``: the synthetic benchmark, one command.

For each split (train / val / test: separate scenes from separate seeds, every weather condition in every
split) it renders a synthetic nuScenes-format folder (``xdrcdepth synth``) and prepares its caches
(``xdrcdepth prepare``):

- ``train``: at the training input size (``--resize``), ``depth_gt`` = LiDAR accumulated over
  ``train_lidar_sweeps`` sweeps around the key frame (as the literature trains on accumulated LiDAR),
  ``depth_gt_single`` = the key-frame sweep, radar-confidence labels and boxes;
- ``val`` / ``test``: at the rendered resolution with the single key-frame sweep (the evaluation GT) and
  the renderer's exact depth (``depth_exact``) for a second, dense evaluation.

Resumable: a split's folder is rendered into ``<name>.partial/render`` and moved to ``<name>`` when complete;
an interrupted render is redone from scratch, and only a ``.partial`` folder holding this command's marker
file is removed (any other is left alone, with a one-line error); ``prepare`` skips cached samples. Output
paths are listed by :func:`benchmark_paths`, which experiment configs use.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from xdrcdepth_core.cli_args import EXIT_USAGE, os_error_line, path_argument, say, short_repr
from xdrcdepth_core.data.synthetic.command import MAX_KEYFRAMES
from xdrcdepth_core.imageio import DEFAULT_MAX_IMAGE_PIXELS
from xdrcdepth_core.share import shipped_file
from xdrcdepth_core.train.config import read_yaml_mapping

PROG = "xdrcdepth build-data"
#: the data ``--config`` builds by default (repository-relative: :func:`~xdrcdepth_core.share.shipped_file`)
DEFAULT_CONFIG = "config/data/synthetic_benchmark.yaml"
#: written first into every ``<split>.partial`` folder: what tells an interrupted render of ours from a user's folder
PARTIAL_MARKER = ".xdrcdepth-build-data-partial"

SPLITS = ("train", "val", "test")
KEYS = {"root", "image_scale", "conditions", "frames_per_scene", "input_hw", "train_lidar_sweeps", "radar_sweeps",
        "splits", "reason"}


def load_data_config(path: str | Path) -> dict:
    cfg = read_yaml_mapping(path, "data config")
    unknown = set(cfg) - KEYS
    missing = KEYS - {"reason"} - set(cfg)
    if unknown or missing:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
    problem = _data_config_problem(cfg)
    if problem:
        raise ValueError(f"{path}: {problem}")
    return cfg


def _count(value, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _data_config_problem(cfg: dict) -> str | None:
    """What makes a data config of the right keys unusable (wrong types or ranges), or None."""
    from xdrcdepth_core.data.synthetic.conditions import CONDITIONS

    if not isinstance(cfg["root"], str) or not cfg["root"]:
        return f"root must be a folder path, got {short_repr(cfg['root'])}"
    scale = cfg["image_scale"]
    if not (isinstance(scale, (int, float)) and not isinstance(scale, bool) and 0.01 <= scale <= 1):
        return f"image_scale must be a number in [0.01, 1] (of nuScenes' 1600 x 900), got {short_repr(scale)}"
    conditions = cfg["conditions"]
    if not (isinstance(conditions, list) and conditions and all(c in CONDITIONS for c in conditions)):
        return f"conditions must be a non-empty list of {', '.join(CONDITIONS)}, got {short_repr(conditions)}"
    for key in ("frames_per_scene", "train_lidar_sweeps", "radar_sweeps"):
        if not _count(cfg[key], 1):
            return f"{key} must be an integer >= 1, got {short_repr(cfg[key])}"
    if cfg["frames_per_scene"] > MAX_KEYFRAMES:
        return f"frames_per_scene must be at most {MAX_KEYFRAMES}, got {short_repr(cfg['frames_per_scene'])}"
    hw = cfg["input_hw"]
    if not (isinstance(hw, list) and len(hw) == 2 and all(_count(v, 1) and v % 32 == 0 for v in hw)):
        return f"input_hw must be two positive multiples of 32, got {short_repr(hw)}"
    if hw[0] * hw[1] > DEFAULT_MAX_IMAGE_PIXELS:
        return f"input_hw {hw} is {hw[0] * hw[1]} pixels, more than {DEFAULT_MAX_IMAGE_PIXELS} (4096 x 4096)"
    splits = cfg["splits"]
    if not isinstance(splits, dict) or set(splits) != set(SPLITS):
        return f"splits must be a mapping of {', '.join(SPLITS)}, got {short_repr(splits)}"
    for split, spec in splits.items():
        if not (isinstance(spec, dict) and set(spec) == {"scenes", "seed"} and _count(spec["scenes"], 1)
                and _count(spec["seed"], 0)):
            return f"splits.{split} must be {{scenes: N >= 1, seed: K >= 0}}, got {short_repr(spec)}"
    return None


def benchmark_paths(cfg: dict) -> dict[str, Path]:
    """``{"<split>_scenes": folder, "train": cache, "val": cache, "test": cache}``."""
    root = Path(cfg["root"])
    h, w = cfg["input_hw"]
    paths = {f"{split}_scenes": root / "scenes" / split for split in SPLITS}
    paths["train"] = root / "cache" / f"train_{h}x{w}"
    paths["val"] = root / "cache" / "val"
    paths["test"] = root / "cache" / "test"
    return paths


def _render(cfg: dict, split: str, folder: Path) -> None:
    from xdrcdepth_core.data.synthetic.writer import SynthConfig, synthesize

    if folder.is_dir():
        return
    partial = folder.with_name(folder.name + ".partial")
    marker = partial / PARTIAL_MARKER
    if partial.exists():
        if not marker.is_file():
            raise RuntimeError(f"{partial} exists but was not made by build-data (no {PARTIAL_MARKER}); "
                             "move it away and rerun")
        shutil.rmtree(partial)  # our own interrupted render
    partial.mkdir(parents=True)
    marker.write_text("an interrupted `xdrcdepth build-data` render; removed by the next run\n")
    spec = cfg["splits"][split]
    synthesize(SynthConfig(out=partial / "render", scenes=int(spec["scenes"]), keyframes=int(cfg["frames_per_scene"]),
                           seed=int(spec["seed"]), image_scale=float(cfg["image_scale"]),
                           conditions=tuple(cfg["conditions"]), camera_sweeps=False), progress=True)
    (partial / "render").rename(folder)
    shutil.rmtree(partial)


def run_prepare(args: list[str]) -> None:
    """``xdrcdepth prepare ARGS`` in this process; raises on a non-zero exit."""
    from xdrcdepth_core.data import prepare

    parser = argparse.ArgumentParser()
    prepare.add_arguments(parser)
    code = prepare.run(parser.parse_args(args))
    if code:
        raise RuntimeError(f"xdrcdepth prepare {' '.join(args)} failed (exit {code})")


def _prepare_split(cfg: dict, split: str, out: Path, *options: str) -> None:
    """``xdrcdepth prepare`` of the rendered ``split`` into ``out`` with the study's radar sweeps."""
    run_prepare(["--dataroot", str(benchmark_paths(cfg)[f"{split}_scenes"]), "--radar-sweeps",
                 str(cfg["radar_sweeps"]), "--out", str(out), *options])


def prepare_train(cfg: dict, out: Path, scene_names: list[str] | None = None, unlabelled: bool = False) -> None:
    """Cache the rendered train split (or only ``scene_names`` of it) at the training resolution, with the
    accumulated LiDAR ground truth (``unlabelled``: without any, ``prepare --unlabelled``); resumable like
    ``prepare`` (cached samples are kept)."""
    h, w = cfg["input_hw"]
    _prepare_split(cfg, "train", out, "--lidar-sweeps", str(cfg["train_lidar_sweeps"]), "--resize", str(h), str(w),
                   *(["--scenes", *scene_names] if scene_names else []), *(["--unlabelled"] if unlabelled else []))


def build(cfg: dict) -> dict[str, Path]:
    paths = benchmark_paths(cfg)
    for split in SPLITS:
        _render(cfg, split, paths[f"{split}_scenes"])
        if split == "train":
            prepare_train(cfg, paths["train"])
        else:
            _prepare_split(cfg, split, paths[split], "--no-confidence-gt")
    return paths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=path_argument, default=None,
                        help=f"data config (default: {DEFAULT_CONFIG} in the current folder, else the copy the "
                             "package installed)")


def run(args: argparse.Namespace) -> int:
    try:
        cfg = load_data_config(args.config or shipped_file(DEFAULT_CONFIG))
    except ValueError as exc:
        say(f"{PROG}: {exc}")
        return EXIT_USAGE
    start = time.monotonic()
    try:
        paths = build(cfg)
    except OSError as exc:          # read-only or full disk, a file in the way
        say(os_error_line(PROG, exc))
        return 1
    except RuntimeError as exc:     # prepare said why on the line before, or a .partial folder not ours
        say(f"{PROG}: {exc}")
        return 1
    counts = {split: len(list(paths[split].glob("*.npz"))) for split in SPLITS}
    print(f"build-data: train {counts['train']}, val {counts['val']}, test {counts['test']} samples in "
          f"{cfg['root']}, {time.monotonic() - start:.0f} s")
    return 0
