"""Confidence-aware distillation after MonoTher-Depth (Zuo et al., RA-L 2025, arXiv 2504.16127; papers.md
5.2): ``laplacian_nll`` trains the teacher's depth confidence, ``confidence_kd`` weights the student's
distance to the teacher depth by it.

MonoTher-Depth treats its confidence c as an inverse scale (variance) of the depth error; our teacher
(CaFNet built with ``depth_confidence=True``) outputs ``"depth_confidence"`` c > 0 per pixel, the inverse
scale b^-1 of a Laplacian on its final depth.
"""

from __future__ import annotations

import torch
from torch import Tensor

from xdrcdepth_core.distill.base import DistillLoss
from xdrcdepth_core.distill.common import EPS, check_fraction, keep_lowest, weighted_mean
from xdrcdepth_core.distill.registry import register_loss

CONFIDENCE_HINT = "build the teacher with depth_confidence=True and train it with laplacian_nll"


@register_loss("laplacian_nll")
class LaplacianNLL(DistillLoss):
    """Teacher training of the depth confidence (MonoTher-Depth's confidence supervision, papers.md 5.2):
    ``L = mean(|d - gt| * c) - beta * mean(log c)`` over GT pixels without the largest ``drop_top`` share
    of errors (MonoTher-Depth: beta = 0.002, top-20 % ignored).

    For a fixed error e the minimiser is c = beta / |e|, so c is an inverse error in 1/m (about 0.002 for a
    1 m error): ``confidence_kd`` normalises it. Ours: the top-error share is dropped per image; ``log`` of c
    is floored at c = 1e-12; ``detach_depth`` (default true) stops the gradient into the depth, so this loss
    trains only the confidence head and the depth keeps its own loss (with beta = 0.002 the c-weighted
    error would otherwise be a second, tiny and error-down-weighting depth loss).
    """

    def __init__(self, beta: float = 0.002, drop_top: float = 0.2, detach_depth: bool = True):
        super().__init__()
        if not beta > 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        self.beta, self.detach_depth = float(beta), bool(detach_depth)
        self.drop_top = check_fraction(drop_top, "drop_top")

    def forward(self, student_out: dict, teacher_out: dict | None, batch: dict) -> Tensor:
        depth = self.need(student_out, "depth", "student_out")
        confidence = self.need(student_out, "depth_confidence", "student_out", CONFIDENCE_HINT)
        gt = self.need(batch, "depth_gt", "batch")
        error = ((depth.detach() if self.detach_depth else depth) - gt).abs()
        mask = keep_lowest(error, gt > 0, self.drop_top)
        return (weighted_mean(error * confidence, mask)
                - self.beta * weighted_mean(torch.log(confidence.clamp_min(EPS)), mask))


@register_loss("confidence_kd")
class ConfidenceKD(DistillLoss):
    """Confidence-weighted depth distillation (MonoTher-Depth's distillation term, papers.md 5.2):
    ``L = mean_mask( c * |d_T - d_S| )`` with the teacher's confidence c (no gradient) and a mask that drops
    the largest ``drop_top`` share (default 20 %) of ``|d_T - d_S|``. Needs no GT.

    Ours: c is divided by its mean over each image's mask, so the weights average 1 and the loss has the
    scale of an L1 in metres whatever the absolute scale of c (about beta / |error| after
    ``laplacian_nll``); the top share is dropped per image; MonoTher-Depth's other mask terms (feature
    similarity after warping, diff > 1e-2, c > 1e-3) have no counterpart here (one registered view; tiny
    diffs add almost nothing).
    """

    requires_teacher = True

    def __init__(self, drop_top: float = 0.2):
        super().__init__()
        self.drop_top = check_fraction(drop_top, "drop_top")

    def forward(self, student_out: dict, teacher_out: dict | None, batch: dict) -> Tensor:
        teacher_out = self.teacher(teacher_out)
        student, teacher = self.pair(student_out, teacher_out, "depth")
        confidence = self.need(teacher_out, "depth_confidence", "teacher_out", CONFIDENCE_HINT).detach()
        diff = (teacher - student).abs()
        mask = keep_lowest(diff, torch.ones_like(diff, dtype=torch.bool), self.drop_top)
        per_image_mean = (confidence * mask).sum(dim=(1, 2, 3), keepdim=True) / mask.sum(dim=(1, 2, 3), keepdim=True)
        return weighted_mean(diff * confidence / per_image_mean.clamp_min(EPS), mask)
