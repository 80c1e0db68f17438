"""CRKD losses (Zhao et al., CVPR 2024, arXiv 2403.19104; papers.md 5.1) moved from BEV detection to
image-plane depth: ``crkd_relation``, ``crkd_mask_feature``, ``crkd_response``.

CRKD works on bird's-eye-view grids of a LiDAR+camera teacher and a camera+radar student; here both
networks give image-plane feature maps at the same scales, so the terms apply to same-scale features
(default ``("fused", 8)``, the fusion output, as CRKD's fused BEV features) and to the depth output.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from xdrcdepth_core.distill.base import AdaptedFeatureLoss, DistillLoss
from xdrcdepth_core.distill.common import EPS, boxes_mask, depth_keys, upsample_to, weighted_mean
from xdrcdepth_core.distill.registry import register_loss

DEFAULT_LAYERS = (("fused", 8),)
#: clamp of CRKD's box enlargement in metres
GROW_LIMITS = (0.5, 4.0)


def box_growth(boxes: Tensor, K: Tensor) -> Tensor:
    """B x N x 2 total enlargement (x, y) in pixels of image-plane boxes by CRKD's rule (papers.md 5.1).

    ``boxes`` B x N x 7 [x0, y0, x1, y1, range_m, vx, vy]; ``K`` B x 3 x 3. CRKD enlarges the box size by
    +25 % at range 20-30 m and +50 % at >= 30 m, plus +25 % at 0.3 < |v| < 0.8 m/s and +50 % at |v| >= 0.8 m/s,
    the enlargement clamped to [0.5, 4.0] m. Ours: the metric box size is ``pixels * range / f`` (pinhole,
    fx for width, fy for height; the box's range stands for its depth); CRKD's per-axis velocity rule has
    no image-plane axis, so the speed ``|(vx, vy)|`` counts for both axes; boxes with no added fraction (or
    range <= 0) are not enlarged (the 0.5 m floor applies only to enlarged boxes); the enlargement is
    converted back with ``metres * f / range`` and split evenly between both sides.
    """
    x0, y0, x1, y1, distance, vx, vy = boxes[..., :7].unbind(-1)
    speed = torch.hypot(vx, vy)
    fraction = (torch.where(distance >= 30, 0.5, torch.where(distance >= 20, 0.25, 0.0))
                + torch.where(speed >= 0.8, 0.5, torch.where(speed > 0.3, 0.25, 0.0)))
    focal = torch.stack([K[:, 0, 0], K[:, 1, 1]], dim=-1)[:, None, :]          # B x 1 x 2
    safe = distance.clamp_min(EPS)[..., None]
    size_m = torch.stack([x1 - x0, y1 - y0], dim=-1) * safe / focal
    grow_m = (fraction[..., None] * size_m).clamp(*GROW_LIMITS)
    active = ((fraction > 0) & (distance > 0))[..., None]
    return torch.where(active, grow_m * focal / safe, torch.zeros_like(grow_m))


def affinity(feature: Tensor) -> Tensor:
    """B x N x N ``F^T F / C`` over the N positions of a B x C x h x w feature."""
    flat = feature.flatten(2)
    return torch.einsum("bcm,bcn->bmn", flat, flat) / flat.shape[1]


@register_loss("crkd_relation")
class CRKDRelation(AdaptedFeatureLoss):
    """Relation (affinity) distillation (CRKD ``Affinity_Loss``, papers.md 5.1): the student feature passes
    an adapter (Conv3x3-ReLU-Conv1x1), both features are bilinearly resized to each of ``sizes`` (CRKD: 32,
    16, 8, 4 on its square BEV grid), ``A = F^T F`` over the positions, and ``L1(A_S, A_T)`` is summed over
    the sizes.

    Ours: a size is the target height, the width follows the map's aspect ratio (32 -> 32 x 64 for a 2:1
    map); A is divided by the channel count C (the teacher's, after the adapter) so its scale does not grow
    with C; L1 is the mean over A's entries; layers are averaged; the adapter maps to the teacher's
    channels (read from the tensors; see ``common.Adapters``) and runs once at the feature resolution,
    before the resizing.
    """

    def __init__(self, layers=DEFAULT_LAYERS, sizes: Sequence[int] = (32, 16, 8, 4),
                 adapter: str | None = "conv3x3_relu_conv1x1"):
        super().__init__(layers, adapter)
        self.sizes = [int(s) for s in sizes]
        if not self.sizes or min(self.sizes) < 1:
            raise ValueError(f"sizes must be positive heights, got {list(sizes)}")

    def forward(self, student_out: dict, teacher_out: dict | None, batch: dict) -> Tensor:
        total = 0
        for student, teacher in self.adapted_pairs(student_out, self.teacher(teacher_out)):
            h, w = teacher.shape[-2:]
            for height in self.sizes:
                size = (height, max(1, round(height * w / h)))
                total = total + F.l1_loss(affinity(upsample_to(student, size)), affinity(upsample_to(teacher, size)))
        return total / len(self.layers)


@register_loss("crkd_mask_feature")
class CRKDMaskFeature(AdaptedFeatureLoss):
    """Foreground feature distillation (CRKD ``Mask_Feat_Loss_Clip`` with ``scale_mask``, papers.md 5.1):
    ``0.5 (f_S - f_T)^2`` averaged over channels, summed over the foreground pixels and divided by their
    number; foreground = the union of the 2D boxes of ``batch["boxes"]`` enlarged by CRKD's rule
    (:func:`box_growth`; ``enlarge: false`` uses the plain boxes).

    Ours: the mask is rasterised at each feature's resolution (pixel centres inside a box); CRKD's extra
    ``/ batch`` and its "teacher feature != 0" condition (empty BEV cells) are dropped (image features have
    no empty cells; the mean over foreground pixels does not depend on the batch size); a batch without any
    foreground pixel gives 0; a learned 1x1 adapter (``adapter: conv1x1``) maps the student to the
    teacher's channels; layers are averaged.
    """

    def __init__(self, layers=DEFAULT_LAYERS, enlarge: bool = True, adapter: str | None = "conv1x1"):
        super().__init__(layers, adapter)
        self.enlarge = bool(enlarge)

    def forward(self, student_out: dict, teacher_out: dict | None, batch: dict) -> Tensor:
        teacher_out = self.teacher(teacher_out)
        hint = "a cache with boxes"
        boxes = self.need(batch, "boxes", "batch", hint)
        valid = self.need(batch, "boxes_valid", "batch", hint)
        grow = box_growth(boxes, self.need(batch, "K", "batch")) if self.enlarge else None
        image_size = self.need(batch, "image", "batch").shape[-2:]
        total = 0
        for student, teacher in self.adapted_pairs(student_out, teacher_out):
            mask = boxes_mask(boxes.to(teacher.dtype), valid, teacher.shape[-2:], image_size, grow)
            total = total + weighted_mean(0.5 * (student - teacher).pow(2).mean(dim=1, keepdim=True), mask)
        return total / len(self.layers)


@register_loss("crkd_response")
class CRKDResponse(DistillLoss):
    """Response distillation on the depth output (CRKD's box-regression response term ``loss_bbox_soft``,
    SmoothL1 with beta = 1, papers.md 5.1): ``mean SmoothL1_beta(d_S - d_T)`` over all pixels; no GT.

    Ours: the depth map stands for CRKD's box regression (CRKD's quality-focal class term has no
    counterpart: no classes); ``intermediate_weight`` adds ("depth", 8/4/2) with that weight each.
    """

    requires_teacher = True

    def __init__(self, beta: float = 1.0, intermediate_weight: float = 0.0):
        super().__init__()
        if not beta > 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        self.beta = float(beta)
        self.maps = depth_keys(intermediate_weight)

    def forward(self, student_out: dict, teacher_out: dict | None, batch: dict) -> Tensor:
        teacher_out = self.teacher(teacher_out)
        return sum(w * F.smooth_l1_loss(*self.pair(student_out, teacher_out, key), beta=self.beta)
                   for w, key in self.maps)
