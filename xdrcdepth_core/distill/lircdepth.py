"""LiRCDepth losses (Sun et al., ICASSP 2025, arXiv 2412.16380; papers.md 2.4, from the repo's
``main_student.py`` / ``models/losses.py``, facts only): ``lircdepth_pixel``, ``lircdepth_pair``,
``lircdepth_interdepth``, ``rectified_depth``.

Shared conventions (``common``): ``L1_w = sum(w |d - g|) / sum(w)`` pooled over the batch, per-scale
weights ``1 / 2^i`` with i = 0 for the first listed (coarsest / deepest) scale, LiRCDepth's relative error
``u = 1 - exp(-5 |a - b| / (a + b))``. Weights built from u are detached (ours: they select pixels, they
are not something the student should learn to change).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from xdrcdepth_core.distill.base import DistillLoss
from xdrcdepth_core.distill.common import (Adapters, as_layers, layer_key, relative_error_weight,
                                           scale_weights, weighted_l1)
from xdrcdepth_core.distill.registry import register_loss
from xdrcdepth_core.models.base import INTERMEDIATE_DEPTH_SCALES

#: encoder scales deepest first: the 1/32 feature gets weight 1 (papers.md 2.4)
PIXEL_SCALES = (32, 16, 8, 4, 2)
#: decoder scales coarsest first
PAIR_LAYERS = (("decoder", 16), ("decoder", 8), ("decoder", 4), ("decoder", 2))
#: LiRCDepth's validity threshold on depth maps (``> 0.01``)
MIN_DEPTH = 0.01


@register_loss("lircdepth_pixel")
class LiRCPixelKD(DistillLoss):
    """Pixel-wise feature distillation: ``sum_kind w_kind sum_i (1/2^i) L1(adapt(f_S^i), f_T^i)`` over the
    image and radar encoder features at 1/32 .. 1/2 (papers.md 2.4; ``image_weight`` = ``radar_weight`` = 1
    as ``w_image_feature_distill`` / ``w_radar_feature_distill``).

    LiRCDepth puts bias-free 1x1 Conv + ReLU adapters inside the student, sized for its teacher (radar ->
    64, 128, 128, 512, 512), which does not match our CaFNet (64, 64, 128, 256, 512). Ours: the adapters
    belong to the loss (``adapter: conv1x1``, one per kind and scale, channel counts read from the first
    student/teacher tensors, so any student/teacher pair works; the trainer optimises them with the
    student). They are plain 1x1 convs with bias and no ReLU (a linear map cannot die; the L1 does not need
    non-negative student features). ``adapter: none`` compares raw features (equal channels required), e.g.
    a LiRCDepth student whose built-in adapters already match the teacher. L1 = mean over elements.
    """

    requires_teacher = True

    def __init__(self, image_weight: float = 1.0, radar_weight: float = 1.0,
                 scales: Sequence[int] = PIXEL_SCALES, adapter: str | None = "conv1x1"):
        super().__init__()
        self.kinds = {kind: float(w) for kind, w in (("image", image_weight), ("radar", radar_weight)) if w}
        self.scales = [int(s) for s in scales]
        if not self.kinds or not self.scales:
            raise ValueError("lircdepth_pixel needs a non-zero image_weight or radar_weight and some scales")
        self.adapters = Adapters([layer_key((k, s)) for k in self.kinds for s in self.scales], adapter)

    def forward(self, student_out: dict, teacher_out: dict | None, batch: dict) -> Tensor:
        teacher_out = self.teacher(teacher_out)
        total = 0
        for kind, kind_weight in self.kinds.items():
            for weight, scale in zip(scale_weights(len(self.scales)), self.scales):
                student, teacher = self.pair(student_out, teacher_out, (kind, scale))
                adapted = self.adapters(layer_key((kind, scale)), student, teacher)
                total = total + kind_weight * weight * F.l1_loss(adapted, teacher)
        return total


def position_similarity(feature: Tensor, pool_scale: float) -> Tensor:
    """B x N x N cosine similarities between the N positions of ``feature`` after a max-pool whose kernel
    (and stride) is ``pool_scale`` x the map size (at least 1; ``ceil_mode``)."""
    h, w = feature.shape[-2:]
    kernel = (max(1, int(h * pool_scale)), max(1, int(w * pool_scale)))
    pooled = F.max_pool2d(feature, kernel, stride=kernel, ceil_mode=True).flatten(2)
    pooled = F.normalize(pooled, dim=1, eps=1e-8)
    return torch.einsum("bcm,bcn->bmn", pooled, pooled)


@register_loss("lircdepth_pair")
class LiRCPairKD(DistillLoss):
    """Pair-wise (similarity) distillation on decoder features (papers.md 2.4, structured-KD style):
    per stage, ``S = F^T F`` over the positions of the max-pooled (kernel = ``pool_scale`` = 0.2 x map size),
    channel-L2-normalised feature; ``loss = sum (S_T - S_S)^2 / N^2 / B``; stages weighted ``1 / 2^i``.

    Ours: the layers default to ("decoder", 16 / 8 / 4 / 2) with the coarsest first (weight 1); pooling comes
    before the normalisation (so S holds cosine similarities in [-1, 1]); the norm is not detached. S is
    N x N for any channel count, so no adapter is needed.
    """

    requires_teacher = True

    def __init__(self, pool_scale: float = 0.2, layers=PAIR_LAYERS):
        super().__init__()
        if not 0 < pool_scale <= 1:
            raise ValueError(f"pool_scale must be in (0, 1], got {pool_scale}")
        self.pool_scale = float(pool_scale)
        self.layers = as_layers(layers)

    def forward(self, student_out: dict, teacher_out: dict | None, batch: dict) -> Tensor:
        teacher_out = self.teacher(teacher_out)
        total = 0
        for weight, layer in zip(scale_weights(len(self.layers)), self.layers):
            student, teacher = self.pair(student_out, teacher_out, layer)
            difference = position_similarity(student, self.pool_scale) - position_similarity(teacher, self.pool_scale)
            total = total + weight * difference.pow(2).mean()
        return total


@register_loss("lircdepth_interdepth")
class LiRCInterDepthKD(DistillLoss):
    """Uncertainty-aware inter-depth distillation on the three intermediate depths (papers.md 2.4):
    ``u = (1 - exp(-5 |d_T - d_S| / (d_T + d_S))) [d_T > 0.01]``, ``loss = sum_i (1/2^i) L1_w(d_S^i, d_T^i; u)``.

    Ours: the maps are ("depth", 8), ("depth", 4), ("depth", 2) in that order (weights 1, 1/2, 1/4: the
    coarse-first order of the feature losses; the sources do not give the order for depths); u is detached.
    """

    requires_teacher = True

    def forward(self, student_out: dict, teacher_out: dict | None, batch: dict) -> Tensor:
        teacher_out = self.teacher(teacher_out)
        total = 0
        for weight, scale in zip(scale_weights(len(INTERMEDIATE_DEPTH_SCALES)), INTERMEDIATE_DEPTH_SCALES):
            student, teacher = self.pair(student_out, teacher_out, ("depth", scale))
            u = (relative_error_weight(teacher, student) * (teacher > MIN_DEPTH)).detach()
            total = total + weight * weighted_l1(student, teacher, u)
        return total


@register_loss("rectified_depth")
class RectifiedDepth(DistillLoss):
    """Uncertainty-rectified depth loss with two LiDAR GTs (papers.md 2.4): with the single-sweep GT g_s
    (``depth_gt_single``) and the accumulated GT g_i (``depth_gt``), ``m_s = g_s > 0.01``,
    ``m_i = (g_i > 0.01) & !m_s``, ``u_s = 1 - exp(-5 |g_s - d| / (g_s + d)) m_s``, likewise u_i with m_i,
    ``(w_i, w_s) = softmax(u_i, u_s)``, ``L = L1_w(d, g_i; m_i w_i) + L1_w(d, g_s; m_s w_s)``.

    The formula is taken as written: the mask multiplies the exponential, so outside its mask u = 1 and
    a pixel with only one GT weighs ``sigmoid(u - 1)`` in [0.27, 0.5), growing with the relative error.
    Ours: the weights are detached; applied to the final depth only.
    """

    def forward(self, student_out: dict, teacher_out: dict | None, batch: dict) -> Tensor:
        depth = self.need(student_out, "depth", "student_out")
        accumulated = self.need(batch, "depth_gt", "batch")
        single = self.need(batch, "depth_gt_single", "batch", "a cache with single-sweep LiDAR")
        mask_single = single > MIN_DEPTH
        mask_accumulated = (accumulated > MIN_DEPTH) & ~mask_single
        u_single = torch.where(mask_single, relative_error_weight(single, depth), 1.0)
        u_accumulated = torch.where(mask_accumulated, relative_error_weight(accumulated, depth), 1.0)
        w_accumulated = torch.sigmoid(u_accumulated - u_single).detach()   # softmax over the pair
        return (weighted_l1(depth, accumulated, mask_accumulated * w_accumulated)
                + weighted_l1(depth, single, mask_single * (1 - w_accumulated)))
