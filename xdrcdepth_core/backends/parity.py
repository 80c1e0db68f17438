"""Parity of a backend with the eager fp32 reference, on real frames: the gate for every export and for ``auto``.

:func:`check_parity` runs the reference (``torch`` fp32, the estimator's eager path) and a candidate on the same
preprocessed frames and compares depth maps at the model's resolution:

* ``fp32`` candidates (exported graphs, channels_last, compile): max |Δdepth| <= 1e-3 m over all pixels.
* reduced precisions (bf16, fp16, int8) of a **trained** model (``ParityTolerance(trained=True)``: what
  ``DepthEstimator.from_checkpoint``, ``xdrcdepth export`` and ``xdrcdepth bench`` use for checkpoint weights) on
  frames with ground truth: relative MAE change <= 1 % on the ground-truth pixels, the issue's rule. The mean
  |Δdepth| is reported beside it: bf16 rounding alone moves a trained student's depth by ~1 % per pixel on
  average (OpenVINO bf16 1.2 %, int8 3.7 %, with MAE changes of 0.05 % and 0.10 % on the val cache:
  docs/benchmarks/inference_student_val.md), which a user of the depth cannot tell from the model's own error.
* reduced precisions of an **untrained** model (the default), or on frames without ground truth: mean
  |Δdepth| <= 1 % of the mean reference depth, and the MAE change <= 1 % where there is ground truth. An
  untrained model's MAE against LiDAR is dominated by being untrained, so an MAE change alone would let
  almost anything pass; the mean |Δ| bound is the stated tolerance for it.

A trained checkpoint reuses the same function on its validation cache::

    est = DepthEstimator.from_checkpoint("best.pt", device="cpu", backend="openvino", precision="int8")
    reference = create_backend("torch", est.model, est.input_hw, est.radar_channels, "cpu", "fp32")
    frames, _ = frames_for("caches/val", est.radar_channels, limit=0)
    report = check_parity(reference, est.backend, frames, "int8", est.input_hw, est.radar_channels,
                          ParityTolerance(trained=True))

(``xdrcdepth export ... --frames caches/val`` does the same for an artefact it writes.)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from xdrcdepth_core.backends.frames import Frame
from xdrcdepth_core.preprocess import depth_to_input_resolution

Runner = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ParityTolerance:
    fp32_max_abs_m: float = 1e-3          # fp32: max |Δdepth| in metres
    reduced_rel_mae_change: float = 0.01  # reduced precision: |MAE - MAE_ref| / MAE_ref on GT pixels
    reduced_rel_mean_abs: float = 0.01    # reduced precision, untrained or no GT: mean |Δdepth| / mean ref depth
    trained: bool = False                 # trained weights: on GT frames the MAE change alone decides
    cap_m: float = 80.0                   # GT pixels scored: 1e-3 < gt < cap (the evaluation protocol)


@dataclass
class ParityReport:
    precision: str
    frames: int
    max_abs_m: float
    mean_abs_m: float
    mean_depth_m: float
    gt_pixels: int
    mae_ref_m: float
    mae_m: float
    passed: bool
    rule: str
    tolerance: dict = field(default_factory=dict)

    @property
    def rel_mean_abs(self) -> float:
        return self.mean_abs_m / self.mean_depth_m if self.mean_depth_m > 0 else math.inf

    @property
    def rel_mae_change(self) -> float:
        if not self.gt_pixels or not self.mae_ref_m > 0:
            return math.nan
        return abs(self.mae_m - self.mae_ref_m) / self.mae_ref_m

    def to_dict(self) -> dict:
        return {**asdict(self), "rel_mean_abs": self.rel_mean_abs,
                "rel_mae_change": None if math.isnan(self.rel_mae_change) else self.rel_mae_change}

    def summary(self) -> str:
        mae = (f", MAE {self.mae_m:.3f} vs {self.mae_ref_m:.3f} m ({100 * self.rel_mae_change:.3f} % change)"
               if self.gt_pixels else "")
        return (f"{'PASS' if self.passed else 'FAIL'} {self.precision} on {self.frames} frames: max |Δ| "
                f"{self.max_abs_m:.2e} m, mean |Δ| {self.mean_abs_m:.2e} m ({100 * self.rel_mean_abs:.3f} % of "
                f"{self.mean_depth_m:.2f} m){mae}; rule: {self.rule}")


def check_parity(reference: Runner, candidate: Runner, frames: Sequence[Frame], precision: str,
                 input_hw: tuple[int, int], radar_channels, tolerance: ParityTolerance = ParityTolerance(),
                 device: str = "cpu", batch: int = 1) -> ParityReport:
    """Compare ``candidate`` with ``reference`` on ``frames`` (module docstring has the rules). ``batch``: the
    inputs a graph of that static batch size takes at once; each frame fills every slot (all are compared, the
    ground-truth MAE uses the first): a graph exported with ``--batch 2`` failed on single frames."""
    if not frames:
        raise ValueError("parity needs at least one frame")
    max_abs, abs_sum, ref_sum, pixels = 0.0, 0.0, 0.0, 0
    err_ref, err_cand, gt_pixels = 0.0, 0.0, 0
    for frame in frames:
        image, radar = (t.to(device).expand(batch, -1, -1, -1).contiguous()
                        for t in frame.inputs(input_hw, radar_channels))
        with torch.inference_mode():
            ref = reference(image, radar).float()
            cand = candidate(image, radar).float().to(ref.device)
        if cand.shape != ref.shape:
            raise ValueError(f"candidate depth {tuple(cand.shape)} differs in shape from {tuple(ref.shape)}")
        diff = (cand - ref).abs()
        # NaN stays NaN (and fails): Python's max(0.0, nan) is 0.0, which passed a NaN depth as a perfect match
        frame_max = float(diff.max())
        max_abs = frame_max if math.isnan(frame_max) else max(max_abs, frame_max)
        abs_sum += float(diff.double().sum())
        ref_sum += float(ref.double().sum())
        pixels += diff.numel()
        if frame.depth_gt is not None:
            gt = torch.from_numpy(frame.depth_gt).to(ref.device)
            valid = (gt > 1e-3) & (gt < tolerance.cap_m)
            if valid.any():
                hw = tuple(frame.depth_gt.shape)
                r = depth_to_input_resolution(ref, hw)[0, 0].clamp(max=tolerance.cap_m)
                c = depth_to_input_resolution(cand, hw)[0, 0].clamp(max=tolerance.cap_m)
                err_ref += float((r - gt).abs()[valid].double().sum())
                err_cand += float((c - gt).abs()[valid].double().sum())
                gt_pixels += int(valid.sum())
    report = ParityReport(
        precision=precision, frames=len(frames), max_abs_m=max_abs, mean_abs_m=abs_sum / pixels,
        mean_depth_m=ref_sum / pixels, gt_pixels=gt_pixels,
        mae_ref_m=err_ref / gt_pixels if gt_pixels else math.nan,
        mae_m=err_cand / gt_pixels if gt_pixels else math.nan, passed=False, rule="",
        tolerance=asdict(tolerance))
    if precision == "fp32":
        report.rule = f"max |Δ| <= {tolerance.fp32_max_abs_m:g} m"
        report.passed = bool(np.isfinite(max_abs) and max_abs <= tolerance.fp32_max_abs_m)
    elif gt_pixels and tolerance.trained:
        report.rule = f"MAE change <= {100 * tolerance.reduced_rel_mae_change:g} % (trained model)"
        report.passed = bool(report.rel_mae_change <= tolerance.reduced_rel_mae_change)
    else:
        report.rule = f"mean |Δ| <= {100 * tolerance.reduced_rel_mean_abs:g} % of mean depth"
        report.passed = bool(report.rel_mean_abs <= tolerance.reduced_rel_mean_abs)
        if gt_pixels:
            report.rule += f" and MAE change <= {100 * tolerance.reduced_rel_mae_change:g} %"
            report.passed = report.passed and bool(report.rel_mae_change <= tolerance.reduced_rel_mae_change)
    return report
