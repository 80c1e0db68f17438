"""``xdrcdepth prepare``: precompute one ``.npz`` per camera key frame of a nuScenes-format folder.

Each ``<sample token>.npz`` holds ``image`` (H x W x 3 uint8 RGB), ``radar`` (C x H x W float32, channel 0
= depth in metres, 0 = empty), ``radar_channels`` (C names), ``depth_gt`` (H x W float32 metres, 0 = no
ground truth; the single key-frame LiDAR sweep unless ``--lidar-sweeps`` asks for more), ``K`` (3 x 3),
``token`` and ``settings`` (JSON of the options that shaped the arrays), and

* ``boxes`` (N x 7 float32 ``x0, y0, x1, y1, range_m, vx, vy``; pixel-edge rectangles in the cached image,
  see :mod:`.boxes`; 0 x 7 without annotations);
* ``depth_gt_single`` (H x W float32) when ``--lidar-sweeps`` > 1: the key-frame sweep alone (evaluation GT);
* ``radar_confidence_gt`` (H x W uint8: 1 positive, 0 negative, 255 ignore; :mod:`.radar_confidence`) unless
  ``--no-confidence-gt``; all 255 for a sample without LiDAR;
* ``depth_exact`` (H x W float32, 0 = sky) when the folder has ``exact_depth/<camera token>.npy`` (synthetic).

``--unlabelled`` caches the frames as unlabelled ones, for distillation from a teacher beyond the labelled
frames (:func:`drop_labels`): camera and radar as usual, no ground truth of any kind (``depth_gt``,
``depth_gt_single`` and ``depth_exact`` all zero, ``radar_confidence_gt`` all 255, no ``boxes``), and samples
without LiDAR are kept. The files keep the keys of labelled ones, so both can share a folder; they are made
with their own settings, so a labelled file of the same sample is rebuilt, not reused.

``--resize H W`` stores everything at H x W (:class:`~.sample_transforms.Resize`; the confidence labels are made
at the camera resolution first and move with ``depth_gt``). Files are written atomically; a rerun skips
samples whose file passes the CRC check of every member, holds the keys the settings ask for and was made
with the same settings, so an interrupted run resumes, a changed option rebuilds and a corrupted file
(flipped bits, truncated) is rebuilt. Temporaries left by a killed run are removed at start.

Unknown ``--radar-channels`` names and camera/radar channels the folder does not have are errors (exit
code 2, one line), as are other bad arguments. Ctrl-C: one line, exit code 130 (finished files are
complete; rerun to resume). An unwritable output (read-only, full disk): one line naming the file and the
cause, exit code 1. An unreadable sample: one line naming its file, exit code 1 (``--skip-bad`` skips and counts
it; if it skipped every sample, exit code 1 too). A selection without any sample (no scene, or none with every
required channel) is an argument error, and no cache folder is made. Errors and notices go to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from xdrcdepth_core.atomic import atomic_writer, remove_stale_temporaries
from xdrcdepth_core.cli_args import (EXIT_INTERRUPTED, EXIT_USAGE, add_no_progress, interrupted_line, os_error_line,
                                     output_folder_problem, path_argument, positive_int, say)
from xdrcdepth_core.file_names import MAX_STEM, is_token_file_name, token_file_name
from xdrcdepth_core.imageio import DEFAULT_MAX_IMAGE_PIXELS

from .cache_file import open_npz, save_npz
from .nuscenes_dataset import NuScenesDepthDataset, NuScenesLoadError, UnknownChannelError, UnknownSceneError
from .radar import DEFAULT_CHANNELS
from .radar_channels import radar_channels_problem
from .radar_confidence import IGNORE
from .sample_transforms import Resize

PROG = "xdrcdepth prepare"

#: Keys of every cache file.
NPZ_KEYS = ("image", "radar", "radar_channels", "depth_gt", "K", "token", "settings", "boxes")
#: Optional keys: (name, dtype) in the order they are written.
OPTIONAL_KEYS: tuple[tuple[str, type], ...] = (("depth_gt_single", np.float32), ("radar_confidence_gt", np.uint8),
                                               ("depth_exact", np.float32))
#: Bumped when the cache layout changes, so files of an older layout are rebuilt.
CACHE_FORMAT = 2
#: zlib level of the npz members: 1 writes the 900 x 1600 real sample in half the time of numpy's default
#: (6) for ~10 % larger files (156 vs 326 ms, 2.0 vs 1.8 MiB, measured); ``np.load`` reads any level.
ZLIB_LEVEL = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataroot", required=True, type=path_argument,
                        help="nuScenes-format folder (holds <version>/ and samples/)")
    parser.add_argument("--version", default="v1.0-mini", help="table folder name (default: %(default)s)")
    parser.add_argument("--out", required=True, type=path_argument, help="cache folder for the .npz files (created)")
    scenes = parser.add_mutually_exclusive_group()
    scenes.add_argument("--split", default="all",
                        help="devkit split name (train, val, mini_train, ...) or 'all' (default); "
                             "falls back to all scenes when none of the split's scenes is present")
    scenes.add_argument("--scenes", nargs="+", metavar="NAME",
                        help="these scenes only, by scene name (your own train / val / test split of one folder); "
                             "a name the folder does not have is an error")
    parser.add_argument("--camera", default="CAM_FRONT", help="camera channel (default: %(default)s)")
    parser.add_argument("--radar", nargs="+", default=["RADAR_FRONT"], metavar="CHANNEL",
                        help="radar channels to rasterise together (default: RADAR_FRONT)")
    parser.add_argument("--radar-sweeps", type=positive_int, default=1,
                        help="radar key frame plus previous sweeps per radar (default: %(default)s)")
    parser.add_argument("--lidar-sweeps", type=positive_int, default=1,
                        help="LiDAR sweeps centred on the key frame for depth_gt; 1 = evaluation GT "
                             "(default: %(default)s)")
    parser.add_argument("--radar-channels", nargs="+", default=list(DEFAULT_CHANNELS), metavar="NAME",
                        help="raster channels: 'depth' first, then radar fields the networks take: rcs, vx_comp, "
                             "vy_comp, vx, vy (default: %(default)s)")
    parser.add_argument("--no-radar-filters", action="store_true",
                        help="keep all radar returns (default: the devkit's default filters)")
    parser.add_argument("--allow-missing-lidar", action="store_true",
                        help="also cache samples without LIDAR_TOP (depth_gt all zero)")
    parser.add_argument("--unlabelled", action="store_true",
                        help="cache the frames without any ground truth (LiDAR depth, confidence labels, boxes, "
                             "exact depth), for distillation on unlabelled frames; samples without LiDAR kept")
    parser.add_argument("--skip-bad", action="store_true",
                        help="count samples with unreadable files and go on (default: stop at the first)")
    parser.add_argument("--confidence-gt", action=argparse.BooleanOptionalAction, default=True,
                        help="write CaFNet's radar-confidence labels radar_confidence_gt (default: on)")
    parser.add_argument("--resize", nargs=2, type=positive_int, metavar=("H", "W"),
                        help="store every map at H x W (image bilinear, sparse maps moved, K and boxes scaled); "
                             "default: the camera's resolution")
    add_no_progress(parser)


def _settings(args: argparse.Namespace) -> str:
    unlabelled = {"unlabelled": True} if args.unlabelled else {}    # labelled caches keep their settings
    return json.dumps({**unlabelled, "format": CACHE_FORMAT, "camera": args.camera, "radar": list(args.radar),
                       "radar_sweeps": args.radar_sweeps, "lidar_sweeps": args.lidar_sweeps,
                       "radar_channels": list(args.radar_channels), "radar_filters": not args.no_radar_filters,
                       "confidence_gt": bool(args.confidence_gt),
                       "resize": list(args.resize) if args.resize else None,
                       "exact_depth": (Path(args.dataroot) / "exact_depth").is_dir()}, sort_keys=True)


def required_keys(settings: str) -> set[str]:
    """Keys a cache file made with ``settings`` holds (``depth_exact`` is optional per sample)."""
    options = json.loads(settings)
    keys = set(NPZ_KEYS)
    if options.get("lidar_sweeps", 1) > 1:
        keys.add("depth_gt_single")
    if options.get("confidence_gt"):
        keys.add("radar_confidence_gt")
    return keys


def cache_state(path: Path, settings: str) -> str:
    """``"cached"`` (complete, every member passes its CRC, made with ``settings``), ``"missing"``,
    ``"stale"`` (other settings or keys) or ``"corrupt"`` (unreadable or a CRC mismatch)."""
    if not path.is_file():
        return "missing"
    try:
        with zipfile.ZipFile(path) as archive:
            if archive.testzip() is not None:      # reads every member: CRC-32 and deflate stream checked
                return "corrupt"
        with open_npz(path) as npz:      # a hostile member is a file to rebuild, not an allocation
            fresh = required_keys(settings) <= set(npz.files) and str(npz["settings"]) == settings
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error):
        return "corrupt"
    return "cached" if fresh else "stale"


def cached(path: Path, settings: str) -> bool:
    """True if ``path`` is a complete, uncorrupted cache file made with ``settings``."""
    return cache_state(path, settings) == "cached"


def drop_labels(sample: dict) -> dict:
    """``sample`` as an unlabelled frame (``--unlabelled``): every ground truth emptied, its keys kept (a
    training folder may mix both, and a batch needs the same keys in every sample). ``depth_gt``,
    ``depth_gt_single`` and ``depth_exact`` all zero (no depth), ``radar_confidence_gt`` all ignore (255), no
    boxes; the image, radar and calibration are kept."""
    out = dict(sample)
    for key in ("depth_gt", "depth_gt_single", "depth_exact"):
        if key in sample:
            out[key] = np.zeros_like(sample[key])
    if "radar_confidence_gt" in sample:
        out["radar_confidence_gt"] = np.full_like(sample["radar_confidence_gt"], IGNORE)
    out["boxes"] = np.zeros((0, 7), dtype=np.float32)
    return out


def write_sample(path: Path, sample: dict, radar_channels: tuple[str, ...], settings: str) -> None:
    """Write one sample's arrays to ``path`` atomically (compressed npz); optional keys when present."""
    arrays = dict(image=sample["image"], radar=sample["radar"].astype(np.float32),
                  radar_channels=np.array(radar_channels), depth_gt=sample["depth_gt"].astype(np.float32),
                  K=np.asarray(sample["K"], dtype=np.float64), token=np.array(sample["token"]),
                  settings=np.array(settings),
                  boxes=np.asarray(sample.get("boxes", np.zeros((0, 7))), dtype=np.float32).reshape(-1, 7))
    for key, dtype in OPTIONAL_KEYS:
        if key in sample:
            arrays[key] = np.asarray(sample[key]).astype(dtype, copy=False)
    with atomic_writer(path) as f:
        save_npz(f, arrays, ZLIB_LEVEL)


def check_arguments(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments that argparse cannot see, or None."""
    # the channels a network takes (a black-box run: PCD fields such as ambig_state made a cache that training
    # refused only after a whole epoch, calling its files corrupt); depth first, each once
    if problem := radar_channels_problem(args.radar_channels):
        return f"--radar-channels: {problem}"
    if os.path.realpath(args.out) == os.path.realpath(args.dataroot):   # its .npz files went into the nuScenes root
        return f"--out {args.out} is the --dataroot folder: give the cache a folder of its own"
    if args.resize and args.resize[0] * args.resize[1] > DEFAULT_MAX_IMAGE_PIXELS:   # 100000 x 100000: OOM-killed
        return (f"--resize {args.resize[0]} {args.resize[1]} is {args.resize[0] * args.resize[1]} pixels, more than "
                f"{DEFAULT_MAX_IMAGE_PIXELS} (4096 x 4096, the largest image the node and the tools take)")
    return None


def run(args: argparse.Namespace) -> int:
    """Exit codes: 0 done, 1 unreadable input or unwritable output, 2 bad arguments, 130 SIGINT."""
    problem = check_arguments(args)
    if problem:
        say(f"{PROG}: error: {problem}")
        return EXIT_USAGE
    if code := output_folder_problem(PROG, Path(args.out)):     # before the tables are loaded
        return code
    counts = {"written": 0}
    try:
        return _run(args, counts)
    except KeyboardInterrupt:
        tqdm.write(interrupted_line(PROG, f"{counts['written']} files written in this run"), file=sys.stderr)
        return EXIT_INTERRUPTED


def _run(args: argparse.Namespace, counts: dict) -> int:
    out = Path(args.out)
    settings = _settings(args)
    try:
        dataset = NuScenesDepthDataset(args.dataroot, args.version, split=args.scenes or args.split,
                                       camera=args.camera,
                                       radar_sensors=args.radar, radar_sweeps=args.radar_sweeps,
                                       lidar_sweeps=args.lidar_sweeps, radar_channels=args.radar_channels,
                                       disable_radar_filters=args.no_radar_filters,
                                       require_lidar=not (args.allow_missing_lidar or args.unlabelled),
                                       transform=Resize(*args.resize) if args.resize else None,
                                       boxes=True, confidence_gt=args.confidence_gt, exact_depth=True)
    except (UnknownChannelError, UnknownSceneError, NuScenesLoadError) as exc:
        say(f"{PROG}: error: {exc}")
        return EXIT_USAGE
    except (AssertionError, OSError, ValueError) as exc:  # the devkit asserts on a missing table folder
        say(f"xdrcdepth prepare: cannot load {args.version} from {args.dataroot}: {exc}")
        return 1
    if len(dataset) == 0:           # nothing to write: no cache folder either (train would find it empty)
        lacking = ""
        if dataset.n_incomplete:
            hint = "" if args.allow_missing_lidar else "; --allow-missing-lidar keeps those without LiDAR"
            lacking = f" ({dataset.n_incomplete} lack a required channel{hint})"
        say(f"{PROG}: error: no samples to prepare in {args.dataroot} ({_selection(args, dataset)}){lacking}")
        return EXIT_USAGE
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        say(os_error_line(PROG, exc, out))
        return 1
    stale = remove_stale_temporaries(out, lambda target: target.endswith(".npz"))
    written = skipped = rebuilt = 0
    bad: list[str] = []
    for index, token in enumerate(tqdm(dataset.sample_tokens, desc="prepare", unit="sample", disable=args.no_progress)):
        path = out / f"{token_file_name(token)}.npz"
        # a token that is no plain file name ("../x" would write outside out) is an unusable sample
        state = cache_state(path, settings) if is_token_file_name(token) else "bad name"
        if state == "cached":
            skipped += 1
            continue
        if state == "corrupt":
            tqdm.write(f"xdrcdepth prepare: {path} is corrupt (CRC or format check failed): rebuilding it",
                       file=sys.stderr)
            rebuilt += 1
        try:
            if state == "bad name":
                raise ValueError("its token is no plain file name (letters, digits, _ - . only, no leading dot, "
                                 f"at most {MAX_STEM} characters), which the cache file is named by")
            sample = drop_labels(dataset[index]) if args.unlabelled else dataset[index]
        except (OSError, ValueError) as exc:
            if not args.skip_bad:
                tqdm.write(f"xdrcdepth prepare: sample {token}: {exc} (use --skip-bad to go on)", file=sys.stderr)
                return 1
            tqdm.write(f"xdrcdepth prepare: skipping sample {token}: {exc}", file=sys.stderr)
            bad.append(token)
            continue
        try:
            write_sample(path, sample, dataset.radar_channels, settings)
        except OSError as exc:   # read-only or full disk, no permission: nothing half-written is left
            tqdm.write(os_error_line(PROG, exc, path), file=sys.stderr)   # on its own line, not after the bar
            return 1
        written += 1
        counts["written"] = written
    extra = f", {rebuilt} corrupt rebuilt" if rebuilt else ""
    extra += f", {len(stale)} stale temporaries removed" if stale else ""
    print(f"xdrcdepth prepare: {len(dataset)} samples of {_selection(args, dataset)} -> {out}: {written} written, "
          f"{skipped} already cached, {len(bad)} unreadable skipped, "
          f"{dataset.n_incomplete} lacking a required channel{extra}")
    if written + skipped == 0:      # --skip-bad skipped every sample: the cache is empty
        say(f"{PROG}: no sample could be read ({len(bad)} unreadable): nothing cached in {out}")
        return 1
    return 0


def _selection(args: argparse.Namespace, dataset: NuScenesDepthDataset) -> str:
    """The samples' selection in words: the scenes named, or the split (and its fallback to all scenes)."""
    if args.scenes:
        return f"scenes {', '.join(dataset.scene_names)}"
    return f"split {args.split} (no such scenes here: all scenes)" if dataset.split_fallback else f"split {args.split}"
