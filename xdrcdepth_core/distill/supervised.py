"""Supervised losses against LiDAR and radar labels (no teacher): ``depth_l1``, ``silog``, ``smoothness``,
``radar_depth_l1``, ``radar_confidence_bce``.

They train the student alone or the teacher (CaFNet's radar stage). Means are pooled over the batch's
valid pixels (``common``); ``depth_gt > 0`` marks LiDAR pixels (contract: 0 = no GT).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from xdrcdepth_core.distill.base import DistillLoss
from xdrcdepth_core.distill.common import EPS, depth_keys, upsample_to, weighted_l1, weighted_mean
from xdrcdepth_core.distill.registry import register_loss
from xdrcdepth_core.preprocess import IMAGENET_STD


@register_loss("depth_l1")
class DepthL1(DistillLoss):
    """Masked L1 to the LiDAR depth, ``sum_{gt>0} |d - gt| / #(gt>0)`` (the ``reg_loss l1`` of LiRCDepth's
    argument file, papers.md 2.3).

    Ours: ``intermediate_weight`` (default 0) adds ``w * L1`` for each intermediate map ("depth", 8/4/2),
    which the models upsample to H x W, so they are compared with the full-resolution GT.
    """

    def __init__(self, intermediate_weight: float = 0.0):
        super().__init__()
        self.maps = depth_keys(intermediate_weight)

    def forward(self, student_out: dict, teacher_out: dict | None, batch: dict) -> Tensor:
        gt = self.need(batch, "depth_gt", "batch")
        return sum(w * weighted_l1(self.need(student_out, key, "student_out"), gt, gt > 0)
                   for w, key in self.maps)


@register_loss("silog")
class ScaleInvariantLog(DistillLoss):
    """Scale-invariant log loss (Eigen et al., NeurIPS 2014, Eq. 4) in the BTS form (Lee et al. 2019):
    with ``e = log d - log gt`` over GT pixels, ``L = scale * sqrt(mean(e^2) - lambda * mean(e)^2)``,
    ``lambda = 0.85`` ("variance focus") and ``scale = 10`` as BTS.

    Ours: the means are pooled over the batch (as BTS); the square root's argument is floored at 1e-12,
    so a perfect prediction gives 0 with a zero gradient instead of an infinite one.
    """

    def __init__(self, variance_focus: float = 0.85, scale: float = 10.0):
        super().__init__()
        if not 0 <= variance_focus <= 1:
            raise ValueError(f"variance_focus must be in [0, 1], got {variance_focus}")
        self.variance_focus, self.scale = float(variance_focus), float(scale)

    def forward(self, student_out: dict, teacher_out: dict | None, batch: dict) -> Tensor:
        depth = self.need(student_out, "depth", "student_out")
        gt = self.need(batch, "depth_gt", "batch")
        mask = gt > 0
        if not mask.any():
            return depth.sum() * 0
        error = torch.log(depth[mask]) - torch.log(gt[mask])
        value = error.pow(2).mean() - self.variance_focus * error.mean().pow(2)
        return self.scale * value.clamp_min(EPS).sqrt()


@register_loss("smoothness")
class EdgeAwareSmoothness(DistillLoss):
    """Edge-aware smoothness (monodepth2, Godard et al. ICCV 2019, ``get_smooth_loss``):
    ``mean |dx n| exp(-|dx I|) + mean |dy n| exp(-|dy I|)`` with ``n = d / mean(d)`` per image and
    ``|dx I|`` the channel mean of the absolute image gradient.

    Ours: applied to depth (monodepth2 uses disparity; LiRCDepth applies it to depth, weight 0.001); the
    ImageNet normalisation is undone on the gradients (x std per channel) so the edge weights see the
    [0, 1] image monodepth2 uses; the image is resized to the depth size when they differ.
    """

    def forward(self, student_out: dict, teacher_out: dict | None, batch: dict) -> Tensor:
        depth = self.need(student_out, "depth", "student_out")
        image = upsample_to(self.need(batch, "image", "batch"), depth.shape[-2:])
        image = image * image.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)  # the mean cancels in differences
        norm = depth / depth.mean(dim=(2, 3), keepdim=True)
        loss = 0
        for dim in (3, 2):
            grad_depth = norm.diff(dim=dim).abs()
            grad_image = image.diff(dim=dim).abs().mean(dim=1, keepdim=True)
            loss = loss + (grad_depth * torch.exp(-grad_image)).mean()
        return loss


@register_loss("radar_depth_l1")
class RadarDepthL1(DistillLoss):
    """Teacher training: masked L1 between CaFNet's coarse radar depth (stage 1, ``"radar_depth"``) and the
    LiDAR depth where ``depth_gt > 0``. CaFNet supervises this stage with LiDAR (papers.md 3.2); the
    choice of the accumulated GT (the batch's ``depth_gt``) and of L1 is ours."""

    def forward(self, student_out: dict, teacher_out: dict | None, batch: dict) -> Tensor:
        gt = self.need(batch, "depth_gt", "batch")
        radar_depth = self.need(student_out, "radar_depth", "student_out", "a model with a radar depth stage")
        return weighted_l1(radar_depth, gt, gt > 0)


@register_loss("radar_confidence_bce")
class RadarConfidenceBCE(DistillLoss):
    """Teacher training: binary cross-entropy with logits between ``"radar_confidence_logit"`` and the
    label map ``radar_confidence_gt`` (1 positive, 0 negative, -1 ignored), CaFNet's radar confidence
    supervision (papers.md 3.2). Logits, not probabilities: safe under autocast.

    Ours: mean over the non-ignored pixels of the batch; ``pos_weight`` (default 1) multiplies the positive
    term (``F.binary_cross_entropy_with_logits``), for the rare radar pixels that hit the LiDAR surface.
    """

    def __init__(self, pos_weight: float = 1.0):
        super().__init__()
        if not pos_weight > 0:
            raise ValueError(f"pos_weight must be > 0, got {pos_weight}")
        self.pos_weight = float(pos_weight)

    def forward(self, student_out: dict, teacher_out: dict | None, batch: dict) -> Tensor:
        logit = self.need(student_out, "radar_confidence_logit", "student_out", "a model with a radar confidence")
        label = self.need(batch, "radar_confidence_gt", "batch", "a cache with radar confidence labels")
        losses = F.binary_cross_entropy_with_logits(logit, label.clamp(0, 1).to(logit.dtype), reduction="none",
                                                    pos_weight=logit.new_tensor(self.pos_weight))
        return weighted_mean(losses, label >= 0)
