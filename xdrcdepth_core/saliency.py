"""Grad-CAM saliency of a depth network (Selvaraju et al., Grad-CAM, IJCV 2019/ICCV 2017, Eq. 1-2).

For a feature map A (B x C x h x w) and a scalar target y:
``alpha_c = mean_{i,j} dy/dA_c[i,j]`` (Eq. 1) and ``L = ReLU(sum_c alpha_c * A_c)`` (Eq. 2).

Depth regression has no class score, so the target must be chosen. XD-RCDepth (arXiv 2510.13565) uses
Grad-CAM saliency for its explainability-aligned distillation; its exact target and layer are not public
(papers.md §1.4). Our choice, shared by the node's live saliency and distillation: the target is the
mean predicted depth over the image (the limitation section of the paper names "average depth on the
image plane" as such a target), and the layer is a decoder feature (default ``("decoder", 4)``). Our
models return their features in the output dict, so no hooks are needed: gradients are taken with
``torch.autograd.grad`` w.r.t. the returned tensor. Maps are min-max normalised per image to [0, 1] and
bilinearly upsampled to the input size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DEFAULT_LAYER = ("decoder", 4)


def mean_depth_target(outputs: dict) -> torch.Tensor:
    """Scalar Grad-CAM target per image: mean of the final depth map (B,)."""
    return outputs["depth"].flatten(1).mean(dim=1)


def grad_cam(outputs: dict, layer=DEFAULT_LAYER, target=mean_depth_target,
             create_graph: bool = False) -> torch.Tensor:
    """Grad-CAM map (B x 1 x H x W in [0, 1], H x W = size of ``outputs["depth"]``).

    ``outputs`` must come from a forward pass with autograd enabled. With ``create_graph=True`` the map
    stays differentiable (for distillation losses); otherwise it is detached.
    """
    feature = outputs[layer]
    score = target(outputs).sum()
    (grads,) = torch.autograd.grad(score, feature, create_graph=create_graph, retain_graph=create_graph)
    weights = grads.mean(dim=(2, 3), keepdim=True)                      # Eq. 1
    cam = F.relu((weights * feature).sum(dim=1, keepdim=True))          # Eq. 2
    cam = F.interpolate(cam, size=outputs["depth"].shape[-2:], mode="bilinear", align_corners=False)
    flat = cam.flatten(1)
    lo, hi = flat.min(dim=1).values, flat.max(dim=1).values
    cam = (cam - lo.view(-1, 1, 1, 1)) / (hi - lo).clamp_min(1e-12).view(-1, 1, 1, 1)
    return cam if create_graph else cam.detach()
