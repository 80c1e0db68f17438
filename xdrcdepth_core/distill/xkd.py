"""``xkd``: explainability-aligned distillation of XD-RCDepth (arXiv 2510.13565; papers.md 1.4).

Paper: the student is trained to reproduce the teacher's Grad-CAM saliency (Selvaraju et al., Eq. 1-2:
``alpha_c = mean_ij dy/dA_c``, ``L = ReLU(sum_c alpha_c A_c)``). Target, layers, normalisation, distance and
weight are not public; everything below that goes beyond Grad-CAM itself is ours.

Per layer pair (student layer, teacher layer; same spatial size, no channel adapters: the maps are
single-channel, so the layers' widths may differ):
1. maps ``M = sum_c alpha_c A_c`` (:func:`xdrcdepth_core.saliency.grad_cam_raw`). The student's map is
   taken per image from its own target (``per_sample``, default true: train-mode BatchNorm couples the
   images of a batch) and keeps the double-backward graph (``create_graph``), so the loss trains the
   student's parameters through both A and alpha. The teacher's map is computed on the teacher's autograd
   graph without parameter gradients and detached, from the summed target by default
   (``teacher_per_sample: false``: exact for the frozen teacher, which the trainer runs in ``eval()``, and
   B times cheaper; set it true for a teacher in train mode), or read from
   ``teacher_out[("saliency", layer)]`` (a teacher cache's raw signed map; it must have been written with
   the same target);
2. ``relu`` (default false): Grad-CAM's ReLU keeps only evidence that raises the target; for the mean depth
   that drops what makes the image nearer (near objects), so by default the signed map is kept;
3. normalisation per image over the h x w positions: ``sum`` (default) divides by ``sum |M|``, which for
   non-negative maps is the spatial distribution of the saliency; ``l2`` divides by ``||M||_2``. Both are
   scale-free (the two networks' raw maps differ in scale by orders of magnitude) and stable for any map
   with some mass; min-max normalisation is not offered (a near-constant map is blown up to [0, 1]);
4. distance per image, averaged over the batch and over the layer pairs: ``l1`` = ``sum |m_S - m_T|`` (for
   ``sum``: twice the total variation, in [0, 2]), ``cosine`` = ``1 - cos(m_S, m_T)``, ``kl`` =
   ``KL(m_T || m_S)`` (needs ``relu: true`` and ``normalize: sum``, i.e. distributions; 1e-8 is added
   inside the log).

Targets (one scalar per image): ``mean_depth`` (default; the node's live saliency uses it too), ``region``
(mean depth inside ``region``: ``boxes`` = the union of ``batch["boxes"]``, or ``[y0, y1, x0, x1]`` as
fractions of the image; an image with an empty region falls back to its mean depth), ``depth_bin`` (soft
share of pixels with depth in ``depth_bin = [lo, hi]`` m, sigmoid edges of ``bin_softness`` m).

Cost (CPU, 2 threads, measured; see ``saliency.py``): per-sample maps take one backward pass per image
through the layers after the chosen layer; with ``create_graph`` the student's backward then runs through
that second graph too. Student map + loss backward at ("decoder", 4), B = 4: reduced ``xdrcdepth`` (width
0.25, narrow decoder) at 64 x 128: summed target 0.011 s + 0.11 s backward, per-sample loop 0.043 s +
0.20 s, ``is_grads_batched`` 0.050 s + 0.25 s; default ``xdrcdepth`` at 128 x 256: summed 0.16 s + 1.19 s,
loop 0.55 s + 2.71 s, batched 1.04 s + 3.40 s (its plain forward + backward: 1.35 s). The loop was kept.
Teacher map (default CaFNet, eval, 128 x 256, B = 4, loaded machine): summed 1.5 s, per-sample 5.4 s, next
to a 10-12 s forward with graph, hence ``teacher_per_sample: false`` by default.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from xdrcdepth_core.distill.base import DistillLoss
from xdrcdepth_core.distill.common import EPS, as_layer, boxes_mask, check_same_size
from xdrcdepth_core.distill.registry import register_loss
from xdrcdepth_core.saliency import DEFAULT_LAYER, depth_bin_target, mean_depth_target, grad_cam_raw, region_target

TARGETS = ("mean_depth", "region", "depth_bin")
NORMALIZATIONS = ("sum", "l2")
COMPARISONS = ("l1", "cosine", "kl")
#: added inside the log of the KL distance
KL_EPS = 1e-8


def _layer_pairs(layers) -> list[tuple[tuple[str, int], tuple[str, int]]]:
    pairs = []
    for pair in layers:
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
            raise ValueError(f"xkd layers are [[student_layer], [teacher_layer]] pairs, got {pair!r}")
        pairs.append((as_layer(pair[0]), as_layer(pair[1])))
    if not pairs:
        raise ValueError("xkd needs at least one layer pair")
    return pairs


def _choice(value: str, choices: Sequence[str], name: str) -> str:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
    return value


@register_loss("xkd")
class ExplainabilityKD(DistillLoss):
    """Distance between the student's and the teacher's normalised Grad-CAM maps (module docstring)."""

    requires_teacher = True
    requires_teacher_graph = True

    def __init__(self, layers=((DEFAULT_LAYER, DEFAULT_LAYER),), target: str = "mean_depth",
                 region="boxes", depth_bin: Sequence[float] = (0.0, 20.0), bin_softness: float = 1.0,
                 normalize: str = "sum", compare: str = "l1", relu: bool = False, per_sample: bool = True,
                 teacher_per_sample: bool = False):
        super().__init__()
        self.pairs = _layer_pairs(layers)
        self.target = _choice(target, TARGETS, "target")
        self.normalize = _choice(normalize, NORMALIZATIONS, "normalize")
        self.compare = _choice(compare, COMPARISONS, "compare")
        self.relu, self.per_sample, self.teacher_per_sample = bool(relu), bool(per_sample), bool(teacher_per_sample)
        if self.compare == "kl" and not (self.relu and self.normalize == "sum"):
            raise ValueError("compare: kl needs relu: true and normalize: sum (maps must be distributions)")
        if region != "boxes" and not (isinstance(region, (list, tuple)) and len(region) == 4
                                      and 0 <= region[0] < region[1] <= 1 and 0 <= region[2] < region[3] <= 1):
            raise ValueError(f"region is 'boxes' or [y0, y1, x0, x1] fractions of the image, got {region!r}")
        self.region = region
        self.bin_target = depth_bin_target(float(depth_bin[0]), float(depth_bin[1]), float(bin_softness))

    def grad_cam_target(self, batch: dict, depth: Tensor):
        """The Grad-CAM target for this batch (``depth``: B x 1 x H x W, gives sizes and device)."""
        if self.target == "mean_depth":
            return mean_depth_target
        if self.target == "depth_bin":
            return self.bin_target
        size = depth.shape[-2:]
        if self.region == "boxes":
            boxes = self.need(batch, "boxes", "batch", "target: region with region: boxes")
            valid = self.need(batch, "boxes_valid", "batch")
            return region_target(boxes_mask(boxes.to(depth.dtype), valid, size, size))
        y0, y1, x0, x1 = self.region
        rows = (torch.arange(size[0], device=depth.device) + 0.5) / size[0]
        cols = (torch.arange(size[1], device=depth.device) + 0.5) / size[1]
        inside = ((rows >= y0) & (rows <= y1))[:, None] & ((cols >= x0) & (cols <= x1))[None, :]
        return region_target(inside.expand(depth.shape[0], 1, *size))

    def normalized(self, cam: Tensor) -> Tensor:
        """B x (h w) map after the optional ReLU and the per-image normalisation."""
        flat = (F.relu(cam) if self.relu else cam).flatten(1)
        scale = flat.abs().sum(dim=1, keepdim=True) if self.normalize == "sum" else flat.norm(dim=1, keepdim=True)
        return flat / scale.clamp_min(EPS)

    def distance(self, student: Tensor, teacher: Tensor) -> Tensor:
        """Batch mean of the per-image distance between normalised maps (B x N each)."""
        if self.compare == "l1":
            return (student - teacher).abs().sum(dim=1).mean()
        if self.compare == "cosine":
            return (1 - F.cosine_similarity(student, teacher, dim=1, eps=EPS)).mean()
        return (torch.xlogy(teacher, teacher) - teacher * torch.log(student + KL_EPS)).sum(dim=1).mean()

    def forward(self, student_out: dict, teacher_out: dict | None, batch: dict) -> Tensor:
        teacher_out = self.teacher(teacher_out)
        student_target = self.grad_cam_target(batch, self.need(student_out, "depth", "student_out"))
        total = 0
        for student_layer, teacher_layer in self.pairs:
            student = grad_cam_raw(student_out, student_layer, student_target, create_graph=True,
                                   per_sample=self.per_sample)
            cached = teacher_out.get(("saliency", teacher_layer))
            if cached is None:
                teacher_target = self.grad_cam_target(batch, self.need(teacher_out, "depth", "teacher_out"))
                cached = grad_cam_raw(teacher_out, teacher_layer, teacher_target, per_sample=self.teacher_per_sample)
            check_same_size(student, cached, f"xkd maps {student_layer} / {teacher_layer}")
            # float32 for the normalisation: sums over thousands of positions (maps may be bf16 under autocast)
            total = total + self.distance(self.normalized(student.float()), self.normalized(cached.detach().float()))
        return total / len(self.pairs)
