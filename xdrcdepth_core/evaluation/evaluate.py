"""Evaluation of a depth estimator on a ``prepare`` cache: the protocol, baselines and per-frame panels.

Protocol (the radar-camera depth literature, papers.md Sec. 3, as CaFNet's ``test.py``): each cached frame
goes through :meth:`DepthEstimator.estimate_raster` — the call the ROS node makes —, i.e. the image and
radar raster are resized to the model's input size, the prediction is resized (bilinear) back to the
cached resolution, and it is scored there against the ground-truth pixels
(:mod:`xdrcdepth_core.metrics`: valid ``1e-3 < gt < cap``, per image, then averaged over images) at
each cap (50 / 70 / 80 m). Ground truth ``auto`` is the single key-frame LiDAR sweep (``depth_gt_single``
where the cache holds an accumulated ``depth_gt`` beside it, else ``depth_gt``), as the literature
evaluates; ``exact`` is the synthetic renderer's dense depth (``depth_exact``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from xdrcdepth_core.data.cache_file import read_cache_file
from xdrcdepth_core.evaluation.baselines import constant_depth, radar_nearest_depth
from xdrcdepth_core.metrics import DEFAULT_CAPS, MetricAccumulator

#: ground-truth names -> cache keys tried in order
GT_KEYS = {"auto": ("depth_gt_single", "depth_gt"), "lidar": ("depth_gt",), "single": ("depth_gt_single",),
           "exact": ("depth_exact",)}


def cache_files(folder: str | Path, limit: int = 0) -> list[Path]:
    """The ``.npz`` files of a cache folder, sorted (the first ``limit`` if > 0); errors name the folder."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is not a folder (give the cache folder of `xdrcdepth prepare`)")
    if not folder.is_dir():
        raise FileNotFoundError(f"cache folder not found: {folder}")
    files = sorted(folder.glob("*.npz"))
    if not files:
        raise ValueError(f"{folder}: no .npz files (make them with `xdrcdepth prepare`)")
    return files[:limit] if limit > 0 else files


def ground_truth(sample: dict, name: str) -> np.ndarray | None:
    """The ground-truth map ``name`` (see :data:`GT_KEYS`) of a cached sample, None if it has none."""
    if name not in GT_KEYS:
        raise ValueError(f"unknown ground truth {name!r}; choose from {sorted(GT_KEYS)}")
    for key in GT_KEYS[name]:
        if key in sample:
            return sample[key]
    return None


def missing_ground_truth(path: str | Path, sample: dict, name: str) -> str | None:
    """``'<path>: no <keys>'`` when the cache file ``path`` (read as ``sample``) lacks the ground truth ``name``,
    else None. A cache holds the same keys in every file (``depth_exact`` only from synthetic folders), so its
    first file answers for the cache."""
    if ground_truth(sample, name) is None:
        return f"{path}: no {' or '.join(GT_KEYS[name])}"
    return None


@dataclass
class Evaluation:
    """Metrics per predictor and ground truth, plus the frames kept for pictures."""

    caps: tuple[float, ...]
    rows: dict = field(default_factory=dict)          # predictor -> gt name -> MetricAccumulator
    frames: int = 0
    examples: list = field(default_factory=list)

    def accumulator(self, predictor: str, gt: str) -> MetricAccumulator:
        return self.rows.setdefault(predictor, {}).setdefault(gt, MetricAccumulator(self.caps))

    def results(self) -> dict:
        """Plain dict ``{predictor: {gt: {"<cap>": {metric: value}}}}`` (JSON-ready; NaN -> None)."""
        def plain(v):
            return None if isinstance(v, float) and math.isnan(v) else v
        return {name: {gt: {f"{cap:g}": {k: plain(v) for k, v in row.items()} for cap, row in acc.results().items()}
                       for gt, acc in per_gt.items()} for name, per_gt in self.rows.items()}

    def mae(self, predictor: str = "model", gt: str = "auto", cap: float | None = None) -> float:
        cap = max(self.caps) if cap is None else cap
        return self.rows[predictor][gt].results()[cap]["mae"]

    def images(self, predictor: str = "model", gt: str = "auto", cap: float | None = None) -> int:
        """How many frames were scored (had a ground-truth pixel within ``cap``) for ``predictor`` and ``gt``."""
        cap = max(self.caps) if cap is None else cap
        return self.rows[predictor][gt].results()[cap]["images"]

    def format_table(self) -> str:
        lines = []
        for gt in dict.fromkeys(g for per_gt in self.rows.values() for g in per_gt):
            for name, per_gt in self.rows.items():
                if gt in per_gt:
                    lines.append(f"[{name}, ground truth: {gt}]")
                    lines.append(per_gt[gt].format_table())
        return "\n".join(lines)


def evaluate_cache(estimator, folder: str | Path, caps=DEFAULT_CAPS, gts=("auto",), constant: float | None = None,
                   limit: int = 0, keep: int = 0, saliency_frames: int = 0, progress: bool = True,
                   on_frame: Callable[[int, dict, dict], None] | None = None) -> Evaluation:
    """Score ``estimator`` (a :class:`~xdrcdepth_core.infer.DepthEstimator`) and the baselines on a cache.

    ``constant``: depth of the constant baseline (None: no constant row; the radar-only baseline then
    falls back to 0 m on frames without radar). ``keep``: the first frames' arrays are returned in
    ``examples`` (``saliency_frames`` of them with the model's Grad-CAM) for pictures. ``on_frame(index,
    sample, predictions)`` is called per frame (panels).
    """
    result = Evaluation(tuple(float(c) for c in caps))
    files = cache_files(folder, limit)
    for gt_name in gts:    # a row per predictor and ground truth even if no frame has it: 0 images, NaN
        for name in ("model", "radar_only") + (("constant",) if constant is not None else ()):
            result.accumulator(name, gt_name)
    for index, path in enumerate(tqdm(files, desc="eval", unit="frame", disable=not progress, leave=False)):
        sample = read_cache_file(path)
        channels = [str(c) for c in sample["radar_channels"]]
        raster = sample["radar"]
        if channels != list(estimator.radar_channels):
            raise ValueError(f"{path}: cached radar channels {channels} differ from the model's "
                             f"{list(estimator.radar_channels)}; prepare the cache with --radar-channels "
                             f"{' '.join(estimator.radar_channels)}")
        want_saliency = index < saliency_frames
        out = estimator.estimate_raster(sample["image"], raster, saliency=want_saliency)
        hw = sample["image"].shape[:2]
        predictions = {"model": out.depth,
                       "radar_only": radar_nearest_depth(raster[0], constant if constant is not None else 0.0)}
        if constant is not None:
            predictions["constant"] = constant_depth(hw, constant)
        for gt_name in gts:
            gt = ground_truth(sample, gt_name)
            if gt is None:
                continue
            for name, pred in predictions.items():
                result.accumulator(name, gt_name).update(pred, gt)
        result.frames += 1
        if index < keep:
            result.examples.append({"sample": sample, "depth": out.depth, "saliency": out.saliency,
                                    "radar_only": predictions["radar_only"]})
        if on_frame is not None:
            on_frame(index, sample, {**predictions, "saliency": out.saliency})
    return result
