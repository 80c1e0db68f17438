"""Depth outputs: bounded depth heads and the full-resolution refinement over all depth maps.

Every depth map a model returns is ``max_depth * sigmoid(conv(features))`` in (0, max_depth] metres, as
the final output of BTS (Lee et al. 2019, arXiv 1907.10326, Sec. 3.1 "get_depth"), CaFNet and LiRCDepth
(arXiv 2412.16380, code: final ``Conv3x3 -> Sigmoid`` times ``max_depth`` = 100).

:class:`DepthRefinement` is the LiRCDepth/BTS final stage: a full-resolution depth map from the last
decoder feature, concatenated with the features and the upsampled intermediate depths (1/8, 1/4, 1/2),
then ``Conv3x3 + act -> Conv3x3 -> sigmoid * max_depth``.

Our choices (documented deviations):
- LiRCDepth's intermediate heads are ``Conv1x1 + ReLU`` (unbounded); ours use the sigmoid head with the
  same conv (same parameter count) so intermediate maps are valid depths in (0, max_depth] that can be
  distilled and evaluated directly.
- Depth maps enter the refinement conv divided by ``max_depth`` (in (0, 1], as BTS does with its
  ``depth_*_scaled`` inputs), not in metres, so their scale matches the features'.
- Intermediate maps are upsampled to H x W bilinearly (align_corners=False: a convex combination, so the
  range stays in (0, max_depth]); LiRCDepth uses nearest.
- The sigmoid runs in float32 even under bf16 autocast (the head's conv output is cast up): a bf16 depth
  would be quantised in steps of 2^-8 .. 2^-7 relative (0.5 m between 64 and 128 m), visible in metrics and
  distillation targets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xdrcdepth_core.models.conv import ConvNormAct


def upsample_to(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of ``x`` to ``size`` (H, W); identity when the size already matches."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


#: floor of the sigmoid: float32 sigmoid underflows to exactly 0 for logits below about -88, and a depth
#: of 0 would break inverse-depth metrics and downstream consumers (ours; 1e-6 x 100 m = 0.1 mm).
SIGMOID_FLOOR = 1e-6


class DepthHead(nn.Module):
    """``max_depth * sigmoid(Conv_k(x))``: one bias-free conv to a single channel, bounded to (0, max_depth].

    The sigmoid is floored at :data:`SIGMOID_FLOOR` so the depth stays strictly positive; it is computed
    in float32 (the output is float32 under autocast too).
    """

    def __init__(self, in_channels: int, max_depth: float, kernel_size: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.max_depth = float(max_depth)

    def forward(self, x: Tensor) -> Tensor:
        return self.max_depth * torch.sigmoid(self.conv(x).float()).clamp_min(SIGMOID_FLOOR)


class DepthRefinement(nn.Module):
    """Final depth from full-resolution features and the intermediate depth maps (LiRCDepth / BTS).

    ``forward(features, intermediate)`` with ``features`` B x C x H x W and ``intermediate`` a list of
    B x 1 x H x W depth maps in metres; returns B x 1 x H x W in (0, max_depth].
    """

    def __init__(self, in_channels: int, num_intermediate: int, max_depth: float, act: str = "relu"):
        super().__init__()
        self.full_resolution_head = DepthHead(in_channels, max_depth, kernel_size=1)
        self.fuse = ConvNormAct(in_channels + num_intermediate + 1, in_channels, 3, norm=False, act=act,
                                bias=False)
        self.head = DepthHead(in_channels, max_depth, kernel_size=3)
        self.max_depth = float(max_depth)

    def forward(self, features: Tensor, intermediate: list[Tensor]) -> Tensor:
        depths = [*intermediate, self.full_resolution_head(features)]
        normalised = [d / self.max_depth for d in depths]
        return self.head(self.fuse(torch.cat([features, *normalised], dim=1)))
