"""The ablation's saliency figure: teacher vs directly trained student vs X-KD student on the same test frames.

XD-RCDepth (Sec. IV, Fig. 4) shows that after X-KD the student's Grad-CAM is sharper and closer to the
teacher's. We show it and put numbers on both claims, per model over the same test frames:

- *concentration*: the share of a map's mass in its top 10 % of pixels (map = ReLU Grad-CAM, Eq. 2, w.r.t.
  the mean predicted depth, at ``decoder:4``, summed to 1; 0.1 for a flat map, 1.0 when all mass sits in
  10 % of the image) — our measure of "sharper";
- *agreement with the teacher*: Pearson correlation of a student's map with the teacher's on the same frame.

The maps are those :meth:`DepthEstimator.estimate_raster` returns with ``saliency=True`` (the node's and the
demo's Grad-CAM), so the figure shows what a user of the package sees.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: share of pixels whose mass "concentration" reports
TOP_SHARE = 0.10


def concentration(saliency: np.ndarray, top: float = TOP_SHARE) -> float:
    """Share of the map's total mass in its ``top`` fraction of pixels (``top`` for a flat map)."""
    flat = np.sort(np.asarray(saliency, np.float64).ravel())[::-1]
    total = flat.sum()
    if total <= 0:
        return float("nan")
    return float(flat[:max(1, int(round(top * flat.size)))].sum() / total)


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two maps (nan if either is constant)."""
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    a, b = a - a.mean(), b - b.mean()
    norm = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / norm) if norm > 0 else float("nan")


def saliency_study(checkpoints: dict[str, Path], test_cache: Path, frames: int = 40, shown: int = 3,
                   figure: Path | None = None, reference: str = "teacher") -> dict:
    """Grad-CAM of each checkpoint on the first ``frames`` test frames; returns per model the mean
    concentration and (students) the mean agreement with ``reference``; draws the first ``shown`` frames
    into ``figure`` (rows: frames; columns: image with radar, then each model's saliency overlay)."""
    from xdrcdepth_core.data.cache_file import read_cache_file
    from xdrcdepth_core.evaluation.evaluate import cache_files
    from xdrcdepth_core.infer import DepthEstimator

    estimators = {label: DepthEstimator.from_checkpoint(path, device="cpu", backend="torch", precision="fp32")
                  for label, path in checkpoints.items()}
    files = cache_files(test_cache, frames)
    maps: dict[str, list[np.ndarray]] = {label: [] for label in estimators}
    samples = []
    for path in files:
        sample = read_cache_file(path)
        for label, estimator in estimators.items():
            maps[label].append(estimator.estimate_raster(sample["image"], sample["radar"], saliency=True).saliency)
        if len(samples) < shown:
            samples.append(sample)
    stats = {}
    for label, per_frame in maps.items():
        entry = {"concentration_top10": _finite_mean([concentration(m) for m in per_frame])}
        if label != reference and reference in maps:
            entry["agreement_with_teacher"] = _finite_mean([agreement(m, t)
                                                            for m, t in zip(per_frame, maps[reference])])
        stats[label] = entry
    if figure is not None:
        _draw(samples, {label: per_frame[:len(samples)] for label, per_frame in maps.items()}, stats, figure)
    return {"frames": len(files), "layer": "decoder:4", "target": "mean predicted depth", "models": stats}


def _finite_mean(values: list[float]) -> float:
    """Mean over the frames whose value is defined; NaN, without numpy's 'Mean of empty slice' warning, when none
    is (a flat map, e.g. an untrained model's, has no concentration or correlation)."""
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _draw(samples: list[dict], maps: dict[str, list[np.ndarray]], stats: dict, figure: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from xdrcdepth_core.visualize import draw_points, overlay_saliency

    columns = ["image + radar", *maps]
    fig, axes = plt.subplots(len(samples), len(columns), figsize=(3.2 * len(columns), 1.9 * len(samples) + 0.6),
                             squeeze=False)
    for row, sample in enumerate(samples):
        image, radar = sample["image"], sample["radar"][0]
        rows, cols = np.nonzero(radar)
        panels = [draw_points(image, np.column_stack([cols, rows]), radar[rows, cols], 80.0, radius=2)]
        panels += [overlay_saliency(image, per_frame[row]) for per_frame in maps.values()]
        for col, (ax, picture) in enumerate(zip(axes[row], panels)):
            ax.imshow(picture)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                label = columns[col]
                if label in stats:
                    s = stats[label]
                    label += f"\ntop-10 % mass {s['concentration_top10']:.2f}"
                    if "agreement_with_teacher" in s:
                        label += f", r(teacher) {s['agreement_with_teacher']:.2f}"
                ax.set_title(label, fontsize=8)
    fig.tight_layout()
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=110)
    plt.close(fig)
