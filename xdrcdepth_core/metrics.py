"""Depth metrics of the radar-camera depth literature, per image then averaged over images.

Protocol (papers.md Sec. 3.1 / 3.2: CaFNet ``test.py``, Singh et al. ``eval_utils.py``):

- valid pixels: ``min_depth < gt < cap`` (strict on both sides, as CaFNet's ``min_max_mask``; the
  default ``min_depth`` = ``min_depth_eval`` = 1e-3 m also excludes gt == 0, i.e. no LiDAR return);
  non-finite gt values are invalid too;
- predictions are clipped to ``[min_depth, cap]``, +inf -> cap, NaN -> min_depth (CaFNet);
- per image: MAE and RMSE in **mm** (metres x 1000); iMAE and iRMSE in **1/km** (on 1 / (depth x 1e-3));
  AbsRel = mean(|gt - pred| / gt); SqRel = mean((gt - pred)^2 / gt) (metres, CaFNet's definition);
  delta_k = fraction of pixels with max(gt / pred, pred / gt) < 1.25^k (strict), k = 1, 2, 3;
- dataset value = mean of the per-image values over the images with at least one valid pixel (images
  without any are skipped and counted), separately for each cap (50 / 70 / 80 m in the literature).
"""

from __future__ import annotations

import math

import numpy as np

#: metric key -> (table header, unit)
METRICS = {
    "mae": ("MAE", "mm"), "rmse": ("RMSE", "mm"), "imae": ("iMAE", "1/km"), "irmse": ("iRMSE", "1/km"),
    "abs_rel": ("AbsRel", ""), "sq_rel": ("SqRel", "m"),
    "delta1": ("d<1.25", ""), "delta2": ("d<1.25^2", ""), "delta3": ("d<1.25^3", ""),
}
DEFAULT_CAPS = (50.0, 70.0, 80.0)
MIN_DEPTH_EVAL = 1e-3


def _as_image(array, what: str) -> np.ndarray:
    """A float64 H x W numpy copy of a numpy array or torch tensor (leading size-1 dims squeezed)."""
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    image = np.asarray(array, dtype=np.float64)
    while image.ndim > 2 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 2:
        raise ValueError(f"{what} must be one H x W depth map (leading size-1 dims allowed), got shape "
                         f"{np.shape(array)}")
    return image


def compute_depth_metrics(pred, gt, cap: float, min_depth: float = MIN_DEPTH_EVAL) -> dict[str, float] | None:
    """Metrics of one image (pred and gt in metres, same H x W) at range ``cap``; None if no valid gt pixel.

    The returned dict has the keys of :data:`METRICS` plus ``"valid_pixels"``.
    """
    pred, gt = _as_image(pred, "pred"), _as_image(gt, "gt")
    if pred.shape != gt.shape:
        raise ValueError(f"pred shape {pred.shape} != gt shape {gt.shape}")
    if not 0 <= min_depth < cap:
        raise ValueError(f"need 0 <= min_depth < cap, got min_depth={min_depth}, cap={cap}")
    valid = np.isfinite(gt) & (gt > min_depth) & (gt < cap)
    count = int(valid.sum())
    if count == 0:
        return None
    g = gt[valid]
    p = np.nan_to_num(pred[valid], nan=min_depth, posinf=cap, neginf=min_depth).clip(min_depth, cap)
    diff = g - p
    inverse_diff = 1e3 / g - 1e3 / p  # 1/km
    ratio = np.maximum(g / p, p / g)
    return {
        "mae": float(np.mean(np.abs(diff)) * 1e3),
        "rmse": float(math.sqrt(np.mean(diff**2)) * 1e3),
        "imae": float(np.mean(np.abs(inverse_diff))),
        "irmse": float(math.sqrt(np.mean(inverse_diff**2))),
        "abs_rel": float(np.mean(np.abs(diff) / g)),
        "sq_rel": float(np.mean(diff**2 / g)),
        "delta1": float(np.mean(ratio < 1.25)),
        "delta2": float(np.mean(ratio < 1.25**2)),
        "delta3": float(np.mean(ratio < 1.25**3)),
        "valid_pixels": count,
    }


class MetricAccumulator:
    """Averages per-image metrics over a dataset for several range caps."""

    def __init__(self, caps=DEFAULT_CAPS, min_depth: float = MIN_DEPTH_EVAL):
        if not caps:
            raise ValueError("need at least one cap")
        self.caps = tuple(float(c) for c in caps)
        self.min_depth = float(min_depth)
        self._sums = {cap: dict.fromkeys(METRICS, 0.0) for cap in self.caps}
        self.images = dict.fromkeys(self.caps, 0)
        self.skipped = dict.fromkeys(self.caps, 0)

    def update(self, pred, gt) -> None:
        """Add one image (H x W, leading size-1 dims allowed)."""
        for cap in self.caps:
            metrics = compute_depth_metrics(pred, gt, cap, self.min_depth)
            if metrics is None:
                self.skipped[cap] += 1
                continue
            self.images[cap] += 1
            for key in METRICS:
                self._sums[cap][key] += metrics[key]

    def update_batch(self, pred, gt) -> None:
        """Add a batch (B x 1 x H x W or B x H x W) image by image."""
        if len(pred) != len(gt):
            raise ValueError(f"batch sizes differ: pred {len(pred)}, gt {len(gt)}")
        for p, g in zip(pred, gt):
            self.update(p, g)

    def results(self) -> dict[float, dict[str, float]]:
        """``{cap: {metric: mean over images, "images": n, "skipped": m}}`` (metrics NaN if n == 0)."""
        out = {}
        for cap in self.caps:
            n = self.images[cap]
            means = {k: (s / n if n else float("nan")) for k, s in self._sums[cap].items()}
            out[cap] = {**means, "images": n, "skipped": self.skipped[cap]}
        return out

    def format_table(self) -> str:
        """Plain-text table: one row per cap, one column per metric (units in the header)."""
        headers = [f"{name} [{unit}]" if unit else name for name, unit in METRICS.values()]
        widths = [max(10, len(h)) for h in headers]
        lines = ["cap      images  " + "  ".join(h.rjust(w) for h, w in zip(headers, widths))]
        for cap, row in self.results().items():
            cells = []
            for key, width in zip(METRICS, widths):
                value = row[key]
                text = f"{value:.1f}" if METRICS[key][1] in ("mm", "1/km") else f"{value:.4f}"
                cells.append(text.rjust(width))
            lines.append(f"0-{cap:<5g}  {row['images']:>6}  " + "  ".join(cells))
        return "\n".join(lines)
