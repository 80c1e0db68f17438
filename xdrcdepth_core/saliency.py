"""Grad-CAM saliency of a depth network (Selvaraju et al., Grad-CAM, IJCV 2019/ICCV 2017, Eq. 1-2).

For a feature map A (B x C x h x w) and a scalar target y:
``alpha_c = mean_{i,j} dy/dA_c[i,j]`` (Eq. 1) and ``L = ReLU(sum_c alpha_c * A_c)`` (Eq. 2).

Depth regression has no class score, so the target must be chosen. XD-RCDepth (arXiv 2510.13565) uses
Grad-CAM saliency for its explainability-aligned distillation; its exact target and layer are not public
(papers.md §1.4). Our choice, shared by the node's live saliency and distillation: the default target is
the mean predicted depth over the image (the limitation section of the paper names "average depth on the
image plane" as such a target), and the default layer is a decoder feature (``("decoder", 4)``). Two more
targets are offered for distillation: the mean depth inside a region (:func:`region_target`) and the soft
share of pixels whose depth lies in a range (:func:`depth_bin_target`). Our models return their features
in the output dict, so no hooks are needed: gradients are taken with ``torch.autograd.grad`` w.r.t. the
returned tensor.

Two outputs:
- :func:`grad_cam_raw`: the signed map ``sum_c alpha_c A_c`` at the feature's resolution, no ReLU, no
  normalisation (what distillation compares and what a teacher cache stores);
- :func:`grad_cam`: Eq. 2 for display: ReLU, bilinear upsampling to the input size, min-max to [0, 1].

Graphs: the map needs the autograd graph from the feature to the depth, not parameter gradients. A frozen
model (``requires_grad_(False)``) works when its forward ran under ``torch.enable_grad()`` with an input
that requires grad (then every feature does); the functions themselves may be called under
``torch.no_grad()`` (they re-enable grad for their own arithmetic). A feature without a graph raises a
``RuntimeError`` that says how to build one.

Per-sample maps (``per_sample=True``, default): the map of image b must use ``d y_b / d A_b``. Summing the
targets over the batch adds ``d y_b' / d A_b`` for b' != b, which is zero only when samples do not
interact; BatchNorm in train mode mixes them through the batch statistics (test_distill_xkd checks that
``d y_0 / d A_1 != 0`` there). So with ``per_sample`` each target gets its own backward pass through the
layers after A (a loop over the batch, ``retain_graph``); ``per_sample=False`` uses one pass on the summed
target, exact for eval-mode models (e.g. a frozen teacher in ``eval()``). The loop was measured against
``autograd.grad(..., is_grads_batched=True)`` (vmap over the backward, which also holds B x B gradient
copies) on CPU: the loop was faster in every case (numbers in ``xdrcdepth_core/distill/xkd.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

DEFAULT_LAYER = ("decoder", 4)

#: a Grad-CAM target: model outputs -> one scalar per image (B,)
Target = Callable[[dict], Tensor]


def mean_depth_target(outputs: dict) -> Tensor:
    """Scalar Grad-CAM target per image: mean of the final depth map (B,)."""
    return outputs["depth"].flatten(1).mean(dim=1)


def region_target(mask: Tensor) -> Target:
    """Target: mean depth inside ``mask`` (B x 1 x H x W, bool or weights) per image; an image whose mask
    is empty falls back to its mean depth (our choice: a sample without a region still gets a map)."""

    def target(outputs: dict) -> Tensor:
        depth = outputs["depth"].flatten(1)
        weight = mask.to(depth.dtype).expand_as(outputs["depth"]).flatten(1)
        empty = weight.sum(dim=1) == 0
        weight = torch.where(empty[:, None], torch.ones_like(weight), weight)
        return (depth * weight).sum(dim=1) / weight.sum(dim=1)

    return target


def depth_bin_target(low: float, high: float, softness: float = 1.0) -> Target:
    """Target: soft share of pixels with depth in [low, high] metres per image,
    ``mean sigmoid((d - low) / s) * sigmoid((high - d) / s)`` (``s = softness`` in metres; ours)."""
    if not high > low:
        raise ValueError(f"depth bin needs high > low, got [{low}, {high}]")
    if not softness > 0:
        raise ValueError(f"softness must be > 0, got {softness}")

    def target(outputs: dict) -> Tensor:
        depth = outputs["depth"].flatten(1)
        inside = torch.sigmoid((depth - low) / softness) * torch.sigmoid((high - depth) / softness)
        return inside.mean(dim=1)

    return target


#: targets that need only the model outputs, by name (the teacher cache's ``--target``); the region and
#: depth-bin targets depend on the batch or on options and are built by the ``xkd`` loss
TARGETS: dict[str, Target] = {"mean_depth": mean_depth_target}


def _graph_feature(outputs: dict, layer) -> Tensor:
    """The layer's feature, checked to be part of an autograd graph."""
    feature = outputs[layer]
    if feature.is_inference() or not feature.requires_grad:
        raise RuntimeError(
            f"Grad-CAM needs the feature {layer!r} to be part of an autograd graph: run the model under "
            "torch.enable_grad() (not no_grad / inference_mode) with trainable parameters or with an input "
            "that requires grad, e.g. model(image.detach().requires_grad_(True), radar); frozen parameters "
            "are fine")
    return feature


def grad_cam_raw(outputs: dict, layer=DEFAULT_LAYER, target: Target = mean_depth_target,
                 create_graph: bool = False, per_sample: bool = True) -> Tensor:
    """Signed Grad-CAM map ``sum_c alpha_c A_c`` (Eq. 1 and Eq. 2 before the ReLU), B x 1 x h x w at the
    feature's resolution.

    ``create_graph=True`` keeps the map differentiable w.r.t. the model's parameters (student side of a
    distillation loss); otherwise the map is detached. The graph of ``outputs`` is kept (``retain_graph``)
    so several layers or targets can be taken from one forward pass.
    """
    feature = _graph_feature(outputs, layer)
    with torch.enable_grad():
        scores = target(outputs)
        if scores.shape != feature.shape[:1]:
            raise ValueError(f"a Grad-CAM target must give one scalar per image, shape {tuple(feature.shape[:1])}, "
                             f"got {tuple(scores.shape)}")
        if per_sample and len(scores) > 1:
            grads = torch.stack([torch.autograd.grad(score, feature, retain_graph=True,
                                                     create_graph=create_graph)[0][b]
                                 for b, score in enumerate(scores)])
        else:
            (grads,) = torch.autograd.grad(scores.sum(), feature, retain_graph=True, create_graph=create_graph)
        weights = grads.mean(dim=(2, 3), keepdim=True)                      # Eq. 1
        cam = (weights * feature).sum(dim=1, keepdim=True)                  # Eq. 2 without the ReLU
    return cam if create_graph else cam.detach()


def grad_cam(outputs: dict, layer=DEFAULT_LAYER, target: Target = mean_depth_target,
             create_graph: bool = False, per_sample: bool = True) -> Tensor:
    """Grad-CAM map for display (B x 1 x H x W in [0, 1], H x W = size of ``outputs["depth"]``): the ReLU
    of :func:`grad_cam_raw` (Eq. 2), bilinearly upsampled and min-max normalised per image."""
    with torch.enable_grad():
        cam = F.relu(grad_cam_raw(outputs, layer, target, create_graph, per_sample))
        cam = F.interpolate(cam, size=outputs["depth"].shape[-2:], mode="bilinear", align_corners=False)
        flat = cam.flatten(1)
        lo, hi = flat.min(dim=1).values, flat.max(dim=1).values
        cam = (cam - lo.view(-1, 1, 1, 1)) / (hi - lo).clamp_min(1e-12).view(-1, 1, 1, 1)
    return cam if create_graph else cam.detach()
