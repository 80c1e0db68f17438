"""``xdrcdepth prepare``: precompute one ``.npz`` per camera key frame of a nuScenes-format folder.

Each ``<sample token>.npz`` holds ``image`` (H x W x 3 uint8 RGB), ``radar`` (C x H x W float32, channel 0
= depth in metres, 0 = empty), ``radar_channels`` (C names), ``depth_gt`` (H x W float32 metres, 0 = no
ground truth; the single key-frame LiDAR sweep unless ``--lidar-sweeps`` asks for more), ``K`` (3 x 3),
``token`` and ``settings`` (JSON of the options that shaped the arrays). Files are written atomically; a
rerun skips samples whose file loads and was made with the same settings, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import zipfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from xdrcdepth_core.atomic import atomic_writer

from .nuscenes_dataset import NuScenesDepthDataset
from .radar import DEFAULT_CHANNELS

NPZ_KEYS = ("image", "radar", "radar_channels", "depth_gt", "K", "token", "settings")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataroot", required=True, help="nuScenes-format folder (holds <version>/ and samples/)")
    parser.add_argument("--version", default="v1.0-mini", help="table folder name (default: %(default)s)")
    parser.add_argument("--out", required=True, help="cache folder for the .npz files (created)")
    parser.add_argument("--split", default="all",
                        help="devkit split name (train, val, mini_train, ...) or 'all' (default); "
                             "falls back to all scenes when none of the split's scenes is present")
    parser.add_argument("--camera", default="CAM_FRONT", help="camera channel (default: %(default)s)")
    parser.add_argument("--radar", nargs="+", default=["RADAR_FRONT"], metavar="CHANNEL",
                        help="radar channels to rasterise together (default: RADAR_FRONT)")
    parser.add_argument("--radar-sweeps", type=_positive_int, default=1,
                        help="radar key frame plus previous sweeps per radar (default: %(default)s)")
    parser.add_argument("--lidar-sweeps", type=_positive_int, default=1,
                        help="LiDAR sweeps centred on the key frame for depth_gt; 1 = evaluation GT "
                             "(default: %(default)s)")
    parser.add_argument("--radar-channels", nargs="+", default=list(DEFAULT_CHANNELS), metavar="NAME",
                        help="raster channels: 'depth' and radar PCD field names (default: %(default)s)")
    parser.add_argument("--no-radar-filters", action="store_true",
                        help="keep all radar returns (default: the devkit's default filters)")
    parser.add_argument("--allow-missing-lidar", action="store_true",
                        help="also cache samples without LIDAR_TOP (depth_gt all zero)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="count samples with unreadable files and go on (default: stop at the first)")


def _settings(args: argparse.Namespace) -> str:
    return json.dumps({"camera": args.camera, "radar": list(args.radar), "radar_sweeps": args.radar_sweeps,
                       "lidar_sweeps": args.lidar_sweeps, "radar_channels": list(args.radar_channels),
                       "radar_filters": not args.no_radar_filters}, sort_keys=True)


def cached(path: Path, settings: str) -> bool:
    """True if ``path`` is a complete cache file made with ``settings``."""
    if not path.is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as npz:
            return set(NPZ_KEYS) <= set(npz.files) and str(npz["settings"]) == settings
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return False


def write_sample(path: Path, sample: dict, radar_channels: tuple[str, ...], settings: str) -> None:
    """Write one sample's arrays to ``path`` atomically (compressed npz)."""
    with atomic_writer(path) as f:
        np.savez_compressed(f, image=sample["image"], radar=sample["radar"].astype(np.float32),
                            radar_channels=np.array(radar_channels), depth_gt=sample["depth_gt"].astype(np.float32),
                            K=np.asarray(sample["K"], dtype=np.float64), token=np.array(sample["token"]),
                            settings=np.array(settings))


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    settings = _settings(args)
    try:
        dataset = NuScenesDepthDataset(args.dataroot, args.version, split=args.split, camera=args.camera,
                                       radar_sensors=args.radar, radar_sweeps=args.radar_sweeps,
                                       lidar_sweeps=args.lidar_sweeps, radar_channels=args.radar_channels,
                                       disable_radar_filters=args.no_radar_filters,
                                       require_lidar=not args.allow_missing_lidar)
    except (AssertionError, OSError, ValueError) as exc:  # the devkit asserts on a missing table folder
        print(f"xdrcdepth prepare: cannot load {args.version} from {args.dataroot}: {exc}")
        return 1
    written = skipped = 0
    bad: list[str] = []
    for index, token in enumerate(tqdm(dataset.sample_tokens, desc="prepare", unit="sample")):
        path = out / f"{token}.npz"
        if cached(path, settings):
            skipped += 1
            continue
        try:
            sample = dataset[index]
        except (OSError, ValueError) as exc:
            if not args.skip_bad:
                tqdm.write(f"xdrcdepth prepare: sample {token}: {exc} (use --skip-bad to go on)")
                return 1
            tqdm.write(f"xdrcdepth prepare: skipping sample {token}: {exc}")
            bad.append(token)
            continue
        write_sample(path, sample, dataset.radar_channels, settings)
        written += 1
    split = f"{args.split} (no such scenes here: all scenes)" if dataset.split_fallback else args.split
    print(f"xdrcdepth prepare: {len(dataset)} samples of split {split} -> {out}: {written} written, "
          f"{skipped} already cached, {len(bad)} unreadable skipped, "
          f"{dataset.n_incomplete} lacking a required channel")
    return 0
