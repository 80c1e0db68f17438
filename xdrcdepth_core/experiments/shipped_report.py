"""The shipped student's report card: ``docs/results/shipped_student.md`` / ``.json``.

Written by ``xdrcdepth ablate --ship`` right after it writes the package checkpoint: where the checkpoint
comes from (variant, seed, the seeds compared on validation, the command that reproduces it), its size, its
held-out synthetic test metrics beside the radar-only and constant baselines (from the run's ``test.json``),
and the domain gap: the same checkpoint scored on the real nuScenes scene-0061 samples (``../shared``; only
key frames with a LiDAR sweep count) beside the same baselines, so the transfer from synthetic training to
real data is stated with numbers, not assumed.
"""

from __future__ import annotations

import datetime
import json
import tempfile
from pathlib import Path

from xdrcdepth_core.atomic import atomic_write_bytes

CAP = "80"


def evaluate_real_samples(checkpoint: Path, samples_dir: Path | None = None) -> dict | None:
    """``evaluate_cache`` results of ``checkpoint`` on the real samples (None when they are not present)."""
    from xdrcdepth_core.checkpoint import load_checkpoint
    from xdrcdepth_core.data.real_samples import DEFAULT_SAMPLES_DIR, assemble_real_samples
    from xdrcdepth_core.evaluation.evaluate import evaluate_cache
    from xdrcdepth_core.experiments.benchmark_data import run_prepare
    from xdrcdepth_core.infer import DepthEstimator

    samples_dir = Path(samples_dir or DEFAULT_SAMPLES_DIR)
    if not (samples_dir / "frames.json").is_file():
        return None
    with tempfile.TemporaryDirectory(prefix="xdrcdepth-real-") as tmp:
        root = assemble_real_samples(Path(tmp) / "real", samples_dir)
        cache = Path(tmp) / "cache"
        run_prepare(["--dataroot", str(root), "--version", "v1.0-mini", "--out", str(cache), "--no-confidence-gt",
                     "--allow-missing-lidar"])
        estimator = DepthEstimator.from_checkpoint(checkpoint, device="cpu", backend="torch", precision="fp32")
        constant = load_checkpoint(checkpoint)["metrics"].get("median_train_depth")
        result = evaluate_cache(estimator, cache, gts=("auto",), constant=constant, progress=False)
    return {"samples": str(samples_dir), "frames": result.frames, "constant_depth": constant,
            "results": result.results()}


def _row(label: str, metrics: dict) -> str:
    m = metrics[CAP]
    return (f"| {label} | {m['mae'] / 1000:.3f} | {m['rmse'] / 1000:.3f} | {m['abs_rel']:.4f} | "
            f"{m['delta1']:.4f} | {m['images']} |")


def _table(results: dict, gt: str) -> list[str]:
    lines = ["| predictor | MAE (m) | RMSE (m) | AbsRel | δ1 | images |", "|---|---|---|---|---|---|"]
    names = {"model": "shipped student", "radar_only": "radar only (nearest return)",
             "constant": "constant (median training depth)"}
    return lines + [_row(names.get(name, name), rows[gt]) for name, rows in results.items() if gt in rows]


def write_shipped_report(checkpoint: Path, test_json: Path, out_dir: Path, real: dict | None) -> str:
    """Write ``shipped_student.md`` / ``.json`` into ``out_dir``; returns a one-line summary."""
    from xdrcdepth_core.checkpoint import load_checkpoint

    metrics = load_checkpoint(checkpoint)["metrics"]
    test = json.loads(Path(test_json).read_text())["results"]
    size_mb = checkpoint.stat().st_size / 1e6
    ratio = test["radar_only"]["auto"][CAP]["mae"] / test["model"]["auto"][CAP]["mae"]
    report = {"checkpoint": checkpoint.name, "size_mb": round(size_mb, 2), "date": datetime.date.today().isoformat(),
              "variant": metrics.get("variant"), "seed": metrics.get("seed"),
              "seeds_compared": metrics.get("seeds_compared"), "seeds_planned": metrics.get("seeds_planned"),
              "reproduce": metrics.get("reproduce"), "synthetic_test": test, "real_samples": real}
    md = ["# Shipped student", "",
          f"`xdrcdepth_core/checkpoints/{checkpoint.name}` ({size_mb:.1f} MB, fp16 weights), written on "
          f"{report['date']} by `xdrcdepth ablate --ship`: variant `{report['variant']}`, seed {report['seed']}, the "
          f"best validation MAE among seeds {report['seeds_compared']} of the {report['seeds_planned']} planned.",
          f"Reproduce: `{report['reproduce']}`.", "",
          f"## Held-out synthetic test scenes (single-sweep LiDAR, 0-{CAP} m)", "", *_table(test, "auto"), "",
          f"The student's MAE is {ratio:.1f}x lower than the radar-only baseline's.", ""]
    if real is not None:
        real_ratio = real["results"]["radar_only"]["auto"][CAP]["mae"] / real["results"]["model"]["auto"][CAP]["mae"]
        const = real["results"].get("constant", {}).get("auto", {}).get(CAP, {}).get("mae")
        verdict = ("it beats both baselines" if real_ratio > 1 and (const is None or
                   real["results"]["model"]["auto"][CAP]["mae"] < const) else
                   "it does NOT beat every baseline there")
        md += [f"## Domain gap: real nuScenes samples (scene-0061, key frames with LiDAR, 0-{CAP} m)", "",
               *_table(real["results"], "auto"), "",
               f"The student was trained only on synthetic scenes (`xdrcdepth synth`); on the real frames {verdict}: "
               f"radar-only / student MAE = {real_ratio:.2f} (on synthetic test scenes: {ratio:.1f}). Expect real "
               "depth of this quality, not the synthetic numbers, until it is trained on real data "
               "(README: training on your own data).", ""]
    atomic_write_bytes(out_dir / "shipped_student.json", json.dumps(report, indent=1).encode())
    atomic_write_bytes(out_dir / "shipped_student.md", "\n".join(md).encode())
    return f"report -> {out_dir / 'shipped_student.md'}"
