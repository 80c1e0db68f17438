"""``dkd``: depth-distribution distillation of XD-RCDepth (arXiv 2510.13565; papers.md 1.5).

Paper (secondary source, symbols stripped): the depth range is split into bins with centres c_k; for each
pixel the deviations ``e_k = |d - c_k|`` of the (teacher or student) depth are negated into logits and a
temperature softmax gives ``p_k = softmax_k(-|d - c_k| / T)``; the student is trained with the KL divergence
to the teacher's distribution, ``KL(p_T || p_S)``. The soft labels come from the scalar depth outputs, not
from a bin-classification head, and no GT is needed.

Ours (not found in the sources): ``bins`` (default 64), ``spacing`` (default ``uniform``), range
[``min_depth``, ``max_depth``] = [0, 100] m (the models' max depth), ``temperature`` T = 1 m, KL averaged
over all pixels of the batch, and optional intermediate maps (``intermediate_weight`` x KL on each of
("depth", 8/4/2)). Bin centres from K + 1 edges:
- ``uniform``: equal-width edges, centres at the midpoints;
- ``log``: geometric edges (needs min_depth > 0), centres at the geometric means;
- ``sid``: DORN's spacing-increasing discretisation (Fu et al., CVPR 2018, Eq. 1) with DORN's shift
  xi = 1 - min_depth: edges ``exp(i / K * log(max_depth + xi)) - xi``, centres at the midpoints.
A depth beyond the outermost centres shifts all logits equally there, so the loss is flat outside
[c_1, c_K] (it never pulls the student outside the modelled range).

``region`` (ours, an investigation of the ablation: docs/results/ablation/notes.md): ``all`` (default, the
paper's every pixel) or ``lidar_rows``, the image rows from the topmost row with ground truth
(``batch["depth_gt"]``) down, per image, so that the teacher's depth where the LiDAR never reaches (sky, far
background above the scan) is no target; an image without ground truth keeps every row. The KL is then
averaged over the kept pixels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from xdrcdepth_core.distill.base import DistillLoss
from xdrcdepth_core.distill.common import depth_keys
from xdrcdepth_core.distill.registry import register_loss

SPACINGS = ("uniform", "log", "sid")
REGIONS = ("all", "lidar_rows")


def bin_centers(spacing: str, bins: int, min_depth: float, max_depth: float) -> Tensor:
    """K bin centres (float64, ascending) for ``spacing`` in :data:`SPACINGS` over [min_depth, max_depth]."""
    if spacing not in SPACINGS:
        raise ValueError(f"unknown spacing {spacing!r}; choose one of {', '.join(SPACINGS)}")
    if int(bins) < 2 or not 0 <= min_depth < max_depth:
        raise ValueError(f"need bins >= 2 and 0 <= min_depth < max_depth, got {bins}, {min_depth}, {max_depth}")
    steps = torch.linspace(0, 1, int(bins) + 1, dtype=torch.float64)
    if spacing == "uniform":
        edges = min_depth + (max_depth - min_depth) * steps
        return (edges[:-1] + edges[1:]) / 2
    if spacing == "log":
        if min_depth <= 0:
            raise ValueError("log spacing needs min_depth > 0")
        edges = torch.exp(math.log(min_depth) + (math.log(max_depth) - math.log(min_depth)) * steps)
        return torch.sqrt(edges[:-1] * edges[1:])
    shift = 1.0 - min_depth
    edges = torch.exp(steps * math.log(max_depth + shift)) - shift
    return (edges[:-1] + edges[1:]) / 2


def depth_distribution_log(depth: Tensor, centers: Tensor, temperature: float) -> Tensor:
    """``log softmax_k(-|d - c_k| / T)``: B x K x H x W from a B x 1 x H x W depth map."""
    return F.log_softmax(-(depth - centers.view(1, -1, 1, 1)).abs() / temperature, dim=1)


@register_loss("dkd")
class DepthDistributionKD(DistillLoss):
    """``KL(p_T || p_S)`` between per-pixel soft depth-bin distributions of teacher and student (see the
    module docstring for the paper's formula and our choices)."""

    requires_teacher = True

    def __init__(self, bins: int = 64, spacing: str = "uniform", min_depth: float = 0.0,
                 max_depth: float = 100.0, temperature: float = 1.0, intermediate_weight: float = 0.0,
                 region: str = "all"):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if region not in REGIONS:
            raise ValueError(f"unknown region {region!r}; choose one of {', '.join(REGIONS)}")
        self.region = region
        self.register_buffer("centers", bin_centers(spacing, bins, min_depth, max_depth).float(), persistent=False)
        self.temperature = float(temperature)
        self.maps = depth_keys(intermediate_weight)

    def forward(self, student_out: dict, teacher_out: dict | None, batch: dict) -> Tensor:
        teacher_out = self.teacher(teacher_out)
        top = self.top_gt_row(batch) if self.region == "lidar_rows" else None
        total = 0
        for weight, key in self.maps:
            student, teacher = self.pair(student_out, teacher_out, key)
            centers = self.centers.to(student.dtype)
            log_s = depth_distribution_log(student, centers, self.temperature)
            log_t = depth_distribution_log(teacher, centers, self.temperature)
            kl = (log_t.exp() * (log_t - log_s)).sum(dim=1)                      # B x H x W
            if top is None:
                total = total + weight * kl.mean()
                continue
            rows = (torch.arange(kl.shape[1], device=kl.device, dtype=top.dtype) + 0.5) / kl.shape[1]
            keep = (rows[None, :] >= top[:, None])[:, :, None].expand_as(kl).to(kl.dtype)
            total = total + weight * (kl * keep).sum() / keep.sum()
        return total

    def top_gt_row(self, batch: dict) -> Tensor:
        """Per image, the top edge of its topmost ground-truth row as a fraction of the height (0 without GT)."""
        gt = self.need(batch, "depth_gt", "batch", "region: lidar_rows")
        has = (gt > 0).any(dim=1).any(dim=-1)                      # B x H: rows with ground truth
        return has.double().argmax(dim=1).double() / gt.shape[-2]  # argmax: the first such row (0 if none)
