"""DKED-style losses (Huang, Li, Tao, ICASSP 2022; papers.md 5.3): ``dked_bounded``, ``dked_corr``.

DKED distils an oriented-box detector; its paper body (feature-correlation, response and teacher-bounded
terms) was not retrievable. ``dked_bounded`` follows the generic teacher-bounded regression rule DKED
likely builds on (Chen et al., NeurIPS 2017, "Learning Efficient Object Detection Models with Knowledge
Distillation", its bounded regression loss L_b; papers.md 5.3); ``dked_corr`` is our design of a
feature-correlation term.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from xdrcdepth_core.distill.base import AdaptedFeatureLoss, DistillLoss
from xdrcdepth_core.distill.common import weighted_mean
from xdrcdepth_core.distill.lircdepth import PAIR_LAYERS
from xdrcdepth_core.distill.registry import register_loss


@register_loss("dked_bounded")
class TeacherBoundedDepth(DistillLoss):
    """Teacher-bounded regression (Chen et al. 2017, bounded regression loss L_b): per GT pixel, ``L = |d_S - y|`` if
    ``|d_S - y| + m > |d_T - y|``, else 0; mean over the GT pixels (``depth_gt > 0``).

    The teacher is an upper bound: the student is pushed toward the GT only where it is not already better
    than the teacher by the margin m (``margin``, metres, default 0). Ours: absolute errors instead of
    Chen's squared L2 (depth errors are heavy-tailed; our supervised loss is L1 too); the mean counts every
    GT pixel, including the ones with zero loss; meant to be used with a supervised loss (Chen adds it to
    the regular regression loss).
    """

    requires_teacher = True

    def __init__(self, margin: float = 0.0):
        super().__init__()
        self.margin = float(margin)

    def forward(self, student_out: dict, teacher_out: dict | None, batch: dict) -> Tensor:
        teacher_out = self.teacher(teacher_out)
        student, teacher = self.pair(student_out, teacher_out, "depth")
        gt = self.need(batch, "depth_gt", "batch")
        student_error, teacher_error = (student - gt).abs(), (teacher - gt).abs()
        active = (student_error.detach() + self.margin > teacher_error)
        return weighted_mean(student_error * active, gt > 0)


def channel_correlation(feature: Tensor) -> Tensor:
    """B x C x C Pearson correlations between the channels of a B x C x h x w feature over its positions
    (each channel centred and L2-normalised over h x w; a constant channel correlates 0 with all)."""
    flat = feature.flatten(2)
    flat = F.normalize(flat - flat.mean(dim=2, keepdim=True), dim=2, eps=1e-8)
    return flat @ flat.transpose(1, 2)


@register_loss("dked_corr")
class FeatureCorrelationKD(AdaptedFeatureLoss):
    """Feature-correlation distillation (our design; DKED's formula is not available): for each decoder
    layer, the student feature passes a learned 1x1 adapter to the teacher's channel count, and the mean
    absolute difference between the student's and the teacher's channel-correlation matrices
    (:func:`channel_correlation`, C x C) is averaged over the layers (default ("decoder", 16 / 8 / 4 / 2)).

    Correlations, not raw Gram matrices: they are free of the features' scale (teacher and student
    activations differ by orders of magnitude) and bounded in [-1, 1], so the layers weigh alike. The
    adapter gives the student's channels the teacher's order and count (``adapter: none`` needs equal
    counts).
    """

    def __init__(self, layers=PAIR_LAYERS, adapter: str | None = "conv1x1"):
        super().__init__(layers, adapter)

    def forward(self, student_out: dict, teacher_out: dict | None, batch: dict) -> Tensor:
        total = 0
        for student, teacher in self.adapted_pairs(student_out, self.teacher(teacher_out)):
            total = total + F.l1_loss(channel_correlation(student), channel_correlation(teacher))
        return total / len(self.layers)
